"""The VM tier: the same scenarios on a real Debian kernel with the WireGuard
module, under qemu's software emulation (KVM does not work here).

Built once and cached under CACHE, rebuilt when an input changes:
- a Debian 12 root file system from debootstrap (its package list is the key);
- the kernel of Debian's linux-image-amd64 (`apt-get download`, `dpkg -x`;
  never whatever /boot holds), keyed by its version;
- a small busybox initramfs that loads virtio and ext4 and switches root,
  keyed by its script, its modules and the busybox binary's content (which
  must be statically linked: busybox-static's /bin/busybox).

Each run: an overlay of the root file system gets the kernel's modules for
WireGuard and veth, the harness, the wheels and the scenario unit; mkfs.ext4
-d turns it into a disk image; qemu boots it; the scenario's report is read
back out of the image with debugfs after the guest powers off. A boot that
ends without the report (the emulated kernel panicked) is retried once.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from . import elf, machine, systems
from .machine import CACHE, GUEST_DIR, Report, Unavailable, _run

VM_PACKAGES = (
    "systemd", "systemd-sysv", "dbus", "iproute2", "kmod", "python3", "python3-venv",
    "python3-pyroute2", "python3-typer", "python3-pystemd", "wireguard-tools",
    "dnsmasq-base", "iputils-ping",
)
BOOT_MODULES = ("virtio_pci", "virtio_blk", "crc32c_generic", "ext4")
GUEST_MODULES = ("wireguard", "veth", "tun")
MASK = (
    "systemd-udevd.service", "systemd-udev-trigger.service", "systemd-udev-settle.service",
    "systemd-sysusers.service", "systemd-journal-flush.service",
    "systemd-random-seed.service", "systemd-binfmt.service", "sys-kernel-debug.mount",
    "sys-kernel-tracing.mount", "dev-hugepages.mount", "sys-fs-fuse-connections.mount",
    "sys-kernel-config.mount", "systemd-update-utmp.service", "systemd-modules-load.service",
    "systemd-pstore.service", "timers.target", "systemd-timesyncd.service",
    "apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_all.timer", "fstrim.timer",
    "getty@tty1.service", "serial-getty@ttyS0.service", "systemd-networkd-wait-online.service",
)
QEMU_TIMEOUT = int(os.environ.get("WGNS_VM_TIMEOUT", "1500"))


def check_host() -> None:
    if os.geteuid() != 0:
        raise Unavailable("the VM tier needs root")
    for tool, pkg in (("qemu-system-x86_64", "qemu-system-x86"), ("debugfs", "e2fsprogs"),
                      ("cpio", "cpio"), ("depmod", "kmod"), ("debootstrap", "debootstrap")):
        if shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin") is None:
            raise Unavailable(f"{tool} is missing (Debian package {pkg})")
    busybox()


# busybox-static's first; Debian's default busybox package is dynamically linked.
BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox", "/sbin/busybox", "/usr/sbin/busybox")


def busybox(candidates: tuple[str, ...] | None = None) -> Path:
    """The busybox the initramfs runs as /init: statically linked, since the
    initramfs has no libc (a dynamic one panics the guest at every boot).
    Looked for in BUSYBOX_CANDIDATES, then on PATH."""
    if candidates is None:
        candidates = BUSYBOX_CANDIDATES + tuple(filter(None, [shutil.which("busybox")]))
    found: list[Path] = []
    for c in candidates:
        p = Path(c)
        if p.is_file() and all(not p.samefile(f) for f in found):
            found.append(p)
    if not found:
        raise Unavailable("busybox is missing (Debian package busybox-static)")
    for p in found:
        try:
            if elf.is_static(p):
                return p
        except (OSError, ValueError):
            continue
    raise Unavailable(f"busybox is dynamically linked: install busybox-static "
                      f"({', '.join(map(str, found))})")


def kernel() -> tuple[Path, str]:
    """Debian's current amd64 kernel package, unpacked: (dir, version)."""
    deps = subprocess.run(["apt-cache", "depends", "linux-image-amd64"], check=True,
                          text=True, stdout=subprocess.PIPE).stdout
    pkg = next((ln.split(":", 1)[1].strip() for ln in deps.splitlines()
                if ln.strip().startswith("Depends: linux-image-")), None)
    if pkg is None:
        raise Unavailable("apt knows no linux-image-amd64 (run apt-get update)")
    version = pkg[len("linux-image-"):]
    d = CACHE / f"kernel-{version}"
    if (d / ".done").exists():
        return d, version
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    p = subprocess.run(["apt-get", "download", pkg], cwd=d, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    debs = list(d.glob("linux-image-*.deb"))
    if p.returncode != 0 or not debs:
        raise Unavailable(f"apt-get download {pkg} failed: {p.stdout[-300:]}")
    _run(["dpkg", "-x", str(debs[0]), str(d / "x")])
    debs[0].unlink()
    (d / ".done").write_text(version)
    return d, version


def _closure(moddir: Path, names: tuple[str, ...]) -> list[Path]:
    """The module files for `names` and everything they depend on, deps first."""
    index = {p.name[:-3].replace("-", "_"): p for p in moddir.rglob("*.ko")}
    out: list[Path] = []

    def add(name: str) -> None:
        name = name.replace("-", "_")
        path = index.get(name)
        if path is None or path in out:
            return  # built in, or already there
        deps = subprocess.run(["modinfo", "-F", "depends", str(path)], check=True, text=True,
                              stdout=subprocess.PIPE).stdout.strip()
        for dep in filter(None, deps.split(",")):
            add(dep)
        out.append(path)

    for n in names:
        add(n)
    return out


INIT = """#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /newroot
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
/bin/busybox mount -t devtmpfs dev /dev
for m in {modules}; do /bin/busybox insmod /lib/modules/$m.ko; done
for i in 1 2 3 4 5 6 7 8 9 10; do [ -b /dev/vda ] && break; /bin/busybox sleep 0.2; done
/bin/busybox mount -t ext4 /dev/vda /newroot || {{ echo "no root"; /bin/busybox poweroff -f; }}
/bin/busybox umount /proc /sys
/bin/busybox mount --move /dev /newroot/dev
exec /bin/busybox switch_root /newroot /sbin/init "$@"
"""


def initrd_key(bb: Path) -> str:
    """What the initramfs is made of: its script, its modules, the busybox binary."""
    return hashlib.sha256((INIT + " ".join(BOOT_MODULES)).encode()
                          + hashlib.sha256(bb.read_bytes()).digest()).hexdigest()[:12]


def initrd(kdir: Path, version: str) -> Path:
    bb = busybox()
    key = initrd_key(bb)
    out = kdir / f"initrd-{key}.gz"
    if out.exists():
        return out
    moddir = kdir / "x" / "lib" / "modules" / version
    files = _closure(moddir, BOOT_MODULES)
    work = Path(tempfile.mkdtemp(dir=CACHE))
    try:
        (work / "bin").mkdir()
        (work / "lib" / "modules").mkdir(parents=True)
        shutil.copy(bb, work / "bin" / "busybox")
        for f in files:
            shutil.copy(f, work / "lib" / "modules" / f.name)
        init = work / "init"
        init.write_text(INIT.format(modules=" ".join(f.name[:-3] for f in files)))
        init.chmod(0o755)
        listing = subprocess.run(["find", "."], cwd=work, check=True,
                                 stdout=subprocess.PIPE).stdout
        cpio = subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], cwd=work, check=True,
                              input=listing, stdout=subprocess.PIPE).stdout
        out.write_bytes(gzip.compress(cpio))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


SCENARIO_UNIT = """[Unit]
Description=wgns test scenario
After=multi-user.target
Wants=multi-user.target
SuccessAction=poweroff-force
FailureAction=poweroff-force

[Service]
Type=oneshot
Environment=WGNS_FLAVOUR={flavour} WGNS_EXPECT_IMPL=kernel PYTHONUNBUFFERED=1
ExecStart=/usr/bin/python3 {guest}/scenario.py {scenario} {guest}/out/report.jsonl
StandardOutput=file:{guest}/out/scenario.log
StandardError=inherit
ExecStartPost=/bin/sync
TimeoutStartSec={timeout}
"""


def _read_back(img: Path, out: Path) -> None:
    for name in ("report.jsonl", "scenario.log"):
        subprocess.run(["debugfs", "-R", f"dump {GUEST_DIR}/out/{name} {out / name}",
                        str(img)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run_scenario(flavour: str, scenario: str = "core") -> Report:
    check_host()
    machine.check_host()
    root = systems.debootstrap("bookworm", VM_PACKAGES)
    kdir, version = kernel()
    rd = initrd(kdir, version)
    report = Report("vm-debian12", flavour, scenario)
    wheels = machine.wheelhouse(flavour)
    attempts = []
    start = time.monotonic()
    for attempt in (1, 2):
        out = Path(tempfile.mkdtemp(prefix="vmout-", dir=CACHE))
        overlay = machine.Overlay(str(root), "vm-")
        img = overlay.base / "disk.img"
        try:
            r = overlay.root
            moddir = kdir / "x" / "lib" / "modules" / version
            for f in _closure(moddir, GUEST_MODULES):
                dest = r / "lib" / "modules" / version / f.relative_to(moddir)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(f, dest)
            for meta in ("modules.order", "modules.builtin", "modules.builtin.modinfo"):
                if (moddir / meta).exists():
                    shutil.copy(moddir / meta, r / "lib" / "modules" / version / meta)
            _run(["depmod", "-b", str(r), version])
            guest = r / GUEST_DIR.lstrip("/")
            (guest / "out").mkdir(parents=True)
            for f in Path(machine.HERE).glob("*.py"):
                shutil.copy(f, guest / f.name)
            shutil.copytree(wheels, guest / "wheels")
            unit = r / "etc/systemd/system/wgns-scenario.service"
            unit.write_text(SCENARIO_UNIT.format(flavour=flavour, guest=GUEST_DIR,
                                                 scenario=scenario, timeout=QEMU_TIMEOUT - 60))
            wants = r / "etc/systemd/system/multi-user.target.wants"
            wants.mkdir(parents=True, exist_ok=True)
            (wants / "wgns-scenario.service").symlink_to(
                "/etc/systemd/system/wgns-scenario.service")
            (r / "etc/hostname").write_text("wgns-vm\n")
            (r / "etc/hosts").write_text("127.0.0.1 localhost wgns-vm\n")
            (r / "etc/resolv.conf").write_text("")
            _run(["systemctl", f"--root={r}", "mask", *MASK])
            _run(["mkfs.ext4", "-q", "-F", "-d", str(r), str(img), "2G"])
            serial = overlay.base / "serial.log"
            cmd = ["qemu-system-x86_64", "-accel", "tcg", "-M", "pc", "-nodefaults", "-smp", "1",
                   "-m", "1G", "-nographic", "-no-reboot",
                   "-kernel", str(kdir / "x" / "boot" / f"vmlinuz-{version}"),
                   "-initrd", str(rd), "-append", "console=ttyS0 quiet panic=-1",
                   "-drive", f"file={img},if=virtio,format=raw",
                   "-serial", f"file:{serial}"]
            t = time.monotonic()
            try:
                with machine.boot_lock():
                    subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.STDOUT, timeout=QEMU_TIMEOUT)
                why = ""
            except subprocess.TimeoutExpired:
                why = f"no power-off in {QEMU_TIMEOUT} s"
            _read_back(img, out)
            report.console = serial.read_text(errors="replace")[-20000:] if serial.exists() \
                else ""
            report.checks.clear()
            report.info.clear()
            report.finished = False
            machine._read_report(out, report)
            attempts.append({"attempt": attempt, "seconds": round(time.monotonic() - t, 1),
                             "finished": report.finished, "why": why})
        finally:
            overlay.close()
            shutil.rmtree(out, ignore_errors=True)
        if report.finished or report.checks:
            break  # the guest ran; only a boot that produced nothing is retried
    shutil.rmtree(wheels, ignore_errors=True)
    report.info["vm_attempts"] = attempts
    report.seconds = time.monotonic() - start
    machine.log_boot(report)
    return report

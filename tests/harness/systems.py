"""Host side: the root file systems guests boot, and what each needs to
install wgns from without a network.

A system is a root file system (`debian12`: this machine's own, read
through an overlay; the others: debootstrap roots cached under CACHE) plus
how to boot it. Each stands for a generation of the distributions
self-hosters run:

- debian11 (bullseye: systemd 247, Python 3.9): the RHEL 9 / Ubuntu 22.04
  era. No python3-typer and too old a pyroute2 and pystemd, so wgns goes in
  with pip from PyPI (pystemd compiles in the guest: gcc, python3-dev,
  pkg-config, libsystemd-dev). No wireguard-go package either: bookworm's,
  with its own loader and C library beside it (patchelf).
- debian12 (bookworm: systemd 252, Python 3.11): this machine.
- debian13 (trixie: systemd 257, Python 3.13); debian13r: the same with
  systemd-resolved as the host's resolver, as on Ubuntu and Fedora.
- sid (systemd 262 when written, Python 3.14): the Fedora / Arch era. It
  moves: the root is built again every week (its ISO week is in the cache
  key), and each report records the versions it saw. systemd >= 258 refuses
  the legacy cgroup hierarchy this machine's systemd-nspawn hands a guest
  by default: it boots with SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1.

The `pypi` flavour of debian11 and sid installs from a wheelhouse that pip
inside that root downloaded (the root's own Python picks what runs there):
wgns's dependencies, pystemd as source, and what building it takes.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

CACHE = Path(os.environ.get("WGNS_TEST_CACHE", "/var/tmp/wgns-test-cache"))
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
# Where the patched wireguard-go and its C library live in a debian11 root.
WG_DIR = "/usr/lib/wgns-test-wireguard-go"


class Unavailable(Exception):
    """The harness cannot run here (not root, a tool missing): a skip."""


def run(cmd: list[str], env: dict[str, str] | None = None) -> str:
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       env=env)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{p.stdout[-3000:]}")
    return p.stdout


@dataclass
class System:
    """A root file system a guest boots from."""
    name: str
    lower: str                      # read-only lower layer of the overlay
    python: str = "/usr/bin/python3"
    nspawn_env: dict[str, str] = field(default_factory=dict)
    wheels: Path | None = None      # the `pypi` flavour's dependencies, if not the host's


def debian_mirror() -> str:
    """The Debian mirror apt on this machine already uses."""
    for path in Path("/etc/apt").rglob("*"):
        if path.suffix not in (".list", ".sources") or not path.is_file():
            continue
        for line in path.read_text().splitlines():
            words = line.replace("URIs:", "").split()
            for w in words:
                if w.startswith("http") and w.rstrip("/").endswith("/debian"):
                    return w
    return "http://deb.debian.org/debian"


def this_week() -> str:
    year, week, _ = datetime.date.today().isocalendar()
    return f"{year}-W{week:02d}"


def debootstrap(suite: str, packages: tuple[str, ...], extra: str = "",
                finish: Callable[[Path], None] = lambda root: None) -> Path:
    """A minimal root file system, cached by suite, package list and EXTRA
    (what else goes into it: a week, a binary's hash); FINISH adds to it
    before it is marked done. A root of the same suite and packages made
    with another EXTRA (last week's sid) is removed when this one is made."""
    listed = " ".join(packages)
    key = hashlib.sha256(" ".join((suite, extra) + packages).encode()).hexdigest()[:12]
    root = CACHE / f"{suite}-{key}"
    if (root / ".wgns-done").exists():
        return root
    if shutil.which("debootstrap", path="/usr/sbin:/usr/bin") is None:
        raise Unavailable("debootstrap is not installed (Debian package debootstrap)")
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = CACHE / f"{suite}-{key}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    run(["debootstrap", "--variant=minbase", "--include=" + ",".join(packages),
         suite, str(tmp), debian_mirror()])
    finish(tmp)
    (tmp / ".wgns-done").write_text(f"{listed}\n{extra}\n")
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    for old in CACHE.glob(f"{suite}-*/.wgns-done"):
        if old.parent != root and old.read_text().split("\n")[0] == listed:
            shutil.rmtree(old.parent, ignore_errors=True)
            shutil.rmtree(Path(f"{old.parent}-wheels"), ignore_errors=True)
    return root


def _chroot(root: Path, script: str) -> str:
    """Run SCRIPT (sh) in ROOT with this machine's network, DNS and CA
    bundle (pip inside a debootstrap root reaches PyPI only with them);
    ROOT is left as it was."""
    etc = root / "etc"
    saved = (etc / "resolv.conf").read_bytes() if (etc / "resolv.conf").is_file() else None
    ca = root / "var/tmp/wgns-ca.crt"
    shutil.copy(CA_BUNDLE, ca)
    if (etc / "resolv.conf").is_symlink():
        (etc / "resolv.conf").unlink()
    shutil.copy("/etc/resolv.conf", etc / "resolv.conf")
    run(["mount", "--bind", "/proc", str(root / "proc")])
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8",
           "PIP_CERT": "/var/tmp/wgns-ca.crt", "SSL_CERT_FILE": "/var/tmp/wgns-ca.crt",
           "REQUESTS_CA_BUNDLE": "/var/tmp/wgns-ca.crt",
           "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    try:
        return run(["chroot", str(root), "sh", "-ec", script], env=env)
    finally:
        subprocess.run(["umount", "-l", str(root / "proc")], check=False)
        ca.unlink()
        (etc / "resolv.conf").unlink()
        if saved is not None:
            (etc / "resolv.conf").write_bytes(saved)


# What wgns needs from PyPI where the distribution does not have it, and
# what building pystemd from source takes (pip's build isolation, offline).
PYPI_REQUIREMENTS = ("pyroute2", "typer", "pystemd", "setuptools", "wheel", "cython")


def pip_wheels(root: Path) -> Path:
    """Wheels (and pystemd's source) for ROOT's own Python, downloaded by
    pip inside ROOT, cached beside it."""
    out = Path(f"{root}-wheels")
    if (out / ".done").exists():
        return out
    shutil.rmtree(out, ignore_errors=True)
    _chroot(root, "rm -rf /var/tmp/wgns-dl /var/tmp/wgns-wheels\n"
            "python3 -m venv /var/tmp/wgns-dl\n"
            "/var/tmp/wgns-dl/bin/pip download -q -d /var/tmp/wgns-wheels "
            + " ".join(PYPI_REQUIREMENTS))
    shutil.move(str(root / "var/tmp/wgns-wheels"), str(out))
    shutil.rmtree(root / "var/tmp/wgns-dl", ignore_errors=True)
    (out / ".done").write_text(" ".join(PYPI_REQUIREMENTS) + "\n")
    return out


def _wireguard_go() -> Path:
    exe = shutil.which("wireguard-go", path="/usr/sbin:/usr/bin:/sbin:/bin")
    if exe is None:
        raise Unavailable("wireguard-go is missing (Debian package wireguard-go)")
    return Path(exe)


def add_wireguard_go(root: Path) -> None:
    """This machine's wireguard-go (bookworm's, linked against glibc 2.34)
    into a bullseye root (glibc 2.31), with its own loader and C library
    beside it. A wrapper script would not do: wireguard-go re-executes
    itself through /proc/self/exe."""
    if shutil.which("patchelf") is None:
        raise Unavailable("patchelf is missing (Debian package patchelf)")
    d = root / WG_DIR.lstrip("/")
    d.mkdir(parents=True, exist_ok=True)
    exe = _wireguard_go()
    libs = [line.split("=>")[-1].split()[0] for line in run(["ldd", str(exe)]).splitlines()
            if "/" in line]
    for lib in libs:
        shutil.copy(os.path.realpath(lib), d / os.path.basename(lib))
    loader = next(os.path.basename(lib) for lib in libs if "ld-linux" in lib)
    dest = root / "usr/bin/wireguard-go"
    shutil.copy(exe, dest)
    run(["patchelf", "--set-interpreter", f"{WG_DIR}/{loader}", "--set-rpath", WG_DIR,
         str(dest)])


# The scenarios' needs in every debootstrap root: systemd, what the
# scenario and the fake provider run (nftables: a pool server's dropped
# packets and a path with a smaller MTU; openssl: the certificate
# authorities of its PIA-like API).
BASE = ("systemd", "systemd-sysv", "dbus", "iproute2", "python3", "python3-venv",
        "wireguard-tools", "dnsmasq-base", "nftables", "openssl")
# pip's route: pystemd compiles.
BUILD = ("gcc", "python3-dev", "pkg-config", "libsystemd-dev")
# The distribution's own libraries for wgns, and the unit tests' tools.
OWN_LIBS = ("python3-pyroute2", "python3-typer", "python3-pystemd")
TEST_TOOLS = ("python3-pytest", "python3-hypothesis")
CLIENTS = ("qbittorrent-nox", "transmission-daemon", "prometheus-node-exporter")

DEBIAN11_PACKAGES = BASE + BUILD + ("ca-certificates", "netbase")
DEBIAN13_PACKAGES = BASE + OWN_LIBS + ("wireguard-go", "pipx") + CLIENTS + TEST_TOOLS
SID_PACKAGES = (BASE + OWN_LIBS + BUILD + TEST_TOOLS
                + ("wireguard-go", "qbittorrent-nox", "transmission-daemon"))


def _debian11() -> System:
    wg = hashlib.sha256(_wireguard_go().read_bytes()).hexdigest()[:12]
    root = debootstrap("bullseye", DEBIAN11_PACKAGES, extra=f"wireguard-go {wg}",
                       finish=add_wireguard_go)
    return System("debian11", str(root), wheels=pip_wheels(root))


def _debian12() -> System:
    return System("debian12", "/")


def _debian13() -> System:
    return System("debian13", str(debootstrap("trixie", DEBIAN13_PACKAGES)))


def _debian13r() -> System:
    root = debootstrap("trixie", DEBIAN13_PACKAGES + ("systemd-resolved", "libnss-resolve"))
    return System("debian13r", str(root))


def _sid() -> System:
    root = debootstrap("sid", SID_PACKAGES, extra=this_week())
    return System("sid", str(root), nspawn_env={"SYSTEMD_NSPAWN_UNIFIED_HIERARCHY": "1"},
                  wheels=pip_wheels(root))


SYSTEMS: dict[str, Callable[[], System]] = {
    "debian11": _debian11, "debian12": _debian12, "debian13": _debian13,
    "debian13r": _debian13r, "sid": _sid}

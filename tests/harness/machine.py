"""Host side of the test harness: boot a real systemd, run a scenario in it,
bring back its report.

One entry point, `run_scenario(system, flavour, scenario)`, used by the
pytest container tests, the demo and the benchmarks. A *system* is the root
file system the guest boots (`debian12`: this machine's own, through an
overlay; more systems plug in through `SYSTEMS`). A *flavour* is how wgns is
installed in the guest, as a user would: `pypi` (a venv with the newest
libraries from PyPI, from a wheelhouse built here), `system` (a venv on the
distribution's own python3-pyroute2, python3-typer, python3-pystemd), or
`deb` (the Debian package built from this checkout, `apt install ./wgns.deb`).

The guest runs `scenario.py SCENARIO` as a oneshot unit after
multi-user.target, writes JSON lines to a directory bound from the host, and
powers off. Nothing leaves the container: it has a private network.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

try:
    from .systems import CACHE, SYSTEMS, System, Unavailable
    from .systems import run as _run
except ImportError:  # run as a script: this directory is on sys.path
    from systems import CACHE, SYSTEMS, System, Unavailable  # type: ignore[no-redef]
    from systems import run as _run  # type: ignore[no-redef]

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
GUEST_DIR = "/opt/wgns-test"
BOOT_TIMEOUT = int(os.environ.get("WGNS_BOOT_TIMEOUT", "600"))

# Debian packages the host needs to boot guests and to play the provider.
HOST_TOOLS = {
    "systemd-nspawn": "systemd-container",
    "wireguard-go": "wireguard-go",
    "wg": "wireguard-tools",
    "dnsmasq": "dnsmasq-base",
    "nft": "nftables",
    "openssl": "openssl",
}


@dataclass
class Report:
    system: str
    flavour: str
    scenario: str
    checks: dict[str, dict] = field(default_factory=dict)
    info: dict[str, object] = field(default_factory=dict)
    events: list[dict] = field(default_factory=list)  # the story, in order (story.py)
    console: str = ""
    seconds: float = 0.0
    finished: bool = False     # every scenario of the boot ran to its end
    done: list[str] = field(default_factory=list)  # the scenarios that did

    def ran(self, scenario: str) -> bool:
        """SCENARIO ran to its end (in a boot of one scenario or several)."""
        return scenario in self.done or (self.finished and scenario == self.scenario)

    def failed(self) -> list[str]:
        return [n for n, c in self.checks.items() if not c["ok"]]


def check_host() -> None:
    if os.geteuid() != 0:
        raise Unavailable("container tests need root (systemd-nspawn, overlay mounts)")
    missing = [pkg for tool, pkg in HOST_TOOLS.items()
               if shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin") is None]
    if missing:
        raise Unavailable("missing Debian packages: " + " ".join(missing))
    try:
        from .ci import can_make_links
    except ImportError:  # run as a script: this directory is on sys.path
        from ci import can_make_links  # type: ignore[no-redef]
    links, why = can_make_links()
    if not links:
        raise Unavailable(why)
    if not os.path.exists("/dev/net/tun"):
        raise Unavailable("/dev/net/tun is missing: wireguard-go cannot run")


def _build_venv() -> Path:
    """A venv of the guest's interpreter, with what building wheels takes."""
    venv = CACHE / "build-venv"
    if not (venv / ".done").exists():
        shutil.rmtree(venv, ignore_errors=True)
        _run(["/usr/bin/python3", "-m", "venv", str(venv)])
        _run([str(venv / "bin" / "pip"), "install", "-q", "setuptools>=61", "wheel"])
        (venv / ".done").write_text("")
    return venv


def copy_checkout(dest: Path, untracked: bool = False) -> None:
    """The files git tracks in this checkout, with their working-tree
    contents, as a clean clone would have them (for the .deb build); with
    UNTRACKED also new files git does not ignore (for the unit tests inside
    a guest, so they test the working tree as the host's do)."""
    extra = ["--others", "--exclude-standard"] if untracked else []
    files = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--cached", *extra],
                           check=True, stdout=subprocess.PIPE).stdout.decode().split("\0")
    for f in filter(None, files):
        if (REPO / f).exists():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / f, dest / f)


def build_deb(dest: Path) -> Path:
    """Build the Debian package from the files git tracks in this checkout
    (with their working-tree contents), as `dpkg-buildpackage -us -uc -b`
    would in a clean clone, with the system's own Python."""
    if shutil.which("dpkg-buildpackage") is None:
        raise Unavailable("dpkg-buildpackage is missing (Debian packages dpkg-dev, debhelper, "
                          "dh-python, pybuild-plugin-pyproject)")
    work = Path(tempfile.mkdtemp(prefix="deb-", dir=CACHE))
    src = work / "wgns"
    copy_checkout(src)
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(work), "LC_ALL": "C.UTF-8"}
    t = time.monotonic()
    p = subprocess.run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=src, env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"dpkg-buildpackage failed:\n{p.stdout[-3000:]}")
    deb = next(work.glob("wgns_*_all.deb"))
    shutil.copy(deb, dest)
    (dest / "build-seconds").write_text(f"{time.monotonic() - t:.1f}\n")
    shutil.rmtree(work, ignore_errors=True)
    return dest / deb.name


# The last commit before the house was rebuilt (issue 20): what the upgrade
# scenario and test_migrate upgrade from and downgrade to.
OLD_COMMIT = "88a0ff646a090ce56a8d9f82c512d24c56723d72"


def old_artefacts(dest: Path) -> None:
    """OLD_COMMIT's wheel and .deb, built from this repository's history
    (cached by commit), and this checkout's .deb in DEST/new-deb."""
    cache = CACHE / f"old-{OLD_COMMIT[:12]}"
    if not (cache / ".done").exists():
        shutil.rmtree(cache, ignore_errors=True)
        work = Path(tempfile.mkdtemp(prefix="old-", dir=CACHE))
        src = work / "wgns"
        src.mkdir()
        archive = subprocess.run(["git", "-C", str(REPO), "archive", OLD_COMMIT],
                                 check=True, stdout=subprocess.PIPE).stdout
        subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
        cache.mkdir(parents=True)
        _run([str(_build_venv() / "bin" / "pip"), "wheel", "-q", "--no-deps",
              "--no-build-isolation", "-w", str(cache), str(src)])
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(work), "LC_ALL": "C.UTF-8"}
        subprocess.run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=src, env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.copy(next(work.glob("wgns_*_all.deb")), cache)
        (cache / "commit").write_text(OLD_COMMIT + "\n")
        (cache / ".done").write_text("")
        shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(cache, dest / "old", ignore=shutil.ignore_patterns(".done"))
    (dest / "new-deb").mkdir()
    build_deb(dest / "new-deb")


def wheelhouse(flavour: str, system: System | None = None) -> Path:
    """Wheels to install wgns in the guest without a network: wgns from this
    checkout, and for `pypi` its dependencies: the system's own wheelhouse
    (downloaded by pip inside its root), or, for this machine's Python,
    wheels built here, cached by the dependency list."""
    out = Path(tempfile.mkdtemp(prefix="wheels-", dir=CACHE))
    if flavour == "deb":
        build_deb(out)
        return out
    if flavour == "pypi" and system is not None and system.wheels is not None:
        deps = system.wheels
    else:
        pyproject = (REPO / "pyproject.toml").read_bytes()
        key = hashlib.sha256(pyproject + flavour.encode()).hexdigest()[:12]
        deps = CACHE / f"wheels-{flavour}-{key}"
        if flavour == "pypi" and not (deps / ".done").exists():
            shutil.rmtree(deps, ignore_errors=True)
            deps.mkdir(parents=True)
            # Built with the guest's own interpreter so compiled wheels (pystemd) fit.
            _run([str(_build_venv() / "bin" / "pip"), "wheel", "-q", "-w", str(deps),
                  "pyroute2", "typer", "pystemd"])
            (deps / ".done").write_text("")
        deps.mkdir(parents=True, exist_ok=True)
    for f in deps.iterdir():
        if f.name.endswith((".whl", ".tar.gz")):
            shutil.copy(f, out)
    build_wheel(out)
    return out


def build_wheel(dest: Path) -> Path:
    """wgns's wheel from the files git tracks (as a clean clone has them:
    no build/ directory of an earlier build can slip old modules in)."""
    work = Path(tempfile.mkdtemp(prefix="whl-", dir=CACHE))
    try:
        copy_checkout(work / "wgns")
        before = set(dest.glob("wgns-*.whl"))
        _run([str(_build_venv() / "bin" / "pip"), "wheel", "-q", "--no-deps",
              "--no-build-isolation", "-w", str(dest), str(work / "wgns")])
        return next(iter(set(dest.glob("wgns-*.whl")) - before))
    finally:
        shutil.rmtree(work, ignore_errors=True)


# Daemons the Debian packages enable; a guest starts them only in the
# scenario that needs them (systemctl unmask), so other boots stay quiet.
QUIET_UNITS = ("transmission-daemon.service", "prometheus-node-exporter.service")


class Overlay:
    """A throwaway writable copy of a root file system: tmpfs upper layer."""

    def __init__(self, lower: str, prefix: str) -> None:
        CACHE.mkdir(parents=True, exist_ok=True)
        self.base = Path(tempfile.mkdtemp(prefix=prefix, dir=CACHE))
        self.root = self.base / "root"
        _run(["mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", str(self.base)])
        for d in ("upper", "work", "root"):
            (self.base / d).mkdir()
        _run(["mount", "-t", "overlay", "overlay", "-o",
              f"lowerdir={lower},upperdir={self.base}/upper,workdir={self.base}/work",
              str(self.root)])

    def close(self) -> None:
        for target in (self.root, self.base):
            subprocess.run(["umount", "-l", str(target)], check=False)
        shutil.rmtree(self.base, ignore_errors=True)


@contextlib.contextmanager
def boot_lock():  # type: ignore[no-untyped-def]
    """One guest at a time on this machine (2 cores): a second boot, from
    another test run or a developer's shell, waits for the first."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / "boot.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


SCENARIO_UNIT = """[Unit]
Description=wgns test scenario
After=multi-user.target
Wants=multi-user.target

[Service]
Type=oneshot
Environment=WGNS_FLAVOUR={flavour} PYTHONUNBUFFERED=1 {env}
ExecStart={python} {guest}/scenario.py {scenario} {guest}/out/report.jsonl
StandardOutput=file:{guest}/out/scenario.log
StandardError=inherit
ExecStopPost=/bin/systemctl --no-block poweroff
TimeoutStartSec={timeout}
"""


def run_scenario(system_name: str, flavour: str, scenario: str,
                 env: dict[str, str] | None = None) -> Report:
    check_host()
    system = SYSTEMS[system_name]()
    report = Report(system_name, flavour, scenario)
    wheels = wheelhouse(flavour, system)
    out = Path(tempfile.mkdtemp(prefix="out-", dir=CACHE))
    overlay = Overlay(system.lower, f"{system_name}-")
    start = time.monotonic()
    try:
        root = overlay.root
        guest = root / GUEST_DIR.lstrip("/")
        guest.mkdir(parents=True)
        for f in HERE.glob("*.py"):
            shutil.copy(f, guest / f.name)
        shutil.copytree(wheels, guest / "wheels")
        if "unittests" in scenario.split("+"):
            copy_checkout(guest / "src", untracked=True)
        if "upgrade" in scenario.split("+"):
            old_artefacts(guest)
        unit = root / "etc/systemd/system/wgns-scenario.service"
        unit.write_text(SCENARIO_UNIT.format(
            flavour=flavour, python=system.python, guest=GUEST_DIR, scenario=scenario,
            timeout=BOOT_TIMEOUT - 30,
            env=" ".join(f"{k}={v}" for k, v in (env or {}).items())))
        for quiet in QUIET_UNITS:
            mask = root / "etc/systemd/system" / quiet
            if not mask.is_symlink() and not mask.exists():
                mask.symlink_to("/dev/null")
        wants = root / "etc/systemd/system/multi-user.target.wants"
        wants.mkdir(parents=True, exist_ok=True)
        link = wants / "wgns-scenario.service"
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to("/etc/systemd/system/wgns-scenario.service")
        machine = f"wgns-{os.getpid()}-{int(time.time()) % 100000}"
        cmd = ["systemd-nspawn", "-q", "-D", str(root), "--boot", "--private-network",
               "--register=no", "--keep-unit", "--link-journal=no", "-M", machine,
               "--bind=/dev/net/tun", "--property=DeviceAllow=/dev/net/tun rwm",
               f"--bind={out}:{GUEST_DIR}/out"]
        try:
            with boot_lock():
                start = time.monotonic()   # the time waited for the lock is not the boot's
                proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, timeout=BOOT_TIMEOUT,
                                      env={**os.environ, **system.nspawn_env})
            report.console = proc.stdout.decode(errors="replace")[-20000:]
        except subprocess.TimeoutExpired as e:
            report.console = (e.stdout or b"").decode(errors="replace")[-20000:]
            report.console += f"\n[harness] guest did not power off in {BOOT_TIMEOUT} s"
    finally:
        report.seconds = time.monotonic() - start
        overlay.close()
        shutil.rmtree(wheels, ignore_errors=True)
    _read_report(out, report)
    if (out / "scenario.log").exists():   # the whole log of the last boot of each kind
        logs = CACHE / "logs"
        logs.mkdir(exist_ok=True)
        shutil.copy(out / "scenario.log", logs / f"{system_name}-{flavour}-{scenario}.log")
    shutil.rmtree(out, ignore_errors=True)
    log_boot(report)
    return report


def log_boot(report: Report) -> None:
    """One line per boot in CACHE/boots.log (when, what, how long, how it
    ended): where the suite's time goes, run after run."""
    failed = len(report.failed())
    line = (f"{time.strftime('%Y-%m-%d %H:%M:%S')} {report.system} {report.flavour} "
            f"{report.scenario} {report.seconds:.0f}s "
            f"{'finished' if report.finished else 'UNFINISHED'} {failed} failed\n")
    with open(CACHE / "boots.log", "a") as f:
        f.write(line)


def _read_report(out: Path, report: Report) -> None:
    path = out / "report.jsonl"
    if path.exists():
        for line in path.read_text(errors="replace").splitlines():
            rec = json.loads(line)
            if rec.get("kind") == "info":
                report.info[rec["name"]] = rec["value"]
                continue
            report.events.append(rec)
            if rec.get("kind") == "check":
                report.checks[rec["name"]] = rec
            elif rec.get("kind") == "done" and "scenario" in rec:
                report.done.append(rec["scenario"])
            elif rec.get("kind") == "done":
                report.finished = True
    log = out / "scenario.log"
    if log.exists():
        report.info["log"] = log.read_text(errors="replace")[-20000:]


_CACHE: dict = {}


def cached_report(key: tuple, make) -> Report:  # type: ignore[no-untyped-def]
    """One boot per key for a whole test session: make() runs once, and an
    Unavailable harness is remembered too (each test then skips with it)."""
    if key not in _CACHE:
        try:
            _CACHE[key] = make()
        except Unavailable as e:
            _CACHE[key] = e
        except Exception as e:   # a harness fault: every test of the boot fails
            _CACHE[key] = e      # with it, none boots again (CI's time limit)
        else:
            print(format_report(_CACHE[key]))
    found = _CACHE[key]
    if isinstance(found, Exception) and not isinstance(found, Unavailable):
        raise found
    return found


def format_report(report: Report) -> str:
    lines = [f"== {report.scenario} on {report.system} ({report.flavour}), "
             f"{report.seconds:.1f} s"]
    for name, c in report.checks.items():
        mark = "PASS" if c["ok"] else "FAIL"
        detail = f"  [{c['detail']}]" if c.get("detail") else ""
        lines.append(f"  {mark} {name}{detail}")
    for k, v in report.info.items():
        if k != "log":
            lines.append(f"  info {k}: {v}")
    steps = [e for e in report.events if e.get("kind") in ("step", "done")]
    if steps:   # where the boot's time went, step by step
        lines.append("  steps: " + "; ".join(
            f"{a.get('title', a.get('scenario', 'end'))} {b['t'] - a['t']:.0f} s"
            for a, b in zip(steps, steps[1:])))
    if not report.finished:
        lines.append("  scenario did not finish; last console lines:")
        lines += ["    " + ln for ln in report.console.splitlines()[-30:]]
        lines += ["    " + ln for ln in str(report.info.get("log", "")).splitlines()[-30:]]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    import argparse
    ap = argparse.ArgumentParser(description="Boot a guest and run a wgns scenario.")
    ap.add_argument("scenario", nargs="?", default="demo",
                    help="demo (the default), core, ops, hardening, pipx_route, ...")
    ap.add_argument("--system", default="debian12", choices=sorted(SYSTEMS) + ["vm"],
                    help="vm: Debian 12 with its own kernel under qemu (kernel WireGuard)")
    ap.add_argument("--flavour", default="pypi", choices=["pypi", "system", "deb"])
    ap.add_argument("--log", action="store_true", help="also print the guest's log")
    ap.add_argument("--story", action="store_true",
                    help="tell what happened step by step, with a summary (./demo)")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from tests.harness import story
    try:
        if args.system == "vm":
            from tests.harness import vm
            report = vm.run_scenario(args.flavour, args.scenario)
        else:
            report = run_scenario(args.system, args.flavour, args.scenario)
    except Unavailable as e:
        print(f"cannot run: {e}", file=sys.stderr)
        return 2
    print(story.tell(report) if args.story else format_report(report))
    if args.log:
        print(report.info.get("log", ""))
    return story.exit_code(report)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

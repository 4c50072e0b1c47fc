"""What each writing command does: validate, render, write once, tell systemd.

`systemd` is None under --root: files are written below the root and systemd
is not called. Every check runs before the first write.
"""

from __future__ import annotations

import functools
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

from ..core.config import Tunnel, check_name
from ..core.errors import ConflictError, SystemdError, WgnsError
from ..core.names import check_service
from ..core.restore import forget as _forget_restore
from ..core.systemd import Systemd
from ..render.units import (
    CONF_DIR,
    UNIT_DIR,
    File,
    Plan,
    conf_path,
    dropin_path,
    dropin_tunnel,
    render_dropin,
    render_tunnel,
    tunnel_unit,
    watch_unit,
)
from . import metrics
from .writer import locked, lookup, read_owned, refuse_conflicts, remove_owned, under, write_plan

WANTS_DIRS = tuple(f"{UNIT_DIR}/{t}.wants" for t in ("multi-user.target", "timers.target",
                                                    "sockets.target"))
VENDOR_UNIT_DIRS = ("/etc/systemd/system", "/run/systemd/system",
                    "/usr/lib/systemd/system", "/lib/systemd/system")


F = TypeVar("F", bound=Callable[..., Any])


def serialised(fn: F) -> F:
    """Run a writing command under the root's lock (see install.locked)."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import inspect
        root = inspect.signature(fn).bind(*args, **kwargs).arguments["root"]
        with locked(root):
            return fn(*args, **kwargs)
    return wrapper  # type: ignore[return-value]


@dataclass
class Report:
    """What a command did, line by line, for the CLI to print."""
    lines: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def say(self, line: str) -> None:
        self.lines.append(line)


def installed_tunnels(root: str) -> list[str]:
    d = under(root, CONF_DIR)
    if not d.is_dir():
        return []
    return sorted(p.stem for p in d.glob("*.conf")
                  if read_owned(root, f"{CONF_DIR}/{p.name}") is not None)


def require_tunnel(root: str, name: str) -> None:
    check_name(name)
    if read_owned(root, conf_path(name)) is None:
        raise WgnsError(f"no tunnel named {name!r} is installed",
                        hint="run 'wgns install' first, or pick one with --name")


def confined_units(root: str, name: str | None = None) -> dict[str, str]:
    """{unit: tunnel} for every unit carrying a wgns drop-in."""
    out = {}
    for p in sorted(under(root, UNIT_DIR).glob("*.d/90-wgns.conf")):
        text = read_owned(root, f"{UNIT_DIR}/{p.parent.name}/{p.name}")
        tunnel = dropin_tunnel(text) if text else None
        if tunnel and (name is None or tunnel == name):
            out[p.parent.name[:-2]] = tunnel
    return out


def _host_nsswitch(root: str) -> str | None:
    """The host's nsswitch.conf (bytes that are not UTF-8 become U+FFFD:
    only its hosts: line matters, and wgns rewrites that one)."""
    from ..core.errors import ConfigError
    from ..core.safeio import read_bytes
    p = under(root, "/etc/nsswitch.conf")
    if not os.path.lexists(p):
        return None
    try:
        return read_bytes(str(p), 1 << 20).decode("utf-8", "replace")
    except ConfigError as e:
        raise WgnsError(f"cannot copy the host's name service switch: {e}") from None


def _unit_file_exists(root: str, unit: str) -> bool:
    return any(lookup(root, f"{d}/{unit}").exists() for d in VENDOR_UNIT_DIRS)


@serialised
def install(tunnel: Tunnel, root: str, python: str, sd: Systemd | None,
            start: bool = True, metrics_dir: str | None = None) -> Report:
    report = Report(warnings=list(tunnel.warnings))
    name, unit = tunnel.name, tunnel_unit(tunnel.name)
    reinstall = read_owned(root, conf_path(name)) is not None
    plan = render_tunnel(tunnel, python, _host_nsswitch(root))
    if metrics_dir is not None:  # checked by metrics.check_dir
        plan.update(metrics.render_dropin(name, metrics_dir))
    from ..core.config import MAX_CONF_BYTES
    stored = plan[conf_path(name)]
    if isinstance(stored, File) and len(stored.text.encode()) > MAX_CONF_BYTES:
        raise WgnsError(f"the tunnel's configuration would be larger than {MAX_CONF_BYTES} "
                        "bytes once stored", hint="merge AllowedIPs into fewer prefixes")
    refuse_conflicts(root, plan)  # before asking systemd, so the message names the file
    if unit in confined_units(root):
        raise ConflictError(
            f"{unit} is confined to tunnel {confined_units(root)[unit]!r}: a tunnel's own "
            "unit cannot run inside a tunnel", hint=f"run 'wgns unconfine {unit}' first, "
            "or pick another --name")
    for d in VENDOR_UNIT_DIRS[1:]:
        if lookup(root, f"{d}/{unit}").exists():
            raise ConflictError(
                f"{d}/{unit} exists and is not wgns's: the tunnel unit would clash",
                hint="pick another tunnel name with --name")
    if sd is not None and not reinstall and sd.known(unit):
        raise ConflictError(f"systemd already has a unit {unit}",
                            hint="pick another tunnel name with --name")
    if sd is not None and not reinstall and _host_interface(name):
        raise ConflictError(f"the host has an interface named {name}",
                            hint="pick another tunnel name with --name")
    previous = _previous(root, plan) if reinstall else {}
    under(root, f"{UNIT_DIR}/timers.target.wants/x")  # see removal.drop_legacy_watcher
    write_plan(root, plan)
    from .removal import drop_legacy_watcher, remove_tunnel
    drop_legacy_watcher(root, name, sd)
    report.say(f"{'updated' if reinstall else 'installed'} tunnel {name}: "
               f"{under(root, UNIT_DIR)}/{unit}, {under(root, conf_path(name))}")
    if sd is None:
        return report
    sd.reload()
    if not start:
        report.say(f"start it with: systemctl start {unit}")
        return report
    state = sd.try_restart(unit) if reinstall else sd.start(unit)
    if reinstall and state != "active":
        state = sd.start(unit)
    if state != "active":
        if not reinstall:
            remove_tunnel(root, name, sd, Report())
        else:
            _put_back(root, plan, previous, sd, unit)
        raise SystemdError(
            f"{unit} did not start (state {state}); "
            + ("the previous configuration was put back" if reinstall
               else "nothing was installed"),
            hint=f"see 'journalctl -u {unit}'")
    # Queued, not waited for: the watcher's first look takes the writers'
    # lock, which this command holds. A re-install's watcher runs the new copy.
    sd.restart(watch_unit(name), wait=False)
    report.say(f"{unit} is active; confine a service with: wgns confine UNIT"
               + ("" if name == "wg" else f" --name {name}"))
    return report


def _previous(root: str, plan: Plan) -> Plan:
    """The files of a working install that a new plan replaces."""
    from .writer import _snapshot
    out: Plan = {}
    for path in plan:
        before = _snapshot(under(root, path))
        if before is not None:
            out[path] = before
    return out


def _put_back(root: str, plan: Plan, previous: Plan, sd: Systemd, unit: str) -> None:
    """A re-install whose new configuration did not start: the previous
    files back, and the tunnel started on them again."""
    remove_owned(root, [p for p in plan if p not in previous])
    write_plan(root, previous)
    sd.reload()
    sd.start(unit)


def _host_interface(name: str) -> bool:
    import socket
    try:
        socket.if_nametoindex(name)
    except OSError:
        return False
    return True


def normalize_unit(unit: str) -> str:
    return check_service(unit)


def _own_unit(unit: str, root: str) -> bool:
    return (unit.startswith(("netns@", "wgns-"))
            or unit[: -len(".service")] in installed_tunnels(root))


@serialised
def confine(units: list[str], name: str, root: str, sd: Systemd | None,
            force: bool = False, restart: bool = True) -> Report:
    report = Report()
    require_tunnel(root, name)
    units = [normalize_unit(u) for u in units]
    current = confined_units(root)
    plan: Plan = {}
    for unit in units:
        if _own_unit(unit, root):
            raise WgnsError(f"{unit} belongs to wgns itself and cannot be confined")
        if current.get(unit, name) != name:
            raise WgnsError(f"{unit} is confined to tunnel {current[unit]!r} already",
                            hint=f"run 'wgns unconfine {unit}' first")
        if not force:
            known = sd.known(unit) if sd is not None else _unit_file_exists(root, unit)
            if not known:
                raise WgnsError(f"systemd does not know {unit}",
                                hint="check the name, or use --force for a unit "
                                "installed later")
        plan.update(render_dropin(unit, name))
    write_plan(root, plan)
    for unit in units:
        report.say(f"confined {unit} to tunnel {name}")
    if sd is not None:
        sd.reload()
        _verify_loaded(units, name, root, sd, plan)
        _restart_running(units, sd, restart, report, "runs confined now")
    return report


def _verify_loaded(units: list[str], name: str, root: str, sd: Systemd, plan: Plan) -> None:
    """What systemd loaded must be the confinement: a later drop-in (a
    'systemctl edit' override.conf sorts after 90-wgns.conf) can undo it.
    Then the drop-ins go again and nothing is restarted into a leak."""
    from .check import loaded_confinement
    for unit in units:
        if not sd.known(unit):
            continue  # --force for a unit installed later: systemd has nothing loaded
        gaps = loaded_confinement(sd, unit, name)
        if gaps:
            remove_owned(root, list(plan), prune=[f"{UNIT_DIR}/{u}.d" for u in units])
            sd.reload()
            raise WgnsError(
                f"{unit}: another drop-in overrides the confinement ({gaps[0]}); "
                "nothing was confined", hint=f"see 'systemctl cat {unit}'")


def _restart_running(units: list[str], sd: Systemd, restart: bool, report: Report,
                     what: str) -> None:
    for unit in units:
        if sd.active_state(unit) not in ("active", "activating", "reloading"):
            continue
        if not restart:
            report.warnings.append(
                f"{unit} is running and keeps its old network until you restart it")
            continue
        state = sd.try_restart(unit)
        report.say(f"restarted {unit}: {what} ({state})")


@serialised
def unconfine(units: list[str], root: str, sd: Systemd | None,
              restart: bool = True) -> Report:
    report = Report()
    units = [normalize_unit(u) for u in units]
    current = confined_units(root)
    from .expose import exposures
    for unit in units:
        if unit not in current:
            raise WgnsError(f"{unit} is not confined by wgns")
        exposed = [info for _, info in exposures(root) if info[0] == unit]
        if exposed:
            raise WgnsError(
                f"{unit} has port {exposed[0][1]} exposed on {exposed[0][3]}",
                hint=f"run 'wgns unexpose {unit} {exposed[0][1]} --name {exposed[0][2]}' "
                "first")
    remove_owned(root, [dropin_path(u) for u in units],
                 prune=[f"{UNIT_DIR}/{u}.d" for u in units])
    if sd is not None:
        for tunnel in set(current[u] for u in units):
            _forget_restore(tunnel, units)
    for unit in units:
        report.say(f"unconfined {unit} (was on tunnel {current[unit]})")
    if sd is not None:
        sd.reload()
        _restart_running(units, sd, restart, report, "no longer confined")
    return report


@serialised
def uninstall(name: str, root: str, sd: Systemd | None) -> Report:
    report = Report()
    check_name(name)
    # A run killed before it wrote the config still left marked unit files.
    if read_owned(root, f"{UNIT_DIR}/{tunnel_unit(name)}") is None:
        require_tunnel(root, name)
    from .removal import remove_tunnel
    remove_tunnel(root, name, sd, report)
    return report


def python_path() -> str:
    """The interpreter the units run the helpers with: the CLI's own, so
    that pip, pipx, venv and .deb installs each call their own wgns."""
    return str(Path(sys.executable))

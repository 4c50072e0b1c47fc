"""What each writing command does: validate, render, write once, tell systemd.

`systemd` is None under --root: files are written below the root and systemd
is not called. Every check runs before the first write.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from .config import Tunnel, check_name
from .errors import ConflictError, SystemdError, WgnsError
from .install import conflicts, read_owned, remove_owned, under, write_plan
from .render import (
    CONF_DIR,
    NETNS_UNIT,
    UNIT_DIR,
    Plan,
    conf_path,
    dropin_path,
    dropin_tunnel,
    render_dropin,
    render_tunnel,
    tunnel_unit,
)
from .systemd import Systemd

VENDOR_UNIT_DIRS = ("/etc/systemd/system", "/run/systemd/system",
                    "/usr/lib/systemd/system", "/lib/systemd/system")


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
    p = under(root, "/etc/nsswitch.conf")
    return p.read_text() if p.is_file() else None


def _unit_file_exists(root: str, unit: str) -> bool:
    return any(under(root, f"{d}/{unit}").exists() for d in VENDOR_UNIT_DIRS)


def install(tunnel: Tunnel, root: str, python: str, sd: Systemd | None,
            start: bool = True) -> Report:
    report = Report(warnings=list(tunnel.warnings))
    name, unit = tunnel.name, tunnel_unit(tunnel.name)
    reinstall = read_owned(root, conf_path(name)) is not None
    plan = render_tunnel(tunnel, python, _host_nsswitch(root))
    bad = conflicts(root, plan)
    if bad:
        raise ConflictError(
            f"{bad[0]} exists and was not written by wgns; refusing to overwrite it",
            hint="move it away, or pick another tunnel with --name")
    for d in VENDOR_UNIT_DIRS[1:]:
        if under(root, f"{d}/{unit}").exists():
            raise ConflictError(
                f"{d}/{unit} exists and is not wgns's: the tunnel unit would clash",
                hint="pick another tunnel name with --name")
    if sd is not None and not reinstall and sd.known(unit):
        raise ConflictError(f"systemd already has a unit {unit}",
                            hint="pick another tunnel name with --name")
    write_plan(root, plan)
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
            _remove_tunnel(root, name, sd, Report())
        raise SystemdError(
            f"{unit} did not start (state {state})"
            + ("" if reinstall else "; nothing was installed"),
            hint=f"see 'journalctl -u {unit}'")
    report.say(f"{unit} is active; confine a service with: wgns confine UNIT"
               + ("" if name == "wg" else f" --name {name}"))
    return report


def normalize_unit(unit: str) -> str:
    if "/" in unit or not unit or unit.startswith("."):
        raise WgnsError(f"{unit!r} is not a unit name")
    if "." not in unit:
        unit += ".service"
    if not unit.endswith(".service"):
        raise WgnsError(f"{unit}: only .service units can be confined")
    return unit


def _own_unit(unit: str, root: str) -> bool:
    return unit.startswith("netns@") or unit[: -len(".service")] in installed_tunnels(root)


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
        _restart_running(units, sd, restart, report, "runs confined now")
    return report


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


def unconfine(units: list[str], root: str, sd: Systemd | None,
              restart: bool = True) -> Report:
    report = Report()
    units = [normalize_unit(u) for u in units]
    current = confined_units(root)
    for unit in units:
        if unit not in current:
            raise WgnsError(f"{unit} is not confined by wgns")
    remove_owned(root, [dropin_path(u) for u in units],
                 prune=[f"{UNIT_DIR}/{u}.d" for u in units])
    for unit in units:
        report.say(f"unconfined {unit} (was on tunnel {current[unit]})")
    if sd is not None:
        sd.reload()
        _restart_running(units, sd, restart, report, "no longer confined")
    return report


def uninstall(name: str, root: str, sd: Systemd | None) -> Report:
    report = Report()
    require_tunnel(root, name)
    _remove_tunnel(root, name, sd, report)
    return report


def _remove_tunnel(root: str, name: str, sd: Systemd | None, report: Report) -> None:
    unit = tunnel_unit(name)
    confined = list(confined_units(root, name))
    if sd is not None:
        # Stopping the tunnel stops every confined unit (BindsTo=), and the
        # namespace unit after it (StopWhenUnneeded=).
        for u in (unit, f"netns@{name}.service"):
            if sd.stop(u) not in ("inactive", "failed"):
                raise SystemdError(f"{u} did not stop", hint=f"see 'journalctl -u {u}'")
    paths = [dropin_path(u) for u in confined] + [
        f"{UNIT_DIR}/{unit}", f"{UNIT_DIR}/multi-user.target.wants/{unit}",
        conf_path(name), f"{CONF_DIR}/{name}/resolv.conf",
        f"{CONF_DIR}/{name}/nsswitch.conf",
    ]
    if installed_tunnels(root) == [name]:
        paths.append(f"{UNIT_DIR}/{NETNS_UNIT}")
    prune = [f"{UNIT_DIR}/{u}.d" for u in confined] + [
        f"{CONF_DIR}/{name}", CONF_DIR, f"{UNIT_DIR}/multi-user.target.wants"]
    remove_owned(root, paths, prune)
    if sd is not None:
        sd.reload()
        for u in (unit, f"netns@{name}.service"):
            sd.reset_failed(u)
    for u in confined:
        report.say(f"unconfined {u}" + ("" if sd is None else
                   ": it was stopped with the tunnel and stays stopped; start it "
                   "again when you want it to run outside a tunnel"))
    report.say(f"removed tunnel {name}")


def python_path() -> str:
    """The interpreter the units run the helpers with: the CLI's own, so
    that pip, pipx, venv and .deb installs each call their own wgns."""
    return str(Path(sys.executable))

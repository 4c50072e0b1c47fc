"""`wgns confine` and `wgns unconfine`: units added to or taken from a
tunnel's record, their drop-ins rendered from it, systemd reloaded, what
it loaded checked, running units restarted into (or out of) the tunnel."""

from __future__ import annotations

from ..core.errors import WgnsError
from ..core.files import lookup
from ..core.installed import installed, load
from ..core.names import check_service
from ..core.restore import forget as forget_restore
from ..core.systemd import Systemd
from . import store
from .check import loaded_confinement
from .store import Report, serialised

VENDOR_UNIT_DIRS = ("/etc/systemd/system", "/run/systemd/system",
                    "/usr/lib/systemd/system", "/lib/systemd/system")


def _own_unit(unit: str, root: str) -> bool:
    return (unit.startswith(("netns@", "wgns-"))
            or unit[: -len(".service")] in installed(root))


def _unit_file_exists(root: str, unit: str) -> bool:
    return any(lookup(root, f"{d}/{unit}").exists() for d in VENDOR_UNIT_DIRS)


@serialised
def confine(units: list[str], name: str, root: str, sd: Systemd | None,
            force: bool = False, restart: bool = True) -> Report:
    report = Report()
    before = store.require_tunnel(root, name)
    units = [check_service(u) for u in units]
    current = store.confined_units(root)
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
    added = tuple(u for u in dict.fromkeys(units) if u not in before.confined)
    after = before.change(confined=before.confined + added)
    store.save(root, before, after)
    for unit in units:
        report.say(f"confined {unit} to tunnel {name}")
    if sd is not None:
        sd.reload()
        _verify_loaded(units, root, sd, before, after)
        _restart_running(units, sd, restart, report, "runs confined now")
    return report


def _verify_loaded(units: list[str], root: str, sd: Systemd, before: store.Record,
                   after: store.Record) -> None:
    """What systemd loaded must be the confinement: a later drop-in (a
    'systemctl edit' override.conf sorts after 90-wgns.conf) can undo it.
    Then the record is put back and nothing is restarted into a leak."""
    for unit in units:
        if not sd.known(unit):
            continue  # --force for a unit installed later: systemd has nothing loaded
        gaps = loaded_confinement(sd, unit, after.name)
        if gaps:
            store.save(root, after, before)
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
    units = [check_service(u) for u in units]
    current = store.confined_units(root)
    for unit in units:
        if unit not in current:
            raise WgnsError(f"{unit} is not confined by wgns")
        record = load(root, current[unit])
        exposed = [e for e in record.exposes if e.unit == unit]
        if exposed:
            e = exposed[0]
            raise WgnsError(f"{unit} has port {e.port} exposed on {e.listen}",
                            hint=f"run 'wgns unexpose {unit} {e.port}"
                            + (" --udp" if e.proto == "udp" else "")
                            + f" --name {record.name}' first")
    for tunnel in sorted({current[u] for u in units}):
        before = load(root, tunnel)
        store.save(root, before, before.change(
            confined=tuple(u for u in before.confined if u not in units)))
        if sd is not None:
            forget_restore(tunnel, units)
    for unit in units:
        report.say(f"unconfined {unit} (was on tunnel {current[unit]})")
    if sd is not None:
        sd.reload()
        _restart_running(units, sd, restart, report, "no longer confined")
    return report

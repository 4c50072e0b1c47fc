"""Taking a tunnel away: everything `wgns uninstall` (and a failed first
install) stops and removes, and the watcher timer of wgns 0.1.0 that a
re-install replaces. CLI side, called from ops.py."""

from __future__ import annotations

from ..core.errors import SystemdError
from ..core.systemd import Systemd
from ..render.units import (
    CONF_DIR,
    LEGACY_WATCH_TIMER,
    NETNS_UNIT,
    UNIT_DIR,
    WATCH_UNITS,
    conf_path,
    dropin_path,
    forward_unit,
    legacy_watch_paths,
    tunnel_unit,
    watch_unit,
)
from . import metrics
from .ops import WANTS_DIRS, Report, confined_units, installed_tunnels
from .writer import read_owned, remove_owned, under


def drop_legacy_watcher(root: str, name: str, sd: Systemd | None) -> None:
    """wgns 0.1.0 watched with a timer: stop and remove this tunnel's, and
    the template once no tunnel uses it."""
    if sd is not None and under(root, legacy_watch_paths(name)[0]).is_symlink():
        sd.stop(f"wgns-watch@{name}.timer")
    remove_owned(root, legacy_watch_paths(name))
    if not list(under(root, f"{UNIT_DIR}/timers.target.wants").glob("wgns-watch@*.timer")):
        remove_owned(root, [f"{UNIT_DIR}/{LEGACY_WATCH_TIMER}"],
                     prune=[f"{UNIT_DIR}/timers.target.wants"])



def remove_tunnel(root: str, name: str, sd: Systemd | None, report: Report) -> None:
    unit = tunnel_unit(name)
    from .bridge import owned_bridges, unit_paths
    from .forward import _paths as forward_paths
    confined = list(confined_units(root, name))
    exposed = owned_bridges(root, name)  # exposes and reaches
    forwarding = [forward_unit(name)] if read_owned(
        root, f"{UNIT_DIR}/{forward_unit(name)}") is not None else []
    for d in (f"{CONF_DIR}/{name}/x", *WANTS_DIRS, *(dropin_path(u) for u in confined),
              metrics.dropin_path(name)):
        under(root, d)  # a symlinked directory: refuse before stopping anything
    if sd is not None:
        # The watcher first, so it cannot restart what is being removed.
        # Stopping the tunnel stops every confined unit and proxy (BindsTo=),
        # and the namespace unit after it (StopWhenUnneeded=).
        stops = [watch_unit(name), *(f"{b}.socket" for b in exposed), *forwarding,
                 unit, f"netns@{name}.service"]
        for u in stops:
            if sd.stop(u) not in ("inactive", "failed"):
                raise SystemdError(f"{u} did not stop", hint=f"see 'journalctl -u {u}'")
    paths = [dropin_path(u) for u in confined] + [
        f"{UNIT_DIR}/{unit}", f"{UNIT_DIR}/multi-user.target.wants/{unit}",
        f"{UNIT_DIR}/multi-user.target.wants/{watch_unit(name)}", *legacy_watch_paths(name),
        conf_path(name), f"{CONF_DIR}/{name}/resolv.conf",
        f"{CONF_DIR}/{name}/nsswitch.conf",
    ]
    for base in exposed:
        paths += unit_paths(base, name)
    paths += forward_paths(name)
    if installed_tunnels(root) == [name]:
        paths += [f"{UNIT_DIR}/{NETNS_UNIT}", f"{UNIT_DIR}/{LEGACY_WATCH_TIMER}"] + [
            f"{UNIT_DIR}/{u}" for u in WATCH_UNITS]
    prune = [f"{UNIT_DIR}/{u}.d" for u in confined] + [
        f"{CONF_DIR}/{name}", CONF_DIR, f"{UNIT_DIR}/{unit}.wants", *WANTS_DIRS]
    remove_owned(root, paths, prune)
    metrics.forget(root, name, live=sd is not None)
    if sd is not None:
        from ..core.restore import clear_all
        clear_all(name)
        sd.reload()
        for u in (unit, f"netns@{name}.service", f"wgns-watch@{name}.service", *forwarding,
                  *(f"{b}.{kind}" for b in exposed for kind in ("socket", "service"))):
            sd.reset_failed(u)
    for u in confined:
        report.say(f"unconfined {u}" + ("" if sd is None else
                   ": it was stopped with the tunnel and stays stopped; start it "
                   "again when you want it to run outside a tunnel"))
    report.say(f"removed tunnel {name}")

"""`wgns install` and `wgns uninstall`: a tunnel's record made (or its
tunnel replaced, everything else declared for it kept), rendered, written
once, and systemd told; or everything it rendered stopped and removed.

`sd` is None under --root: files are written below the root and systemd is
not called. Every check runs before the first write.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import time
from dataclasses import replace

from ..core import paths
from ..core.config import MAX_CONF_BYTES, Tunnel, check_name
from ..core.errors import ConflictError, SystemdError, WgnsError
from ..core.files import lookup, read_owned, under
from ..core.installed import installed, load, stored
from ..core.paths import UNIT_DIR, WATCH_UNIT, tunnel_unit
from ..core.plan import File, Plan
from ..core.provider import Pia
from ..core.record import Forward, Record
from ..core.restore import clear_all
from ..core.systemd import Systemd
from ..render.tunnel import render
from . import metrics_dir, store
from .store import Report, serialised
from .writer import refuse_conflicts, remove_owned, write_plan

VENDOR_UNIT_DIRS = ("/etc/systemd/system", "/run/systemd/system",
                    "/usr/lib/systemd/system", "/lib/systemd/system")


def _checks(root: str, record: Record, sd: Systemd | None) -> None:
    name, unit = record.name, tunnel_unit(record.name)
    stored_conf = render(record)[paths.conf_path(name)]
    if isinstance(stored_conf, File) and len(stored_conf.text.encode()) > MAX_CONF_BYTES:
        raise WgnsError(f"the tunnel's configuration would be larger than {MAX_CONF_BYTES} "
                        "bytes once stored", hint="merge AllowedIPs into fewer prefixes")
    refuse_conflicts(root, store.plan_of(root, record))  # the message names the file
    confined = store.confined_units(root)
    if unit in confined:
        raise ConflictError(
            f"{unit} is confined to tunnel {confined[unit]!r}: a tunnel's own unit cannot "
            "run inside a tunnel", hint=f"run 'wgns unconfine {unit}' first, "
            "or pick another --name")
    name_free(root, name, sd)


def name_free(root: str, name: str, sd: Systemd | None) -> None:
    """ConflictError when a new tunnel NAME would clash with a unit or an
    interface that is not wgns's (a tunnel installed already is free to
    update). Also asked before a provider's API is (install --provider)."""
    unit = tunnel_unit(name)
    reinstall = name in installed(root)
    for d in VENDOR_UNIT_DIRS[1:]:
        if lookup(root, f"{d}/{unit}").exists():
            raise ConflictError(f"{d}/{unit} exists and is not wgns's: the tunnel unit "
                                "would clash", hint="pick another tunnel name with --name")
    if sd is not None and not reinstall and sd.known(unit):
        raise ConflictError(f"systemd already has a unit {unit}",
                            hint="pick another tunnel name with --name")
    if sd is not None and not reinstall and _host_interface(name):
        raise ConflictError(f"the host has an interface named {name}",
                            hint="pick another tunnel name with --name")


def _host_interface(name: str) -> bool:
    try:
        socket.if_nametoindex(name)
    except OSError:
        return False
    return True


@serialised
def install(tunnel: Tunnel, root: str, python: str, sd: Systemd | None,
            start: bool = True, metrics: str | None = None,
            provider: Pia | None = None) -> Report:
    report = Report(warnings=list(tunnel.warnings))
    name, unit = tunnel.name, tunnel_unit(tunnel.name)
    reinstall = name in installed(root)
    before = load(root, name) if reinstall else None
    legacy = reinstall and stored(root, name) is None
    after = store.new_record(tunnel, root, python).change(provider=provider)
    if before is not None:   # everything else declared for it stays
        after = after.change(confined=before.confined, exposes=before.exposes,
                             reaches=before.reaches, forward=_forward(before, provider),
                             metrics_dir=before.metrics_dir)
    if metrics is not None:   # checked by metrics_dir.check_dir
        after = after.change(metrics_dir=metrics)
    _checks(root, after, sd)
    previous = _snapshot(root, store.plan_of(root, before)) if before is not None else {}
    store.save(root, before, after)
    report.say(f"{'updated' if reinstall else 'installed'} tunnel {name}: "
               f"{under(root, UNIT_DIR)}/{unit}, {under(root, paths.conf_path(name))}")
    if metrics is not None:
        report.say(metrics_dir.where(name, metrics))
    if sd is None:
        return report
    if legacy:   # an older wgns's own watcher of this tunnel goes
        sd.stop(paths.legacy_watch_instance(name))
    sd.reload()
    if not start:
        _watcher_to(sd, before, after, only_if_running=True)
        report.say(f"start it with: systemctl start {unit}")
        return report
    state = sd.try_restart(unit) if reinstall else sd.start(unit)
    if reinstall and state != "active":
        state = sd.start(unit)
    if state != "active":
        if before is None:
            _remove(root, after, sd, Report())
        else:
            _put_back(root, after, previous, sd, unit)
        raise SystemdError(f"{unit} did not start (state {state}); "
                           + ("the previous configuration was put back" if reinstall
                              else "nothing was installed"),
                           hint=f"see 'journalctl -u {unit}'")
    _watcher_to(sd, before, after, only_if_running=False)
    report.say(f"{unit} is active; confine a service with: wgns confine UNIT"
               + ("" if name == "wg" else f" --name {name}"))
    return report


def _forward(before: Record, provider: Pia | None) -> Forward | None:
    """The port forwarding a re-installed tunnel keeps: PIA's follows the
    new server's gateway; a tunnel no longer PIA's cannot keep it."""
    f = before.forward
    if f is None or f.method != "pia":
        return f
    if provider is None:
        raise ConflictError(f"tunnel {before.name} forwards a port by PIA's API, and this "
                            "tunnel is not made through PIA",
                            hint=f"run 'wgns port-forward --off --name {before.name}' first")
    return replace(f, gateway=provider.gateway)


def _watcher_to(sd: Systemd, before: Record | None, after: Record,
                only_if_running: bool) -> None:
    """The watcher restarted on what was just written (a re-install's runs
    the new copy; a new --metrics-dir needs its ReadWritePaths=), then the
    tunnel's metrics file in a directory used before removed once the old
    process is gone (it could be writing it). Queued, not waited for: the
    new watcher's first look takes the writers' lock, which this command
    holds. With --no-start, a stopped watcher stays stopped."""
    old = sd.main_pid(WATCH_UNIT)
    if only_if_running:
        sd.restart_if_running(WATCH_UNIT)
    else:
        sd.restart(WATCH_UNIT, wait=False)
    if before is not None and before.metrics_dir != after.metrics_dir:
        gone_within(old, 10.0)
        metrics_dir.moved(after.name, before.metrics_dir, after.metrics_dir)


def gone_within(pid: int, seconds: float) -> bool:
    """Whether process PID (0: none) ended within SECONDS."""
    deadline = time.monotonic() + seconds
    while pid and os.path.exists(f"/proc/{pid}"):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _snapshot(root: str, plan: Plan) -> Plan:
    """The files of a working install that a new plan replaces."""
    from .writer import _snapshot as one
    out: Plan = {}
    for path in plan:
        item = one(under(root, path))
        if item is not None:
            out[path] = item
    return out


def _put_back(root: str, plan_record: Record, previous: Plan, sd: Systemd, unit: str) -> None:
    """A re-install whose new configuration did not start: the previous
    files back, and the tunnel started on them again."""
    remove_owned(root, [p for p in store.plan_of(root, plan_record) if p not in previous])
    write_plan(root, previous)
    sd.reload()
    sd.start(unit)


BRIDGE = re.compile(r"wgns-([a-z0-9_-]{1,15})-(?:reach|expose)(?:-udp)?-[0-9]{1,5}")


def owned_bridges(root: str, name: str) -> list[str]:
    """The base names of every bridge unit wgns wrote for tunnel NAME, by
    file name alone (the pattern render writes), whatever the record says:
    what uninstall takes away even when the record lost one."""
    found = set()
    for p in under(root, UNIT_DIR).glob(f"wgns-{name}-*"):
        base, _, kind = p.name.rpartition(".")
        m = BRIDGE.fullmatch(base)
        if m and m.group(1) == name and kind in ("socket", "service") \
                and read_owned(root, f"{UNIT_DIR}/{p.name}") is not None:
            found.add(base)
    return sorted(found)


def _remove(root: str, record: Record, sd: Systemd | None, report: Report) -> None:
    name, unit = record.name, tunnel_unit(record.name)
    bridges = owned_bridges(root, name)
    for u in record.confined:
        under(root, paths.dropin_path(u))  # a symlinked directory: refuse before stopping
    last = installed(root) in ([name], [])
    if sd is not None:
        # Stopping the tunnel stops every confined unit and proxy (BindsTo=),
        # and the namespace unit after it (StopWhenUnneeded=). The watcher
        # respects a stopped tunnel; it goes too with the last one.
        forwarding = [paths.forward_unit(name)] if record.forward else []
        stops = [*([WATCH_UNIT] if last else []), paths.legacy_watch_instance(name),
                 *(f"{b}.socket" for b in bridges), *forwarding, unit, f"netns@{name}.service"]
        for u in stops:
            if sd.stop(u) not in ("inactive", "failed"):
                raise SystemdError(f"{u} did not stop", hint=f"see 'journalctl -u {u}'")
    store.save(root, record, None, keep_shared=not last)
    extra = [f"{UNIT_DIR}/{b}.{k}" for b in bridges for k in ("socket", "service")]
    extra += [f"{UNIT_DIR}/{unit}.wants/{b}.socket" for b in bridges]
    remove_owned(root, extra, prune=store.prunable(extra))
    metrics_dir.forget(name, record.metrics_dir, live=sd is not None)
    _forget_state(root, name)
    if sd is not None:
        clear_all(name)
        sd.reload()
        for u in (unit, f"netns@{name}.service", paths.forward_unit(name),
                  *(f"{b}.{k}" for b in bridges for k in ("socket", "service"))):
            sd.reset_failed(u)
    for u in record.confined:
        report.say(f"unconfined {u}" + ("" if sd is None else
                   ": it was stopped with the tunnel and stays stopped; start it "
                   "again when you want it to run outside a tunnel"))
    report.say(f"removed tunnel {name}")


def _forget_state(root: str, name: str) -> None:
    """The forwarding unit's state directory (PIA's kept signature holds a
    token), then its parents systemd made for it (/var/lib/wgns,
    /var/lib/private/wgns) once no other tunnel's is in them."""
    for d in paths.forward_state_dirs(name):
        try:
            where = under(root, d)
        except WgnsError:   # a symlinked directory on the way: not followed
            continue
        if where.is_symlink():   # a dynamic user's: a link into /var/lib/private
            where.unlink()
        else:
            shutil.rmtree(where, ignore_errors=True)
        try:
            where.parent.rmdir()
        except OSError:   # absent, or another tunnel's state in it
            pass


@serialised
def uninstall(name: str, root: str, sd: Systemd | None) -> Report:
    check_name(name)
    report = Report()
    if name not in installed(root):
        if read_owned(root, f"{UNIT_DIR}/{tunnel_unit(name)}") is None:
            store.require_tunnel(root, name)   # the one-line error
        # A run killed before it wrote the tunnel's file left marked units.
        remove_owned(root, [f"{UNIT_DIR}/{tunnel_unit(name)}",
                            f"{paths.WANTS}/{tunnel_unit(name)}"])
        report.say(f"removed what was left of tunnel {name}")
        return report
    _remove(root, load(root, name), sd, report)
    return report


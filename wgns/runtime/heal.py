"""Self-healing: one look at a tunnel, which `wgns-watch.service`
(watcher.py) takes when something happened, and every 60 s.

- The tunnel unit is not active: nothing to do. Either someone stopped it
  (respected) or it is failing and `Restart=on-failure` retries it.
- The tunnel unit is active but its namespace or link is gone (wireguard-go
  died, someone deleted the link): restart the tunnel unit. An explicit
  restart propagates through `BindsTo=` to every running confined unit, so
  they restart with it and join the new namespace. The confined units that
  were running are written to /run/wgns/NAME.restore first; the tunnel's
  `up` starts them once it is up again, so they also come back when the
  restart itself failed and only a later automatic retry succeeded.
- Otherwise, for each peer whose endpoint is a host name: when the device's
  endpoint is no longer among the addresses the name resolves to, or the
  latest handshake is stale (older than 135 s, as wireguard-tools'
  reresolve-dns.sh), point the peer at the resolved address in place. No
  restart: confined units keep running. A tunnel made through PIA whose
  key was refused gets a new one, and a restart (rereg.py).
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from typing import TYPE_CHECKING

from ..core import netns, restore, wireguard
from ..core.config import Tunnel
from ..core.errors import SystemdError, WgnsError
from ..core.files import write_atomic
from ..core.installed import load, load_tunnel
from ..core.paths import tunnel_unit
from . import rereg, wgconf

if TYPE_CHECKING:
    from ..core.systemd import Systemd

STALE_AFTER = 135


def confined(name: str) -> list[str]:
    """The units the record of tunnel NAME confines to it (none when the
    record cannot be read: nothing is started or restored on a guess)."""
    try:
        return list(load("/", name).confined)
    except WgnsError:
        return []


def link_problem(name: str) -> str | None:
    """Why the tunnel's data path is broken, or None."""
    if not netns.exists(name):
        return f"namespace {netns.path(name)} is gone"

    if not netns.run_in(name, lambda: netns.has_link(name)):
        return f"link {name} is gone from its namespace"
    if wireguard.device_info(name) is None:
        return f"the WireGuard device {name} does not answer"
    return None


def _endpoint_host(endpoint: str | None) -> str | None:
    if not endpoint:
        return None
    host = endpoint.rsplit(":", 1)[0]
    return host.strip("[]")


def reresolve(tunnel: Tunnel, now: float | None = None) -> list[str]:
    """Follow endpoints whose host name now resolves elsewhere. Returns what
    was changed, one line each."""
    device = wireguard.device_info(tunnel.name)
    if device is None:
        return []
    live = {p.public_key: p for p in device.peers}
    now = time.time() if now is None else now
    changes = []
    for peer in tunnel.peers:
        ep = peer.endpoint
        if ep is None or ep.is_literal or peer.public_key not in live:
            continue
        try:
            infos = socket.getaddrinfo(ep.host, ep.port, type=socket.SOCK_DGRAM)
        except socket.gaierror:
            continue  # the name does not resolve now: keep what we have
        addresses = []
        for info in infos:
            if str(info[4][0]) not in addresses:
                addresses.append(str(info[4][0]))
        state = live[peer.public_key]
        current = _endpoint_host(state.endpoint)
        stale = state.latest_handshake is None or now - state.latest_handshake > STALE_AFTER
        if current in addresses and not (stale and len(addresses) > 1):
            continue
        if current in addresses:  # stale, and the name has others: try the next
            new = addresses[(addresses.index(current) + 1) % len(addresses)]
        else:
            new = addresses[0]
        wgconf.set_endpoint(tunnel.name, device, peer, (new, ep.port))
        changes.append(f"{tunnel.name}: peer {peer.public_key[:8]}... endpoint "
                       f"{ep.host} now {new} (was {current})")
    return changes


BACKOFF_FIRST = 20.0   # seconds before a second restart for the same fault
BACKOFF_MAX = 600.0


def count(name: str, reason: str, n: int = 1) -> None:
    """What the watcher did, by reason, in /run/wgns/NAME.restarts (a JSON
    object; metrics.py reads it): link_gone, netns_gone, endpoint_moved,
    backoff (a restart held back). Gone at reboot, like the rest of /run."""
    import json
    path = f"{restore.RESTORE_DIR}/{name}.restarts"
    try:
        with open(path) as f:
            counts = json.load(f)
        if not isinstance(counts, dict):
            counts = {}
    except (OSError, ValueError):
        counts = {}
    value = counts.get(reason)
    counts[reason] = (value if isinstance(value, int) else 0) + n
    with contextlib.suppress(OSError):
        os.makedirs(restore.RESTORE_DIR, mode=0o755, exist_ok=True)
        write_atomic(path, json.dumps(counts))


def _backoff(name: str) -> tuple[int, float]:
    """(restarts in a row without the tunnel getting healthy, time of the last)."""
    return restore.read_count(name, "backoff")


def _set_backoff(name: str, count: int, when: float) -> None:
    restore.write_count(name, "backoff", count, when)


def backoff_wait(count: int) -> float:
    """Seconds to wait after `count` restarts in a row: 0, 20, 40, 80 ... 600."""
    return restore.backoff(count, BACKOFF_FIRST, BACKOFF_MAX)


def _settled_active(sd: Systemd, unit: str) -> bool:
    """Active, with no job queued: neither starting nor being stopped."""
    return sd.active_state(unit) == "active" and not sd.jobs(unit)


def confined_here(sd: Systemd, unit: str, name: str) -> bool:
    """systemd has UNIT loaded confined to tunnel NAME right now."""
    try:
        props = sd.service_properties(unit)
    except SystemdError:
        return False
    return (props["NetworkNamespacePath"] == netns.path(name)
            and f"{name}.service" in props["BindsTo"])


def start_confined(sd: Systemd, name: str, units: list[str], why: str) -> list[str]:
    """Queue a start of each unit that is confined to this tunnel now and
    not running or queued; never a unit that would run outside it."""
    started = []
    for unit in units:
        if not confined_here(sd, unit, name):
            continue
        if sd.active_state(unit) in ("active", "activating", "reloading") or sd.jobs(unit):
            continue
        sd.enqueue_start(unit)
        started.append(unit)
    return [f"{name}: starting {', '.join(started)} ({why})"] if started else []


def _booted_path(name: str) -> str:
    return f"{restore.RESTORE_DIR}/{name}.booted"


def missed_at_boot(sd: Systemd, name: str) -> list[str]:
    """Enabled confined units that never ran since boot: their start failed
    because the tunnel could not start then. A unit that ran and was
    stopped by a person has left the inactive state once, and is left alone;
    each unit is started this way once per boot (/run/wgns/NAME.booted), so
    one whose conditions keep it from running is not tried at every look."""
    try:
        with open(_booted_path(name)) as f:
            done = set(f.read().split())
    except OSError:
        done = set()
    return [u for u in confined(name) if u not in done
            and sd.unit_file_state(u) == "enabled" and not sd.ever_started(u)
            and sd.active_state(u) in ("inactive", "failed")]


def start_missed_at_boot(sd: Systemd, name: str) -> list[str] | None:
    """Under the writers' lock, so that an unconfine cannot slip in between
    the check that a unit is confined and its start. None when the lock was
    busy (a wgns command runs): the check is still to do."""
    from ..core.safeio import dir_lock
    with dir_lock("/", timeout=5) as held:
        if not held:
            return None
        units = missed_at_boot(sd, name)
        lines = start_confined(sd, name, units, "enabled, and missed at boot")
        if units:   # still under the lock: an uninstall waiting for it removes the file
            os.makedirs(restore.RESTORE_DIR, mode=0o755, exist_ok=True)
            with open(_booted_path(name), "a") as f:
                f.write("".join(u + "\n" for u in units))
    return lines


def watch(name: str) -> list[str]:
    """One full look, with the boot check (see look())."""
    return look(name, boot_check=True)[0]


def look(name: str, boot_check: bool) -> tuple[list[str], bool | None]:
    """One look: what it did, and whether the tunnel was seen active and
    healthy (None: it is starting or stopping, worth another look soon).
    The boot check (confined units that missed their start) costs a D-Bus
    call or three per confined unit: the watcher asks for it only until the
    tunnel was seen healthy after its namespace changed."""
    from ..core.systemd import Systemd

    unit = tunnel_unit(name)
    with Systemd() as sd:
        if not _settled_active(sd, unit):
            # Stopped (respected), or starting/stopping (failing and being
            # retried, at boot): not ours to touch, but the latter soon settles.
            state = sd.active_state(unit)
            moving = state != "inactive" and (state != "failed" or bool(sd.jobs(unit)))
            return [], None if moving else False
        problem = link_problem(name)
        if problem is None:
            if _backoff(name)[0]:
                _set_backoff(name, 0, 0)
            lines = reresolve(load_tunnel("/", name))
            if lines:
                count(name, "endpoint_moved", len(lines))
            again = rereg.look(sd, name)   # PIA forgot the key: a new one
            if again or rereg.asking(name):   # (PIA is still asked: look again soon)
                return lines + again, None
            started = start_missed_at_boot(sd, name) if boot_check else []
            # Healthy, and the boot check done (not skipped for a busy lock).
            return lines + (started or []), started is not None
        restarts, last = _backoff(name)
        wait = backoff_wait(restarts) - (time.time() - last)
        if wait > 0:
            count(name, "backoff")
            return [f"{name}: {problem}; {restarts} restart(s) did not fix it, backing off: "
                    f"next try in {wait:.0f} s"], False
        return restart(sd, name, unit, problem, restarts)


def restart(sd: Systemd, name: str, unit: str, problem: str, restarts: int
            ) -> tuple[list[str], bool | None]:
    """Restart the broken tunnel under the writers' lock: a command (an
    uninstall, an unconfine) runs wholly before, and the tunnel is seen
    stopped, or wholly after, and its clean-up removes the files written
    here. None when the lock stayed busy: a command runs, look again soon."""
    from ..core.safeio import dir_lock
    with dir_lock("/", timeout=5) as held:
        if not held:
            return [], None
        # Look again right before acting: an admin's stop may have begun
        # while the link was inspected (and is why the link is gone).
        if not _settled_active(sd, unit):
            return [], False
        running = [u for u in confined(name)
                   if sd.active_state(u) in ("active", "activating", "reloading")]
        restore.write(name, running)
        # A deleted namespace needs its namespace unit restarted (it is
        # still active); that restart propagates to the tunnel through
        # BindsTo=, and on to the confined units.
        gone = not netns.exists(name)
        target = f"netns@{name}.service" if gone else unit
        try:
            sd.restart_if_running(target)
        except SystemdError as e:
            restore.forget(name)
            return [f"{name}: {problem}; not restarting: {e.message}"], False
        count(name, "netns_gone" if gone else "link_gone")
        _set_backoff(name, restarts + 1, time.time())
        return [f"{name}: {problem}: restarting {target}"
                + (f" and with it {', '.join(running)}" if running else "")], False

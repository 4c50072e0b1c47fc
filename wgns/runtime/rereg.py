"""Registering again with PIA when it forgot the tunnel's key (a server
restarted, the key went unused for a while): WireGuard then gets no
handshake, however long it tries, until a human ran `wgns install` again.

The watcher asks at every look at a healthy tunnel made through PIA
(heal.look): when the link has been up for NO_HANDSHAKE_AFTER seconds
without a handshake, or its latest handshake is older than STALE_AFTER
although keepalive is on, the key was refused. It then does what `install
--provider pia` did: a token from the account the record keeps, the
region's servers, a fresh key registered (addKey, pinned to the CA wgns
keeps) with the first that takes it; then, under the writers' lock, the
tunnel's wg-quick file, its record, the DNS of confined units and PIA's
forwarding settings written as install would write them (all or none),
and the tunnel restarted on them with its confined units (listed in the
restore file first, as heal.restart does).

One journal line per attempt. Attempts back off (BACKOFF_FIRST, doubling,
up to BACKOFF_MAX: /run/wgns/NAME.register) until a handshake comes after
one: a refused login, a region that is gone or an API that answers
garbage never makes a tight loop, and nothing is written before every
answer was checked.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from ..core import paths, restore, wireguard
from ..core.errors import SystemdError, WgnsError
from ..core.files import under
from ..core.installed import load
from ..core.record import Record, to_json
from ..core.safeio import dir_lock
from ..core.text import one_line, redact

if TYPE_CHECKING:
    from ..core.systemd import Systemd

NO_HANDSHAKE_AFTER = 45.0   # seconds of a link up without any handshake (keepalive: 9 tries)
STALE_AFTER = 180.0         # a latest handshake this old, keepalive on
BACKOFF_FIRST = 120.0       # seconds before a second attempt
BACKOFF_MAX = 1800.0
RUNNING = ("active", "activating", "reloading")
JOIN = 1.0                  # seconds a look waits for PIA before the other tunnels' looks
ROOT = "/"                  # where the tunnels' files are


def refused(peer: wireguard.PeerInfo, up_for: float, now: float) -> str | None:
    """Why the key looks refused, or None: no handshake since the link
    came up UP_FOR seconds ago, or none for too long with keepalive on."""
    if up_for < NO_HANDSHAKE_AFTER:
        return None
    if not peer.latest_handshake:
        return f"no handshake in {up_for:.0f} s since the link came up"
    # No handshake is older than the link: a greater age is the wall clock set
    # forward since (NTP at boot), which a working key's rekey soon follows.
    age = min(now - peer.latest_handshake, up_for)
    if peer.keepalive and age > STALE_AFTER:
        return f"latest handshake {age:.0f} s ago although keepalive is on"
    return None


def state_path(name: str) -> str:
    return f"{restore.RESTORE_DIR}/{name}.register"


def attempts(name: str) -> tuple[int, float]:
    """(attempts since the last handshake, Unix time of the last);
    anything forged or broken counts as none (restore.read_count)."""
    return restore.read_count(name, "register")


def set_attempts(name: str, count: int, when: float) -> None:
    restore.write_count(name, "register", count, when)


def wait(count: int) -> float:
    """Seconds after attempt COUNT before the next: 0, 120, 240 ... 1800."""
    return restore.backoff(count, BACKOFF_FIRST, BACKOFF_MAX)


# The attempts whose questions to PIA are under way, each in a thread of
# its own: (the thread, its answer, the record, why, the attempts before).
_asking: dict[str, tuple[threading.Thread, list, Record, str, int]] = {}


def asking(name: str) -> bool:
    """An attempt for tunnel NAME waits for PIA's answers."""
    return name in _asking


def look(sd: Systemd, name: str, now: float | None = None) -> list[str]:
    """The watcher's question at each look at a healthy tunnel: register
    again when the key looks refused and the back-off allows; or write
    what PIA answered to an attempt begun at an earlier look."""
    if name in _asking:
        done = collect(sd, name, 0.0)
        return [] if done is None else [done[0]]
    try:
        if not os.path.exists(under(ROOT, paths.pia_account_path(name))):
            return []   # not made through PIA (one stat: no record read at every look)
        record = load(ROOT, name)
    except WgnsError:   # its directory a link or a file, its record unreadable
        return []
    if record.provider is None:
        return []
    device = wireguard.device_info(name)
    if device is None or not device.peers:
        return []
    now = time.time() if now is None else now
    peer = device.peers[0]
    count, last = attempts(name)
    if last > now:   # the clock was ahead at the last attempt: its back-off runs from now
        last = now
        with contextlib.suppress(OSError):
            set_attempts(name, count, now)
    why = refused(peer, sd.active_for(paths.tunnel_unit(name)), now)
    if why is None:
        if count and peer.latest_handshake and peer.latest_handshake >= int(last):
            set_attempts(name, 0, 0)   # a handshake since (whole seconds): it worked
        return []
    if now - last < wait(count):
        return []
    done = again(sd, record, why, count, now, JOIN)
    return [] if done is None else [done[0]]


def again(sd: Systemd, record: Record, why: str, count: int, now: float,
          join: float | None = None) -> tuple[str, bool] | None:
    """One attempt, counted before it is made (whatever happens, the next
    waits). PIA is asked in a thread of its own (each of its five calls
    may take 10 s: the watcher's other tunnels are not kept waiting),
    JOIN seconds waited for (None: until done); see collect()."""
    name = record.name
    set_attempts(name, count + 1, now)
    answer: list = []

    def ask() -> None:
        try:
            answer.append(new_record(record))
        except BaseException as e:   # raised again where it is collected
            answer.append(e)
    thread = threading.Thread(target=ask, name=f"register {name}", daemon=True)
    thread.start()
    _asking[name] = (thread, answer, record, why, count)
    return collect(sd, name, join)


def collect(sd: Systemd, name: str, join: float | None) -> tuple[str, bool] | None:
    """The attempt's one line for the journal, and whether the new key was
    written and the tunnel's restart queued; None while PIA is asked."""
    from ..core.pia_http import Refused  # (TLS and HTTP only for a PIA tunnel in need)
    thread, answer, record, why, count = _asking[name]
    thread.join(join)
    if thread.is_alive():
        return None
    del _asking[name]
    ok = False
    try:
        if isinstance(answer[0], BaseException):
            raise answer[0]
        done, ok = install_new(sd, record, answer[0])
    except Refused as e:
        done = f"not registered: {e.message} (check the account: wgns install --provider pia)"
    except WgnsError as e:
        done = f"not registered: {e.message}"
    except OSError as e:
        done = f"not registered: {e.strerror or e}"
    secrets = [*(record.provider.account if record.provider else ()),
               record.tunnel.private_key.reveal()]
    return one_line(redact(f"{name}: {why}; registering a new key with PIA (attempt "
                           f"{count + 1}): {done}; next attempt after "
                           f"{wait(count + 1):.0f} s unless a handshake comes", secrets)), ok


def new_record(record: Record) -> Record:
    """RECORD with a fresh key registered with its region: the tunnel, the
    server, and PIA's port forwarding at the new server's gateway. Asks
    the API; writes nothing."""
    from ..core import pia
    from ..core.pia_http import PiaError
    from ..core.pia_tunnel import made, pick, provider_of, register
    p = record.provider
    assert p is not None
    # The authority as install wrote it beside the record.
    api = pia.Api(p.api, str(under(ROOT, paths.pia_ca_path(record.name))))
    tok = pia.token(api, *p.account)
    regions = pia.regions(api)
    if all(r.id != p.region for r in regions):
        raise PiaError(f"PIA's server list has no region {p.region} with WireGuard servers "
                       "any more (wgns install --provider pia --region REGION picks another)")
    region = pick(regions, p.region)
    private, server, reg = register(region, api.ca, tok)
    forward = record.forward
    if forward is not None and forward.method == "pia":
        forward = replace(forward, gateway=reg.gateway)
    return record.change(tunnel=made(record.name, private, reg, record.tunnel.mtu),
                         provider=provider_of(region, server, reg, p.api, p.ca_source,
                                              p.ca_pem, p.account), forward=forward)


def install_new(sd: Systemd, before: Record, after: Record) -> tuple[str, bool]:
    """AFTER's files written and the tunnel restarted on them, under the
    writers' lock: a wgns command runs wholly before or after, and one
    that changed the record meanwhile wins (nothing is written). What
    happened, and whether all of it did."""
    from ..core.config import to_wgquick
    from ..core.files import write_all
    from ..core.tunnel_files import registered
    name, unit = after.name, paths.tunnel_unit(after.name)
    with dir_lock(ROOT, timeout=5) as held:
        if not held:
            return "a wgns command holds the writers' lock; the new key was not written", \
                False
        try:
            current = load(ROOT, name)
        except WgnsError:
            return "the tunnel was uninstalled meanwhile; nothing written", False
        if to_json(current) != to_json(before) \
                or to_wgquick(current.tunnel) != to_wgquick(before.tunnel):
            return "its record changed meanwhile (a wgns command ran); nothing written", False
        # The tunnel's file (its key) last: killed before it, the old key
        # still looks refused and the next attempt writes every file again.
        write_all(ROOT, registered(after), last=paths.conf_path(name))
        p = after.provider
        assert p is not None
        said = f"registered with {p.hostname} ({p.server_ip})"
        if sd.active_state(unit) not in RUNNING:   # stopped (the admin): it stays so
            return f"{said}, written; {unit} is stopped and uses it when started", True
        running = [u for u in after.confined if sd.active_state(u) in RUNNING]
        restore.write(name, running)
        try:
            sd.restart_if_running(unit)
        except SystemdError as e:
            restore.forget(name)
            return f"{said}, written; {unit} not restarted: {e.message}", False
    return f"{said}: restarting {unit}" + (f" and with it {', '.join(running)}"
                                            if running else ""), True


def now(name: str) -> str:
    """`helper.py register NAME`: register again at once, whatever the
    handshake says (a check, or a human who knows the key was dropped).
    Its line; an error (exit 1) when not all of it happened."""
    from ..core.systemd import Systemd
    record = load(ROOT, name)
    if record.provider is None:
        raise WgnsError(f"tunnel {name} was not made through PIA: nothing to register")
    with Systemd() as sd:
        count, _ = attempts(name)
        done = again(sd, record, "a new registration asked for", count, time.time())
    assert done is not None   # waited for
    line, ok = done
    if not ok:
        raise WgnsError(line)
    return line

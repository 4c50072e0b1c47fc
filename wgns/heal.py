"""Self-healing: what `wgns-watch@NAME.timer` runs every 20 s
(`helper.py watch NAME`).

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
  restart: confined units keep running.
"""

from __future__ import annotations

import os
import socket
import time

from . import netns, wireguard
from .config import Tunnel

STALE_AFTER = 135
RESTORE_DIR = "/run/wgns"


def restore_path(name: str) -> str:
    return f"{RESTORE_DIR}/{name}.restore"


def link_problem(name: str) -> str | None:
    """Why the tunnel's data path is broken, or None."""
    if not netns.exists(name):
        return f"namespace {netns.path(name)} is gone"

    def has_link() -> bool:
        from pyroute2 import IPRoute
        with IPRoute() as ipr:
            return bool(ipr.link_lookup(ifname=name))

    if not netns.run_in(name, has_link):
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
        wireguard.set_endpoint(tunnel.name, device, peer, (new, ep.port))
        changes.append(f"{tunnel.name}: peer {peer.public_key[:8]}... endpoint "
                       f"{ep.host} now {new} (was {current})")
    return changes


def write_restore(name: str, units: list[str]) -> None:
    os.makedirs(RESTORE_DIR, mode=0o755, exist_ok=True)
    with open(restore_path(name), "w") as f:
        f.write("".join(u + "\n" for u in units))


def take_restore(name: str) -> list[str]:
    try:
        with open(restore_path(name)) as f:
            units = [ln.strip() for ln in f if ln.strip()]
    except FileNotFoundError:
        return []
    os.unlink(restore_path(name))
    return units


def watch(name: str) -> list[str]:
    from .link import load
    from .ops import confined_units
    from .render import tunnel_unit
    from .systemd import Systemd

    unit = tunnel_unit(name)
    with Systemd() as sd:
        if sd.active_state(unit) != "active":
            return []
        problem = link_problem(name)
        if problem is None:
            return reresolve(load(name))
        running = [u for u in confined_units("/", name)
                   if sd.active_state(u) in ("active", "activating", "reloading")]
        write_restore(name, running)
        sd.restart(unit, wait=False)
        return [f"{name}: {problem}: restarting {unit}"
                + (f" and with it {', '.join(running)}" if running else "")]

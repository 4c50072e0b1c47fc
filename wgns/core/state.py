"""What a tunnel is doing, gathered from systemd, its namespace and its
WireGuard device, beside what its record declares: `wgns status` shows it,
`wgns check` and the watcher's metrics read it. Never a private or
preshared key (the device readers skip them)."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from . import netns, wireguard
from .forward_state import state as forward_state
from .names import split_host_port
from .paths import expose_unit, netns_path, reach_unit, tunnel_unit
from .record import Record, shown


def interface(name: str) -> dict[str, Any] | None:
    """The tunnel's link as seen from inside its namespace (wgns's own
    netlink reader: no pyroute2 to import, status stays quick)."""
    from . import netlink
    links = netlink.links()
    link = links.get(name)
    if link is None:
        return None
    return {
        "name": name, "kind": link.kind, "state": link.state, "up": link.up,
        "mtu": link.mtu, "addresses": link.addresses, "namespace_links": sorted(links),
    }


def _peers(record: Record) -> tuple[str | None, list[dict[str, Any]]]:
    name, tunnel = record.name, record.tunnel
    device = wireguard.device_info(name)
    configured = {p.public_key: p for p in tunnel.peers}
    if device is None:
        return None, [{"public_key": p.public_key,
                       "configured_endpoint": str(p.endpoint) if p.endpoint else None,
                       "endpoint": None, "latest_handshake": None, "handshake_age": None,
                       "rx_bytes": 0, "tx_bytes": 0,
                       "allowed_ips": [str(n) for n in p.allowed_ips]} for p in tunnel.peers]
    now, peers = int(time.time()), []
    for p in device.peers:
        peer = asdict(p)
        peer["handshake_age"] = now - p.latest_handshake if p.latest_handshake else None
        cfg = configured.get(p.public_key)
        peer["configured_endpoint"] = str(cfg.endpoint) if cfg and cfg.endpoint else None
        peers.append(peer)
    return device.implementation, peers


def gather(record: Record, sd: Any, deep: bool = True) -> dict[str, Any]:
    """The tunnel's state; DEEP also its interface (status, not the metrics)."""
    name = record.name
    state = sd.active_state if sd else (lambda unit: "unknown")
    out: dict[str, Any] = {
        "name": name, "unit": tunnel_unit(name), "state": state(tunnel_unit(name)),
        "namespace": netns_path(name) if netns.exists(name) else None,
        "interface": None, "implementation": None,
        "dns": [str(d) for d in record.tunnel.dns], "search": list(record.tunnel.search),
    }
    if out["namespace"] and deep:
        out["interface"] = netns.run_in(name, lambda: interface(name))
    elif out["namespace"]:
        out["interface"] = netns.run_in(name, lambda: netns.has_link(name)) or None
    out["implementation"], out["peers"] = _peers(record)
    out["confined"] = [{"unit": u, "state": state(u)} for u in record.confined]
    out["exposed"] = [{"unit": e.unit, "port": e.port, "listen": e.listen, "proto": e.proto,
                       "state": state(expose_unit(
                           name, split_host_port(e.listen, "listen")[1], e.proto) + ".socket")}
                      for e in record.exposes]
    out["reached"] = [{"target": r.target, "proto": r.proto, "at": r.at,
                       "state": state(reach_unit(
                           name, split_host_port(r.at, "at")[1], r.proto) + ".socket")}
                      for r in record.reaches]
    out["port_forward"] = forward_state(record, sd)
    out["record"] = shown(record)
    return out

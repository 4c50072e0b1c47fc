"""`wgns status`: what a tunnel is doing, gathered from systemd, the
namespace and the WireGuard device. Never shows a private or preshared key."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from ..core import netns, wireguard
from ..core.systemd import Systemd
from ..render.units import tunnel_unit
from ..runtime.link import load
from .bridge import reaches
from .expose import exposures
from .ops import confined_units


def _interface(name: str) -> dict[str, Any] | None:
    """The tunnel's link as seen from inside its namespace (wgns's own
    netlink reader: no pyroute2 to import, status stays quick)."""
    from ..core import netlink
    links = netlink.links()
    link = links.get(name)
    if link is None:
        return None
    return {
        "name": name, "kind": link.kind, "state": link.state, "up": link.up,
        "mtu": link.mtu, "addresses": link.addresses, "namespace_links": sorted(links),
    }


def gather(name: str, sd: Systemd | None) -> dict[str, Any]:
    tunnel = load(name)
    unit = tunnel_unit(name)
    out: dict[str, Any] = {
        "name": name,
        "unit": unit,
        "state": sd.active_state(unit) if sd else "unknown",
        "namespace": netns.path(name) if netns.exists(name) else None,
        "interface": None,
        "implementation": None,
        "dns": [str(d) for d in tunnel.dns],
        "search": list(tunnel.search),
        "peers": [],
        "confined": [],
    }
    if out["namespace"]:
        out["interface"] = netns.run_in(name, lambda: _interface(name))
    device = wireguard.device_info(name)
    now = int(time.time())
    configured = {p.public_key: p for p in tunnel.peers}
    if device is not None:
        out["implementation"] = device.implementation
        for p in device.peers:
            peer = asdict(p)
            peer["handshake_age"] = now - p.latest_handshake if p.latest_handshake else None
            cfg = configured.get(p.public_key)
            peer["configured_endpoint"] = str(cfg.endpoint) if cfg and cfg.endpoint else None
            out["peers"].append(peer)
    else:
        out["peers"] = [{"public_key": p.public_key,
                         "configured_endpoint": str(p.endpoint) if p.endpoint else None,
                         "endpoint": None, "latest_handshake": None,
                         "handshake_age": None, "rx_bytes": 0, "tx_bytes": 0,
                         "allowed_ips": [str(n) for n in p.allowed_ips]}
                        for p in tunnel.peers]
    for u in confined_units("/", name):
        out["confined"].append({"unit": u, "state": sd.active_state(u) if sd else "unknown"})
    out["exposed"] = [{"unit": info[0], "port": info[1], "listen": info[3], "proto": info[4],
                       "state": sd.active_state(f"{base}.socket") if sd else "unknown"}
                      for base, info in exposures("/", name)]
    out["reached"] = [{"target": r.target, "proto": r.proto, "at": r.at,
                       "state": sd.active_state(f"{base}.socket") if sd else "unknown"}
                      for base, r in reaches("/", name)]
    from .forward import state as forward_state
    out["port_forward"] = forward_state(name, sd)
    return out


def _bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _age(seconds: int | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"


def format_text(st: dict[str, Any]) -> str:
    impl = f" ({st['implementation']} WireGuard)" if st["implementation"] else ""
    lines = [f"tunnel {st['name']}: {st['unit']} {st['state']}{impl}"]
    lines.append(f"  namespace: {st['namespace'] or 'absent'}")
    iface = st["interface"]
    if iface:
        lines.append(f"  interface: {iface['name']} {'up' if iface['up'] else 'down'}, "
                     f"mtu {iface['mtu']}, {' '.join(iface['addresses']) or 'no address'}")
        lines.append(f"  links in namespace: {', '.join(iface['namespace_links'])}")
    else:
        lines.append("  interface: absent")
    for p in st["peers"]:
        lines.append(f"  peer {p['public_key']}")
        lines.append(f"    endpoint: {p['endpoint'] or '-'}"
                     f" (configured {p['configured_endpoint'] or '-'})")
        lines.append(f"    latest handshake: {_age(p['handshake_age'])}")
        lines.append(f"    transfer: {_bytes(p['rx_bytes'])} received, "
                     f"{_bytes(p['tx_bytes'])} sent")
    lines.append(f"  dns: {', '.join(st['dns'] + st['search']) or 'none'}")
    if st["confined"]:
        lines.append("  confined: " + ", ".join(
            f"{c['unit']} ({c['state']})" for c in st["confined"]))
    else:
        lines.append("  confined: none")
    for e in st["exposed"]:
        lines.append(f"  exposed: {e['listen']} -> {e['unit']} port {e['port']}/{e['proto']} "
                     f"({e['state']})")
    for r in st.get("reached") or []:
        lines.append(f"  reaches: {r['at']} inside -> {r['target']}/{r['proto']} on the host "
                     f"side ({r['state']})")
    if st.get("port_forward"):
        from .forward import format_text as forward_text
        lines += forward_text(st["port_forward"])
    return "\n".join(lines)


"""`wgns status`: what each tunnel is doing (core/state.py gathers it)
and what its record declares, as text for a person; `--json` prints the
gathered dicts, `--prometheus` the metrics. Never a private or preshared
key."""

from __future__ import annotations

from typing import Any

from ..core.installed import installed, load
from ..core.metrics_text import render as prometheus
from ..core.state import gather
from ..core.systemd import Systemd
from .forward import format_text as forward_text


def tunnels(names: list[str] | None) -> list[dict[str, Any]]:
    """The state of the tunnels NAMES (every installed one for None)."""
    with Systemd() as sd:
        return [gather(load("/", n), sd) for n in (names or installed("/"))]


def metrics(states: list[dict[str, Any]]) -> str:
    return prometheus(states)


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
    provider = (st.get("record") or {}).get("provider")
    if provider:
        lines.append(f"  provider: PIA, region {provider['region']}, server "
                     f"{provider['hostname']} ({provider['server_ip']})")
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
        lines += forward_text(st["port_forward"])
    return "\n".join(lines)


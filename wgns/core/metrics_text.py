"""Metrics in the Prometheus text format, from the status dicts of
state.gather: what `wgns status --prometheus` prints and what the watcher
keeps in DIR/wgns-NAME.prom for node-exporter's textfile collector. Pure,
but for the watcher's restart counts (RUN_DIR/NAME.restarts). Peers'
public keys are labels; no private or preshared key ever appears."""

from __future__ import annotations

import json
import math
from typing import Any, Dict, List, Tuple

from .errors import ConfigError
from .paths import RUN_DIR
from .safeio import read_text

REASONS = ("link_gone", "netns_gone", "endpoint_moved", "backoff")
UNIT_STATES = ("active", "activating", "deactivating", "reloading", "inactive", "failed")

G, C = "gauge", "counter"
Samples = Dict[str, List[Tuple[Dict[str, Any], float]]]
FAMILIES = {  # name: (type, help)
    "wgns_tunnel_up": (G, "1 when the tunnel's unit is active and its WireGuard link exists."),
    "wgns_tunnel_info": (G, "The tunnel's WireGuard implementation (none while down)."),
    "wgns_peer_latest_handshake_seconds": (G, "Unix time of the latest handshake (0: never)."),
    "wgns_peer_handshake_age_seconds": (G, "Seconds since the latest handshake (+Inf: never)."),
    "wgns_peer_receive_bytes_total": (C, "Bytes received from the peer."),
    "wgns_peer_transmit_bytes_total": (C, "Bytes sent to the peer."),
    "wgns_confined_units": (G, "Units confined to the tunnel, by systemd active state."),
    "wgns_exposed_ports": (G, "Ports of confined units exposed on the host (wgns expose)."),
    "wgns_reached_ports": (G, "Services outside that confined units reach (wgns reach)."),
    "wgns_forwarded_port": (G, "The port forwarded over NAT-PMP (0: none yet), when on."),
    "wgns_port_forward_renewed_age_seconds": (G, "Seconds since the port was last renewed."),
    "wgns_watcher_restarts_total": (C, "Restarts of the tunnel by the watcher, by reason."),
}


# -- the text format ---------------------------------------------------------

def _label(value: object) -> str:
    """A label value as the text format wants it: backslash, double quote
    and line feed escaped."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if value.is_integer() else repr(value)


def _count(value: object) -> int:
    """A byte count or a time from a status dict: a non-negative integer, or 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def restarts(name: str, run_dir: str | None = None) -> dict[str, int]:
    """The watcher's restarts of tunnel NAME by reason, from
    RUN_DIR/NAME.restarts (a JSON object {reason: count}). An absent,
    unreadable or malformed file, or a count that is not a whole number,
    counts as zero."""
    try:
        data = json.loads(read_text(f"{run_dir or RUN_DIR}/{name}.restarts", 65536,
                                    follow=False))
    except (ConfigError, ValueError):
        data = None
    data = data if isinstance(data, dict) else {}
    return {r: _count(data.get(r)) for r in REASONS}


def _samples(st: dict[str, Any], run_dir: str | None) -> Samples:
    """{family: [(labels without tunnel, value)]} for one tunnel."""
    out: Samples = {f: [] for f in FAMILIES}
    up = st.get("state") == "active" and st.get("interface") is not None
    out["wgns_tunnel_up"].append(({}, 1 if up else 0))
    out["wgns_tunnel_info"].append(({"implementation": st.get("implementation") or "none"}, 1))
    for p in st.get("peers") or []:
        peer = {"peer": p.get("public_key", "")}
        latest = _count(p.get("latest_handshake"))
        age = p.get("handshake_age")
        out["wgns_peer_latest_handshake_seconds"].append((peer, latest))
        out["wgns_peer_handshake_age_seconds"].append(
            (peer, _count(age) if latest and isinstance(age, int) else math.inf))
        out["wgns_peer_receive_bytes_total"].append((peer, _count(p.get("rx_bytes"))))
        out["wgns_peer_transmit_bytes_total"].append((peer, _count(p.get("tx_bytes"))))
    states = [str(u.get("state")) for u in st.get("confined") or []]
    for s in (*UNIT_STATES, *sorted(set(states) - set(UNIT_STATES))):
        out["wgns_confined_units"].append(({"state": s}, states.count(s)))
    out["wgns_exposed_ports"].append(({}, len(st.get("exposed") or [])))
    out["wgns_reached_ports"].append(({}, len(st.get("reached") or [])))
    forward = st.get("port_forward")
    if forward:
        out["wgns_forwarded_port"].append(({}, _count(forward.get("port"))))
        if isinstance(forward.get("renewed_age"), int):
            out["wgns_port_forward_renewed_age_seconds"].append(
                ({}, _count(forward["renewed_age"])))
    for reason, n in restarts(st["name"], run_dir).items():
        out["wgns_watcher_restarts_total"].append(({"reason": reason}, n))
    return out


def render(tunnels: list[dict[str, Any]], run_dir: str | None = None) -> str:
    """The Prometheus text exposition format (version 0.0.4) of the tunnels'
    status dicts (state.gather), each series labelled tunnel="NAME"; the
    watcher's restart counts come from RUN_DIR/NAME.restarts."""
    per_tunnel = [(st["name"], _samples(st, run_dir)) for st in tunnels]
    lines = []
    for family, (kind, text) in FAMILIES.items():
        rows = [(name, labels, value) for name, samples in per_tunnel
                for labels, value in samples[family]]
        if not rows:
            continue
        help_text = text.replace("\\", "\\\\").replace("\n", "\\n")  # the format's rule
        lines.append(f"# HELP {family} {help_text}")
        lines.append(f"# TYPE {family} {kind}")
        for name, labels, value in rows:
            pairs = ",".join(f'{k}="{_label(v)}"' for k, v in {"tunnel": name, **labels}.items())
            lines.append(f"{family}{{{pairs}}} {_number(value)}")
    return "".join(line + "\n" for line in lines)



"""Metrics in the Prometheus text format: what `wgns status --prometheus`
prints and what the watcher keeps in `DIR/wgns-NAME.prom`, one file per
tunnel, for node-exporter's textfile collector (Debian's
prometheus-node-exporter reads every *.prom in DEFAULT_DIR).

Shared by the CLI and the watcher: `render` is pure (status dicts in, text
out), `update` gathers one tunnel and writes its file atomically. Peers'
public keys are labels; no private or preshared key ever appears."""

from __future__ import annotations

import json
import math
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, WgnsError
from .render import MARKER

if TYPE_CHECKING:
    from .systemd import Systemd

DEFAULT_DIR = "/var/lib/prometheus/node-exporter"
RUN_DIR = "/run/wgns"
REASONS = ("link_gone", "netns_gone", "endpoint_moved", "backoff")
UNIT_STATES = ("active", "activating", "deactivating", "reloading", "inactive", "failed")

G, C = "gauge", "counter"
FAMILIES = {  # name: (type, help)
    "wgns_tunnel_up": (G, "1 when the tunnel's unit is active and its WireGuard link exists."),
    "wgns_tunnel_info": (G, "The tunnel's WireGuard implementation (none while down)."),
    "wgns_peer_latest_handshake_seconds": (G, "Unix time of the latest handshake (0: never)."),
    "wgns_peer_handshake_age_seconds": (G, "Seconds since the latest handshake (+Inf: never)."),
    "wgns_peer_receive_bytes_total": (C, "Bytes received from the peer."),
    "wgns_peer_transmit_bytes_total": (C, "Bytes sent to the peer."),
    "wgns_confined_units": (G, "Units confined to the tunnel, by systemd active state."),
    "wgns_exposed_ports": (G, "Ports of confined units exposed on the host (wgns expose)."),
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


def restarts(name: str, run_dir: str = RUN_DIR) -> dict[str, int]:
    """The watcher's restarts of tunnel NAME by reason, from
    RUN_DIR/NAME.restarts (a JSON object {reason: count}). An absent,
    unreadable or malformed file, or a count that is not a whole number,
    counts as zero."""
    from .safeio import read_text
    try:
        data = json.loads(read_text(f"{run_dir}/{name}.restarts", 65536, follow=False))
    except (ConfigError, ValueError):
        data = {}
    if not isinstance(data, dict):
        data = {}
    return {r: _count(data.get(r)) for r in REASONS}


def _samples(st: dict[str, Any], run_dir: str) -> dict[str, list[tuple[dict[str, Any], float]]]:
    """{family: [(labels without tunnel, value)]} for one tunnel."""
    out: dict[str, list[tuple[dict[str, Any], float]]] = {f: [] for f in FAMILIES}
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
    forward = st.get("port_forward")
    if forward:
        out["wgns_forwarded_port"].append(({}, _count(forward.get("port"))))
        if isinstance(forward.get("renewed_age"), int):
            out["wgns_port_forward_renewed_age_seconds"].append(
                ({}, _count(forward["renewed_age"])))
    for reason, n in restarts(st["name"], run_dir).items():
        out["wgns_watcher_restarts_total"].append(({"reason": reason}, n))
    return out


def render(tunnels: list[dict[str, Any]], run_dir: str = RUN_DIR) -> str:
    """The Prometheus text exposition format (version 0.0.4) of the tunnels'
    status dicts (status.gather), each series labelled tunnel="NAME"; the
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


# -- the file node-exporter reads --------------------------------------------

def prom_path(directory: str, name: str) -> str:
    return os.path.join(directory, f"wgns-{name}.prom")


def write_textfile(path: str, text: str) -> None:
    """Atomically: a temporary file in the same directory (a name the
    textfile collector skips), mode 0644, fsynced, renamed into place."""
    d = os.path.dirname(path) or "."
    tmp = os.path.join(d, f".{os.path.basename(path)}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600)
    try:
        os.fchmod(fd, 0o644)
        os.write(fd, text.encode())
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        os.unlink(tmp)
        raise
    dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _ours(path: str) -> bool | None:
    """True: a file wgns wrote; None: nothing there; False: anything else."""
    from .install import is_ours
    return is_ours(Path(path)) if os.path.lexists(path) else None


def update(name: str, sd: Systemd | None, directory: str = DEFAULT_DIR) -> bool:
    """Gather tunnel NAME and write DIRECTORY/wgns-NAME.prom when DIRECTORY
    exists. Returns whether it wrote. A file of that name that wgns did not
    write is left alone (WgnsError); OSError when the directory refuses."""
    if not os.path.isdir(directory):
        return False
    path = prom_path(directory, name)
    if _ours(path) is False:
        raise WgnsError(f"{path} exists and was not written by wgns; not replacing it")
    from . import __version__
    from .status import gather
    header = (f"{MARKER} {__version__}: metrics of tunnel {name}, kept current by "
              f"wgns-watch@{name}.service. Do not edit; wgns uninstall removes it.\n")
    write_textfile(path, header + render([gather(name, sd)]))
    return True


def remove(name: str, directory: str) -> bool:
    """Remove DIRECTORY/wgns-NAME.prom when wgns wrote it."""
    path = prom_path(directory, name)
    if not _ours(path):
        return False
    os.unlink(path)
    return True

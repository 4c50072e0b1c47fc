"""What the transient unit of `wgns check` runs (`helper.py probe NAME`),
with exactly a confined unit's settings: what it sees of the network, its
resolv.conf, each DNS server answering through the tunnel, and the host's
resolver sockets (reachable or not). It judges nothing: admin/check.py
does, from the JSON it prints."""

from __future__ import annotations

import os
import random
import socket
import struct
from typing import Any

from ..core.paths import RESOLVER_SOCKETS

PROBED = (RESOLVER_SOCKETS[0], RESOLVER_SOCKETS[2], RESOLVER_SOCKETS[3])


def _dns_query(server: str, timeout: float = 3.0) -> bool:
    """Ask `server` for the root's NS records; any answer counts."""
    qid = random.randrange(65536)
    query = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + b"\x00" + struct.pack(">HH", 2, 1)
    family = socket.AF_INET6 if ":" in server else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.sendto(query, (server, 53))
            reply = s.recv(4096)
        except OSError:
            return False
    return len(reply) >= 12 and struct.unpack(">H", reply[:2])[0] == qid


def _ask_all(servers: list[str]) -> dict[str, bool]:
    """Every server asked at once: with the tunnel down, each waits out
    its timeout, and one after the other they made a check that long times
    the number of servers."""
    from concurrent.futures import ThreadPoolExecutor
    if not servers:
        return {}
    with ThreadPoolExecutor(min(len(servers), 8)) as pool:
        return dict(zip(servers, pool.map(_dns_query, servers)))


def probe(name: str) -> dict[str, Any]:
    """What a confined unit sees (runs inside the transient unit)."""
    try:
        with open("/etc/resolv.conf") as f:
            servers = [ln.split()[1] for ln in f if ln.startswith("nameserver ")]
    except OSError as e:
        servers = [f"unreadable: {e.strerror}"]
    sockets = {}
    for path in PROBED:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            try:
                s.connect(path)
                sockets[path] = "reachable"
            except OSError as e:
                sockets[path] = e.strerror or str(e)
    return {
        "uid": os.getuid(),
        "links": sorted(n for _, n in socket.if_nameindex()),
        "nameservers": servers,
        "answers": _ask_all(servers),
        "sockets": sockets,
    }



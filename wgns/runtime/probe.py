"""What the transient unit of `wgns check` runs (`helper.py probe NAME`),
with exactly a confined unit's settings: what it sees of the network, its
resolv.conf, each DNS server answering through the tunnel, and the host's
resolver sockets (reachable or not). It judges nothing: admin/check.py
does, from the JSON it prints."""

from __future__ import annotations

import ipaddress
import os
import random
import select
import socket
import struct
import time
from typing import Any

from ..core.paths import RESOLVER_SOCKETS

PROBED = (RESOLVER_SOCKETS[0], RESOLVER_SOCKETS[2], RESOLVER_SOCKETS[3])


TIMEOUT = 3.0   # seconds for every server together


def _query(qid: int) -> bytes:
    """A query for the root's NS records; any answer counts."""
    return struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + b"\x00" + struct.pack(">HH", 2, 1)


def _ask_all(servers: list[str], timeout: float = TIMEOUT) -> dict[str, bool]:
    """Whether each server answered. All are asked at once, from one socket
    per address family, and given one timeout together: with the tunnel
    down each waits out its timeout, and one after the other (or a few at
    a time) a resolv.conf with many servers made the check last minutes.
    A reply counts when it comes from the server asked, with its query's ID;
    replies are taken in while the queries go out (none is dropped from a
    full receive buffer)."""
    answered = dict.fromkeys(servers, False)
    asked: dict[tuple[str, int], str] = {}
    socks: dict[int, socket.socket] = {}

    def receive(wait: float) -> None:
        ready, _, _ = select.select(list(socks.values()), [], [], wait)
        for s in ready:
            try:
                reply, peer = s.recvfrom(4096)
                source = str(ipaddress.ip_address(peer[0]))
            except (OSError, ValueError):
                continue
            key = (source, struct.unpack(">H", reply[:2])[0] if len(reply) >= 12 else -1)
            if key in asked:
                answered[asked.pop(key)] = True
    try:
        for server in servers:
            try:
                addr = ipaddress.ip_address(server)
            except ValueError:
                continue            # not an address: it cannot answer
            family = socket.AF_INET6 if addr.version == 6 else socket.AF_INET
            try:
                if family not in socks:
                    socks[family] = socket.socket(family, socket.SOCK_DGRAM)
                    socks[family].settimeout(timeout)   # a full send buffer waits
                qid = random.randrange(65536)
                while (str(addr), qid) in asked:   # the same server listed twice
                    qid = random.randrange(65536)
                socks[family].sendto(_query(qid), (str(addr), 53))
            except OSError:
                continue            # no route, no such family: no answer
            asked[(str(addr), qid)] = server
            receive(0)
        deadline = time.monotonic() + timeout
        while asked and socks and time.monotonic() < deadline:
            receive(max(0.0, deadline - time.monotonic()))
    finally:
        for s in socks.values():
            s.close()
    return answered


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



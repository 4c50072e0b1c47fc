"""Guest side: what the fake provider's port-forwarding gateways share: a
public port on the provider's outside address relayed, TCP and UDP, to a
client's tunnel address, until the mapping expires (gateway.py's NAT-PMP).

One selector loop runs everything: the caller registers its own sockets
with `watch` and calls `expire` between selects. Stdlib only: it runs on
any guest python3 (3.9 and newer).
"""

from __future__ import annotations

import json
import os
import random
import selectors
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

EXTERNAL_PORTS = (40000, 60999)
UDP_IDLE = 60.0  # seconds before a quiet outside sender's relay socket closes


def log(msg: str) -> None:
    print(f"natpmp[{os.getpid()}]: {msg}", file=sys.stderr, flush=True)


@dataclass
class Peer:
    """An outside UDP sender and the socket relaying it to the client."""
    sock: socket.socket
    last: float = field(default_factory=time.monotonic)


@dataclass
class Mapping:
    client: str
    proto: str
    internal: int
    external: int
    expires: float  # time.monotonic()
    sock: socket.socket  # the TCP listener or UDP socket on OUTSIDE:EXTERNAL
    peers: dict[tuple[str, int], Peer] = field(default_factory=dict)  # UDP only

    @property
    def target(self) -> tuple[str, int]:
        # Internal port 0 (what ProtonVPN's own instructions send): the
        # external port's number, as ProtonVPN forwards.
        return self.client, self.internal or self.external


def previous_ports(state: Path) -> set[int]:
    """The ports a previous gateway handed out, which a new one avoids."""
    try:
        return {int(p) for p in json.loads(state.read_text())["ports"].values()}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return set()


def pump(src: socket.socket, dst: socket.socket) -> None:
    """Copy src to dst until either ends, then end both (waking the other pump)."""
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class Forwarder:
    """Mappings from OUTSIDE:EXTERNAL to a client's tunnel address, one
    random external port per client (the same for UDP and TCP)."""

    def __init__(self, outside: str, state: Path) -> None:
        self.outside, self.state = outside, state
        self.avoid = previous_ports(state)
        self.ports: dict[str, int] = {}  # client -> its one external port
        self.mappings: dict[tuple[str, str], Mapping] = {}  # by (client, proto)
        self.sel = selectors.DefaultSelector()

    def watch(self, sock: socket.socket, handler: Callable[[], None]) -> None:
        sock.setblocking(False)
        self.sel.register(sock, selectors.EVENT_READ, handler)

    def unwatch(self, sock: socket.socket) -> None:
        self.sel.unregister(sock)
        sock.close()

    def save(self) -> None:
        """Record the state (the gateway on top says what)."""

    def port_for(self, client: str) -> int:
        """The client's one external port: random, the same all this run."""
        if client not in self.ports:
            taken = self.avoid | set(self.ports.values())
            port = random.randint(*EXTERNAL_PORTS)
            while port in taken:
                port = random.randint(*EXTERNAL_PORTS)
            self.ports[client] = port
        return self.ports[client]

    def map(self, client: str, proto: str, internal: int, lifetime: int) -> int | None:
        m = self.mappings.get((client, proto))
        if m is None:
            external = self.port_for(client)
            kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
            sock = socket.socket(socket.AF_INET, kind)
            try:
                if proto == "tcp":
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((self.outside, external))
                if proto == "tcp":
                    sock.listen(16)
            except OSError as e:
                log(f"cannot open {proto} {self.outside}:{external}: {e}")
                sock.close()
                return None
            m = self.mappings[(client, proto)] = Mapping(client, proto, internal, external,
                                                         0.0, sock)
            self.watch(sock, (lambda: self.accept(m)) if proto == "tcp"
                       else (lambda: self.relay_in(m)))
            log(f"{proto} {self.outside}:{external} -> {client}:{internal}")
        elif m.internal != internal:  # relay UDP anew, to the new port
            self.drop_peers(m)
        m.internal = internal
        m.expires = time.monotonic() + lifetime
        return m.external

    def unmap(self, client: str, proto: str, internal: int = 0) -> None:
        """Delete the mapping (internal 0: whichever port it has)."""
        m = self.mappings.get((client, proto))
        if m is None or internal not in (0, m.internal):
            return
        del self.mappings[(client, proto)]
        self.drop_peers(m)
        self.unwatch(m.sock)
        log(f"{proto} {self.outside}:{m.external} closed")

    def expire(self) -> None:
        now, changed = time.monotonic(), False
        for m in list(self.mappings.values()):
            if m.expires <= now:
                self.unmap(m.client, m.proto)
                changed = True
                continue
            for sender, peer in list(m.peers.items()):
                if now - peer.last > UDP_IDLE:
                    self.unwatch(m.peers.pop(sender).sock)
        if changed:
            self.save()

    def unmap_all(self) -> None:
        for m in list(self.mappings.values()):
            self.unmap(m.client, m.proto)

    # Forwarding

    def accept(self, m: Mapping) -> None:
        conn, _ = m.sock.accept()
        conn.setblocking(True)
        threading.Thread(target=self.bridge, args=(conn, m.target), daemon=True).start()

    def bridge(self, conn: socket.socket, target: tuple[str, int]) -> None:
        try:
            up = socket.create_connection(target, timeout=5)
        except OSError as e:
            log(f"cannot reach {target[0]}:{target[1]}: {e}")
            conn.close()
            return
        up.settimeout(None)
        back = threading.Thread(target=pump, args=(up, conn), daemon=True)
        back.start()
        pump(conn, up)
        back.join()
        conn.close()
        up.close()

    def relay_in(self, m: Mapping) -> None:
        """A datagram from outside: on to the client, from this sender's socket."""
        data, sender = m.sock.recvfrom(65535)
        peer = m.peers.get(sender)
        if peer is None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                sock.connect(m.target)
            except OSError:
                sock.close()
                raise
            peer = m.peers[sender] = Peer(sock)
            self.watch(sock, lambda: self.relay_out(m, sender, sock))
        peer.last = time.monotonic()
        peer.sock.send(data)

    def relay_out(self, m: Mapping, sender: tuple[str, int], sock: socket.socket) -> None:
        """The client's answer: back to the outside sender, from OUTSIDE:EXTERNAL."""
        data = sock.recv(65535)
        m.peers[sender].last = time.monotonic()
        m.sock.sendto(data, sender)

    def drop_peers(self, m: Mapping) -> None:
        for peer in m.peers.values():
            self.unwatch(peer.sock)
        m.peers.clear()

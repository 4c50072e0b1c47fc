"""Guest side: the fake provider's NAT-PMP gateway (RFC 6886), the port
forwarding a VPN provider like ProtonVPN runs on its tunnel's gateway.

As there, a client gets one random public port (the same for UDP and TCP,
whatever it suggested), must renew it before its lifetime runs out, and a
restarted gateway hands out a new port and a new epoch. wgns's port
forwarding is tested against it, so it forwards for real: while a mapping
lives, OUTSIDE:EXTERNAL reaches the client's tunnel address through the
WireGuard server. The state file tells a scenario which port a client got.
Stdlib only: it runs on any guest python3 >= 3.11.

    ip netns exec provider python3 gateway.py --listen 10.66.0.1 \\
        --outside 10.251.0.2 --state /var/lib/wgns-provider/natpmp.json \\
        [--lifetime-cap N] [--refuse]
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import random
import selectors
import signal
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

PORT = 5351
CLIENTS = ipaddress.ip_network("10.66.0.0/24")  # the provider's tunnel clients
EXTERNAL_PORTS = (40000, 60999)
UDP_IDLE = 60.0  # seconds before a quiet outside sender's relay socket closes
PROTOS = {1: "udp", 2: "tcp"}  # mapping opcodes
SUCCESS, BAD_VERSION, REFUSED, NETWORK_FAILURE, NO_RESOURCES, BAD_OPCODE = range(6)


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
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class Gateway:
    def __init__(self, listen: str, outside: str, state: Path, cap: int, refuse: bool) -> None:
        self.outside, self.state, self.cap, self.refuse = outside, state, cap, refuse
        self.started, self.started_wall = time.monotonic(), time.time()
        self.avoid = previous_ports(state)
        self.ports: dict[str, int] = {}  # client -> its one external port
        self.mappings: dict[tuple[str, str], Mapping] = {}  # by (client, proto)
        self.requests = 0
        self.sel = selectors.DefaultSelector()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((listen, PORT))
        self.watch(self.sock, self.on_request)

    def watch(self, sock: socket.socket, handler: Callable[[], None]) -> None:
        sock.setblocking(False)
        self.sel.register(sock, selectors.EVENT_READ, handler)

    def unwatch(self, sock: socket.socket) -> None:
        self.sel.unregister(sock)
        sock.close()

    def run(self) -> None:
        try:
            signal.signal(signal.SIGTERM, signal.default_int_handler)  # KeyboardInterrupt
            log(f"up, {len(self.avoid)} previous port(s) to avoid")
            self.save()
            while True:
                for key, _ in self.sel.select(0.2):
                    try:
                        key.data()
                    except OSError as e:  # a client gone, a socket closed meanwhile
                        log(f"{e}")
                self.expire()
        except KeyboardInterrupt:
            log("stopping")
        finally:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            self.close()

    # NAT-PMP

    def epoch(self) -> int:
        return int(time.monotonic() - self.started)

    def reply(self, op: int, result: int, body: bytes | None = None) -> bytes:
        if body is None:  # an error: a success's length, its fields zero
            body = bytes({0: 4, 1: 8, 2: 8}.get(op, 0))
        return struct.pack("!BBHI", 0, 128 + op, result, self.epoch()) + body

    def on_request(self) -> None:
        data, (host, port) = self.sock.recvfrom(1100)
        if ipaddress.ip_address(host) not in CLIENTS:
            return
        answer = self.answer(data, host)
        if answer is not None:
            self.sock.sendto(answer, (host, port))
            self.requests += 1
            self.save()

    def answer(self, data: bytes, client: str) -> bytes | None:
        """The reply to a request; None to ignore it (malformed, or a reply)."""
        if len(data) < 2 or data[1] >= 128:
            return None
        version, op = data[0], data[1]
        if version != 0:
            return self.reply(op, BAD_VERSION)
        if op not in (0, *PROTOS):
            return self.reply(op, BAD_OPCODE)
        if len(data) != (2 if op == 0 else 12):
            return None
        if op == 0:
            return self.reply(0, SUCCESS, socket.inet_aton(self.outside))
        # The suggested external port is ignored: a client gets its one port.
        internal, _suggested, lifetime = struct.unpack("!HHI", data[4:])
        result, external, lifetime = SUCCESS, 0, min(lifetime, self.cap)
        if self.refuse:
            result, lifetime = REFUSED, 0
        elif lifetime == 0:
            self.unmap(client, PROTOS[op], internal)
        elif (port := self.map(client, PROTOS[op], internal, lifetime)) is None:
            result, lifetime = NO_RESOURCES, 0
        else:
            external = port
        return self.reply(op, result, struct.pack("!HHI", internal, external, lifetime))

    # Mappings

    def port_for(self, client: str) -> int:
        """The client's one external port: random, the same all this run."""
        if client not in self.ports:
            taken = self.avoid | set(self.ports.values())
            while (port := random.randint(*EXTERNAL_PORTS)) in taken:
                pass
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

    # State

    def save(self) -> None:
        now, wall = time.monotonic(), time.time()
        doc = {
            "epoch_started": self.started_wall, "pid": os.getpid(),
            "mappings": [{"client": m.client, "proto": m.proto, "internal": m.internal,
                          "external": m.external, "expires": round(wall + m.expires - now, 3)}
                         for m in self.mappings.values()],
            "refuse": self.refuse, "requests": self.requests,
            "ports": self.ports,  # this run's ports, which the next run avoids
        }
        tmp = self.state.with_name(f".{self.state.name}.{os.getpid()}")
        tmp.write_text(json.dumps(doc, indent=1) + "\n")
        os.replace(tmp, self.state)

    def close(self) -> None:
        """Close the mappings' sockets and ours (the exit closes forwarded
        connections) and record that nothing is mapped any more."""
        for m in list(self.mappings.values()):
            self.unmap(m.client, m.proto)
        self.unwatch(self.sock)
        self.sel.close()
        self.save()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="A fake VPN provider's NAT-PMP gateway.")
    ap.add_argument("--listen", required=True, help="the tunnel address to answer on")
    ap.add_argument("--outside", required=True, help="the public address to forward from")
    ap.add_argument("--state", required=True, type=Path, help="the JSON state file")
    ap.add_argument("--lifetime-cap", type=int, default=60, help="longest lifetime granted (s)")
    ap.add_argument("--refuse", action="store_true", help="refuse every mapping (result 2)")
    args = ap.parse_args(argv)
    Gateway(args.listen, args.outside, args.state, args.lifetime_cap, args.refuse).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

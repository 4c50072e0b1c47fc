"""The UDP relay behind `wgns expose --udp` and `wgns reach --udp`
(`helper.py relay NAME HOST PORT`). Unit side.

systemd hands it the listening datagram socket (socket activation, fd 3),
made in one namespace; the relay runs in the other. Each client address
gets its own connected socket towards HOST:PORT, so replies find their way
back to the client that asked. A flow idle for FLOW_IDLE seconds is
dropped; with no flow left for EXIT_IDLE seconds the relay exits, and the
socket unit starts it again on the next datagram. A listener on a wildcard
address answers from the address each datagram was sent to (IP_PKTINFO),
as a client on a host with several addresses expects.
"""

from __future__ import annotations

import os
import selectors
import socket
import sys
import time
from collections import OrderedDict
from typing import Callable, Optional

FLOW_IDLE = 60.0
EXIT_IDLE = 120.0
MAX_FLOWS = 512  # the oldest flow makes room for a new one beyond this
RESOLVE_EVERY = 30.0  # a name is looked up again after this long
BATCH = 64  # datagrams taken from one socket before looking at the others
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)  # Linux's value; Python 3.11 lacks the name
SD_LISTEN_FDS_START = 3

Address = tuple  # a socket address, as Python gives it


class Flow:
    __slots__ = ("client", "sock", "last", "local")

    def __init__(self, client: Address, sock: socket.socket, now: float,
                 local: Optional[bytes]) -> None:
        self.client, self.sock, self.last, self.local = client, sock, now, local


class Relay:
    def __init__(self, listener: socket.socket, host: str, port: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.listener, self.host, self.port, self.clock = listener, host, port, clock
        self.flows: OrderedDict[Address, Flow] = OrderedDict()
        self.sel = selectors.DefaultSelector()
        listener.setblocking(False)
        self.sel.register(listener, selectors.EVENT_READ, None)
        self.family = listener.family
        self.wildcard = listener.getsockname()[0] in ("0.0.0.0", "::")
        if self.wildcard:
            # IPv4 datagrams, on an IPv6 socket too (dual stack): IP_PKTINFO
            # names the address to answer from, the interface's own for a
            # broadcast, where IPV6_PKTINFO would name the broadcast address
            listener.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
            if self.family == socket.AF_INET6:
                listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
        self._target: Optional[tuple[int, Address]] = None
        self._resolved_at = -RESOLVE_EVERY
        self._retry = RESOLVE_EVERY
        self._failures = 0
        self.idle_since = clock()
        self.dropped = 0

    def target(self) -> tuple[int, Address]:
        """(family, address) of HOST:PORT. A name is looked up again every
        RESOLVE_EVERY seconds, so a moved host is followed; a failed lookup
        keeps the last good answer and is not retried before then (a
        resolver that times out would stall every flow)."""
        now = self.clock()
        if now - self._resolved_at >= self._retry:
            self._resolved_at = now
            try:
                info = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_DGRAM)
                self._target, self._retry = (info[0][0], info[0][4]), RESOLVE_EVERY
            except OSError:
                if self._target is None:  # never resolved (a resolver not up yet at
                    # boot?): again after 1 s, doubling up to RESOLVE_EVERY
                    self._failures += 1
                    self._retry = min(RESOLVE_EVERY, 2.0 ** (self._failures - 1))
                    raise
        if self._target is None:
            raise OSError(f"{self.host} did not resolve")
        return self._target

    def _open(self, client: Address, local: Optional[bytes]) -> Flow:
        family, address = self.target()  # before making room: it may fail
        if len(self.flows) >= MAX_FLOWS:
            self._close(next(iter(self.flows.values())))
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.connect(address)
        except OSError:
            sock.close()
            raise
        flow = Flow(client, sock, self.clock(), local)
        self.flows[client] = flow
        self.sel.register(sock, selectors.EVENT_READ, flow)
        return flow

    def _close(self, flow: Flow) -> None:
        self.sel.unregister(flow.sock)
        flow.sock.close()
        del self.flows[flow.client]
        if not self.flows:
            self.idle_since = self.clock()

    def _receive(self) -> Optional[tuple[bytes, Address, Optional[bytes]]]:
        """One datagram from a client, with the local address it was sent
        to when the listener is a wildcard."""
        try:
            if not self.wildcard:
                data, client = self.listener.recvfrom(65535)
                return data, client, None
            data, ancillary, _, client = self.listener.recvmsg(65535, 256)
        except (BlockingIOError, InterruptedError):
            return None
        v4 = v6 = None
        for level, kind, payload in ancillary:
            if (level, kind) == (socket.IPPROTO_IP, IP_PKTINFO) and len(payload) >= 12:
                # in_pktinfo: ifindex, spec_dst (the local address a reply
                # should come from: the interface's own for a broadcast),
                # addr (where it was sent)
                v4 = payload[4:8]
            elif (level, kind) == (socket.IPPROTO_IPV6, socket.IPV6_PKTINFO) \
                    and len(payload) >= 20:
                addr, ifindex = payload[:16], payload[16:20]
                if addr[0] == 0xFF:  # sent to a multicast group: the kernel picks the source
                    addr = bytes(16)
                v6 = addr + ifindex
        # What _reply hands back: in_pktinfo's spec_dst for an IPv4 socket;
        # in6_pktinfo for an IPv6 one, an IPv4 source mapped into it
        if self.family == socket.AF_INET:
            local = v4
        elif v4 is not None:
            local = bytes(10) + b"\xff\xff" + v4 + bytes(4)
        else:
            local = v6
        return data, client, local

    def from_clients(self) -> None:
        for _ in range(BATCH):
            try:
                got = self._receive()
            except OSError:  # an ICMP error queued on the listener: nothing to do
                continue
            if got is None:
                return
            data, client, local = got
            flow = self.flows.get(client)
            try:
                if flow is None:
                    flow = self._open(client, local)
                flow.local = local  # the client may have sent to another address
                self._send(flow.sock, data)
            except OSError:  # the target unreachable or its name unknown: a datagram lost
                self.dropped += 1
                continue
            flow.last = self.clock()
            self.flows.move_to_end(client)

    @staticmethod
    def _send(sock: socket.socket, data: bytes) -> None:
        """Send once more when the first try only reported an ICMP error an
        earlier datagram had caused."""
        try:
            sock.send(data)
        except ConnectionRefusedError:
            sock.send(data)

    def from_target(self, flow: Flow) -> None:
        for _ in range(BATCH):
            try:
                data = flow.sock.recv(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # ICMP port unreachable from the target: keep the flow
                return
            try:
                self._reply(data, flow)
            except OSError:
                self.dropped += 1
            flow.last = self.clock()
            self.flows.move_to_end(flow.client)

    def _reply(self, data: bytes, flow: Flow) -> None:
        if flow.local is None:
            self.listener.sendto(data, flow.client)
        elif self.family == socket.AF_INET:  # no ifindex: routed as usual
            self.listener.sendmsg([data], [(socket.IPPROTO_IP, IP_PKTINFO,
                                            bytes(4) + flow.local * 2)], 0, flow.client)
        else:
            self.listener.sendmsg([data], [(socket.IPPROTO_IPV6, socket.IPV6_PKTINFO,
                                            flow.local)], 0, flow.client)

    def expire(self) -> None:
        now = self.clock()
        for flow in [f for f in self.flows.values() if now - f.last >= FLOW_IDLE]:
            self._close(flow)

    def step(self, timeout: float) -> None:
        for key, _ in self.sel.select(timeout):
            flow: Optional[Flow] = key.data
            if flow is None:
                self.from_clients()
            elif self.flows.get(flow.client) is flow:  # not closed since the select
                self.from_target(flow)
        self.expire()

    def done(self) -> bool:
        return not self.flows and self.clock() - self.idle_since >= EXIT_IDLE

    def run(self) -> None:
        while not self.done():
            self.step(timeout=min(FLOW_IDLE, EXIT_IDLE) / 4)


def inherited_socket() -> socket.socket:
    """The datagram socket systemd passed (LISTEN_FDS, LISTEN_PID)."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()) or \
            os.environ.get("LISTEN_FDS") != "1":
        raise OSError("no socket from systemd: run by its .socket unit only")
    sock = socket.socket(fileno=SD_LISTEN_FDS_START)
    if sock.type != socket.SOCK_DGRAM:
        raise OSError("the socket systemd passed is not a datagram socket")
    return sock


def main(name: str, host: str, port: str) -> None:
    from ..core.names import check_host, check_port
    relay = Relay(inherited_socket(), check_host(host, "HOST"), check_port(port, "PORT"))
    relay.run()
    if relay.dropped:
        print(f"wgns: {name} relay to {host}:{port}: {relay.dropped} datagram(s) could "
              "not be delivered", file=sys.stderr)

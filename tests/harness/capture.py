"""Guest side: a record of every packet on the root's side of the fake
provider's links during a window, and whether anything but WireGuard to a
server's endpoint left the root towards the provider.

    cap = Capture(pool.host_links(), netns=pool.root).start()
    ...                                 # the window: a failover, an outage
    cap.stop()
    assert not cap.stray(pool.endpoints()), [str(p) for p in cap.stray(pool.endpoints())]

An AF_PACKET socket per link (created inside NETNS when given, where the
links are; a socket stays in the namespace it was made in) read by a
thread; only the first SNAPLEN bytes of each packet are kept. Stdlib only.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import select
import socket
import struct
import threading
from dataclasses import dataclass
from typing import Iterator

ETH_P_ALL, PACKET_OUTGOING = 0x0003, 4
SOL_PACKET, PACKET_STATISTICS = 263, 6
CLONE_NEWNET = 0x40000000
# Link-level chatter that is no traffic of anyone's: neighbour discovery,
# router solicitations, multicast listener reports (ICMPv6 types).
ICMP6_LINK = {130, 131, 132, 133, 134, 135, 136, 143}


@contextlib.contextmanager
def netns(name: str | None) -> Iterator[None]:
    """This thread in network namespace NAME for the block (None: stay)."""
    if name is None:
        yield
        return
    libc = ctypes.CDLL(None, use_errno=True)
    with open("/proc/thread-self/ns/net") as home, open(f"/run/netns/{name}") as there:
        if libc.setns(there.fileno(), CLONE_NEWNET):
            raise OSError(ctypes.get_errno(), f"setns into {name}")
        try:
            yield
        finally:
            if libc.setns(home.fileno(), CLONE_NEWNET):
                raise OSError(ctypes.get_errno(), "setns back")


@dataclass
class Packet:
    link: str
    outgoing: bool        # sent from the root (else received by it)
    family: str           # "ipv4", "ipv6", "arp" or the ethertype in hex
    proto: str = ""       # "udp", "tcp", "icmp", "icmpv6" or the number
    src: str = ""
    dst: str = ""
    sport: int = 0
    dport: int = 0
    length: int = 0       # the IP packet's length
    wg: int = 0           # the WireGuard message type (1-4) of a UDP payload that has one
    icmp: int = -1        # the ICMP type
    about: tuple[str, int] | None = None  # an ICMP error's packet's source (address, port)

    def __str__(self) -> str:
        way = "out" if self.outgoing else "in"
        ports = f":{self.sport} > {self.dst}:{self.dport}" if self.proto in ("tcp", "udp") \
            else f" > {self.dst}"
        what = f" wireguard type {self.wg}" if self.wg else \
            (f" type {self.icmp}" if self.icmp >= 0 else "")
        return f"{way} {self.link} {self.family} {self.proto} {self.src}{ports}" \
               f" len {self.length}{what}"

    def is_wireguard_to(self, endpoints: set[tuple[str, int]]) -> bool:
        """A WireGuard message to one of the endpoints (address, port)."""
        return (self.proto == "udp" and self.wg > 0
                and (str(ipaddress.ip_address(self.dst)), self.dport) in {
                    (str(ipaddress.ip_address(a)), p) for a, p in endpoints})

    def is_link_chatter(self) -> bool:
        return self.family == "arp" or (self.proto == "icmpv6" and self.icmp in ICMP6_LINK)

    def is_error_about(self, endpoints: set[tuple[str, int]]) -> bool:
        """An ICMP error the root's kernel sent back about a packet from one
        of the endpoints (a server's WireGuard packet to a port no socket
        holds any more): nothing any process sent."""
        return self.about is not None and (str(ipaddress.ip_address(self.about[0])),
                                           self.about[1]) in {
            (str(ipaddress.ip_address(a)), p) for a, p in endpoints}


def parse(link: str, outgoing: bool, frame: bytes) -> Packet:
    """An Ethernet frame's headers, as far as they are there."""
    ethertype = struct.unpack("!H", frame[12:14])[0] if len(frame) >= 14 else 0
    ip = frame[14:]
    if ethertype == 0x0806:
        return Packet(link, outgoing, "arp")
    if ethertype == 0x0800 and len(ip) >= 20:
        ihl = (ip[0] & 0x0F) * 4
        pkt = Packet(link, outgoing, "ipv4", str(ip[9]), socket.inet_ntoa(ip[12:16]),
                     socket.inet_ntoa(ip[16:20]), length=struct.unpack("!H", ip[2:4])[0])
        first = struct.unpack("!H", ip[6:8])[0] & 0x1FFF == 0  # not a later fragment
        return _transport(pkt, ip[9], ip[ihl:] if first else b"")
    if ethertype == 0x86DD and len(ip) >= 40:
        pkt = Packet(link, outgoing, "ipv6", str(ip[6]),
                     socket.inet_ntop(socket.AF_INET6, ip[8:24]),
                     socket.inet_ntop(socket.AF_INET6, ip[24:40]),
                     length=40 + struct.unpack("!H", ip[4:6])[0])
        nxt, rest = ip[6], ip[40:]
        if nxt == 0 and len(rest) >= 8:  # hop-by-hop options (MLD reports have them)
            nxt, rest = rest[0], rest[(rest[1] + 1) * 8:]
        return _transport(pkt, nxt, rest)
    return Packet(link, outgoing, f"0x{ethertype:04x}")


def _transport(pkt: Packet, proto: int, data: bytes) -> Packet:
    pkt.proto = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmpv6"}.get(proto, str(proto))
    if proto in (6, 17) and len(data) >= 4:
        pkt.sport, pkt.dport = struct.unpack("!HH", data[:4])
    if proto == 17 and len(data) >= 12 and data[8] in (1, 2, 3, 4) and data[9:12] == bytes(3):
        pkt.wg = data[8]
    if proto in (1, 58) and data:
        pkt.icmp = data[0]
        # An error (v4: unreachable, time exceeded, parameter problem; v6:
        # 1-4) quotes the packet it is about, from its IP header on.
        quoted = data[8:]
        if proto == 1 and pkt.icmp in (3, 11, 12) and len(quoted) >= 20:
            ihl = (quoted[0] & 0x0F) * 4
            if len(quoted) >= ihl + 2:
                pkt.about = (socket.inet_ntoa(quoted[12:16]),
                             struct.unpack("!H", quoted[ihl:ihl + 2])[0])
        elif proto == 58 and pkt.icmp in (1, 2, 3, 4) and len(quoted) >= 42:
            pkt.about = (socket.inet_ntop(socket.AF_INET6, quoted[8:24]),
                         struct.unpack("!H", quoted[40:42])[0])
    return pkt


class Capture:
    """Every packet on LINKS (in NETNS) between start() and stop()."""

    def __init__(self, links: list[str], netns: str | None = None, snaplen: int = 128) -> None:
        self.links, self.ns, self.snaplen = list(links), netns, snaplen
        self.packets: list[Packet] = []
        self.dropped = 0  # packets the kernel could not hand over (a full buffer)
        self.socks: list[socket.socket] = []
        self.thread: threading.Thread | None = None
        self.stopping = threading.Event()

    def start(self) -> Capture:
        with netns(self.ns):
            for link in self.links:
                s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
                s.bind((link, ETH_P_ALL))
                s.setblocking(False)
                self.socks.append(s)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        return self

    def _drain(self, s: socket.socket) -> None:
        while True:
            try:
                frame, addr = s.recvfrom(self.snaplen)
            except BlockingIOError:
                return
            self.packets.append(parse(addr[0], addr[2] == PACKET_OUTGOING, frame))

    def _read(self) -> None:
        while not self.stopping.is_set():
            ready, _, _ = select.select(self.socks, [], [], 0.1)
            for s in ready:
                self._drain(s)

    def stop(self) -> list[Packet]:
        """End the window: what was seen (also in .packets)."""
        self.stopping.set()
        if self.thread is not None:
            self.thread.join()
        for s in self.socks:
            self._drain(s)
            self.dropped += struct.unpack("II", s.getsockopt(SOL_PACKET, PACKET_STATISTICS,
                                                             8))[1]
            s.close()
        self.socks = []
        return self.packets

    def __enter__(self) -> Capture:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def leaving(self) -> list[Packet]:
        """What the root sent towards the provider."""
        return [p for p in self.packets if p.outgoing]

    def others(self, endpoints: set[tuple[str, int]]) -> list[Packet]:
        """Everything the root sent that is not WireGuard to one of ENDPOINTS."""
        return [p for p in self.leaving() if not p.is_wireguard_to(endpoints)]

    def stray(self, endpoints: set[tuple[str, int]]) -> list[Packet]:
        """What the root sent that is not WireGuard to one of ENDPOINTS, less
        link-level chatter (ARP, neighbour discovery) and the kernel's ICMP
        errors about the servers' own WireGuard packets: what would be a leak."""
        return [p for p in self.others(endpoints)
                if not p.is_link_chatter() and not p.is_error_about(endpoints)]

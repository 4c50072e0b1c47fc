"""What wgns reads from the kernel over netlink without pyroute2: the links
and addresses of the current namespace (rtnetlink) and a WireGuard device
(generic netlink, WG_CMD_GET_DEVICE), for the long-lived watcher and
`wgns status`, which must stay small and quick. The bring-up's few
changes are in runtime/rtnl.py; kernel WireGuard's configuration and
`wgns check` use pyroute2.

Read-only, and a device's private and preshared keys are skipped while
parsing: no structure here ever holds one.
"""

from __future__ import annotations

import os
import socket
import struct
from dataclasses import dataclass, field
from typing import Iterator

NETLINK_ROUTE, NETLINK_GENERIC = 0, 16
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
RTM_GETLINK, RTM_GETADDR = 18, 22
IFLA_IFNAME, IFLA_MTU, IFLA_OPERSTATE, IFLA_LINKINFO, IFLA_INFO_KIND = 3, 4, 16, 18, 1
IFA_ADDRESS, IFA_LOCAL = 1, 2
GENL_ID_CTRL, CTRL_CMD_GETFAMILY = 16, 3
CTRL_ATTR_FAMILY_ID, CTRL_ATTR_FAMILY_NAME = 1, 2
WG_CMD_GET_DEVICE = 0
WGDEVICE_A_IFNAME, WGDEVICE_A_LISTEN_PORT, WGDEVICE_A_PEERS = 2, 6, 8
WGPEER_A_PUBLIC_KEY, WGPEER_A_ENDPOINT, WGPEER_A_KEEPALIVE = 1, 4, 5
WGPEER_A_HANDSHAKE, WGPEER_A_RX, WGPEER_A_TX, WGPEER_A_ALLOWEDIPS = 6, 7, 8, 9
WGALLOWEDIP_A_FAMILY, WGALLOWEDIP_A_IPADDR, WGALLOWEDIP_A_CIDR = 1, 2, 3
OPERSTATES = ("UNKNOWN", "NOTPRESENT", "DOWN", "LOWERLAYERDOWN", "TESTING", "DORMANT", "UP")
HEADER = struct.Struct("=IHHII")


class NetlinkError(OSError):
    """The kernel answered a request with an error (its errno)."""


def attributes(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(type, payload) of each netlink attribute in DATA (nested flags dropped)."""
    i = 0
    while i + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, i)
        if length < 4:
            return
        yield kind & 0x3FFF, data[i + 4:i + length]
        i += (length + 3) & ~3


def attribute(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def _text(payload: bytes) -> str:
    return payload.split(b"\0", 1)[0].decode(errors="replace")


def request(protocol: int, kind: int, flags: int, body: bytes) -> Iterator[tuple[int, bytes]]:
    """Send one request and yield (type, payload) of each message of the
    answer, up to its end; an error answer raises NetlinkError."""
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, protocol) as s:
        s.bind((0, 0))
        s.send(HEADER.pack(HEADER.size + len(body), kind, NLM_F_REQUEST | flags, 1, 0) + body)
        while True:
            data = s.recv(1 << 20)
            i = 0
            while i + HEADER.size <= len(data):
                length, mtype, mflags, _, _ = HEADER.unpack_from(data, i)
                if length < HEADER.size:
                    return
                payload = data[i + HEADER.size:i + length]
                i += (length + 3) & ~3
                if mtype == NLMSG_DONE:
                    return
                if mtype == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", payload)[0]
                    if code:
                        raise NetlinkError(code, os.strerror(code))
                    return
                yield mtype, payload
                if not mflags & 0x2:   # NLM_F_MULTI: one message is the whole answer
                    return


@dataclass
class Link:
    index: int
    name: str
    kind: str | None
    up: bool
    mtu: int | None
    state: str
    addresses: list[str] = field(default_factory=list)


def links() -> dict[str, Link]:
    """The links of the calling thread's namespace, with their addresses."""
    out: dict[int, Link] = {}
    for _, payload in request(NETLINK_ROUTE, RTM_GETLINK, NLM_F_DUMP, bytes(16)):
        _, _, index, flags, _ = struct.unpack_from("=BxHiII", payload)
        attrs = dict(attributes(payload[16:]))
        info = dict(attributes(attrs.get(IFLA_LINKINFO, b"")))
        state = attrs.get(IFLA_OPERSTATE, b"\0")[0]
        out[index] = Link(index, _text(attrs.get(IFLA_IFNAME, b"")),
                          _text(info[IFLA_INFO_KIND]) if IFLA_INFO_KIND in info else None,
                          bool(flags & 1),
                          struct.unpack("=I", attrs[IFLA_MTU])[0] if IFLA_MTU in attrs else None,
                          OPERSTATES[state] if state < len(OPERSTATES) else str(state))
    for _, payload in request(NETLINK_ROUTE, RTM_GETADDR, NLM_F_DUMP, bytes(8)):
        family, prefix, _, _, index = struct.unpack_from("=BBBBI", payload)
        attrs = dict(attributes(payload[8:]))
        raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
        if raw and index in out and family in (socket.AF_INET, socket.AF_INET6):
            out[index].addresses.append(f"{socket.inet_ntop(family, raw)}/{prefix}")
    return {link.name: link for link in out.values()}


def family_id(name: str) -> int | None:
    """The generic netlink family NAME's id, None when the kernel has none."""
    body = struct.pack("=BBH", CTRL_CMD_GETFAMILY, 1, 0) + attribute(
        CTRL_ATTR_FAMILY_NAME, name.encode() + b"\0")
    try:
        for _, payload in request(NETLINK_GENERIC, GENL_ID_CTRL, 0, body):
            attrs = dict(attributes(payload[4:]))
            if CTRL_ATTR_FAMILY_ID in attrs:
                return int(struct.unpack("=H", attrs[CTRL_ATTR_FAMILY_ID][:2])[0])
    except NetlinkError:
        return None
    return None


def sockaddr(raw: bytes) -> str | None:
    """A sockaddr_in or sockaddr_in6 as ADDR:PORT or [ADDR]:PORT."""
    if len(raw) < 8:
        return None
    family = struct.unpack_from("=H", raw)[0]
    port = struct.unpack_from("!H", raw, 2)[0]
    if family == socket.AF_INET:
        return f"{socket.inet_ntop(socket.AF_INET, raw[4:8])}:{port}"
    if family == socket.AF_INET6 and len(raw) >= 24:
        return f"[{socket.inet_ntop(socket.AF_INET6, raw[8:24])}]:{port}"
    return None


@dataclass
class WgPeer:
    public_key: bytes
    endpoint: str | None = None
    latest_handshake: int | None = None
    rx_bytes: int = 0
    tx_bytes: int = 0
    allowed_ips: list[str] = field(default_factory=list)
    keepalive: int | None = None


def _peer(data: bytes) -> WgPeer:
    peer = WgPeer(b"")
    for kind, value in attributes(data):   # WGPEER_A_PRESHARED_KEY (2) is never kept
        if kind == WGPEER_A_PUBLIC_KEY:
            peer.public_key = value
        elif kind == WGPEER_A_ENDPOINT:
            peer.endpoint = sockaddr(value)
        elif kind == WGPEER_A_KEEPALIVE and len(value) >= 2:
            peer.keepalive = struct.unpack_from("=H", value)[0] or None
        elif kind == WGPEER_A_HANDSHAKE and len(value) >= 8:
            peer.latest_handshake = struct.unpack_from("=q", value)[0] or None
        elif kind in (WGPEER_A_RX, WGPEER_A_TX) and len(value) >= 8:
            setattr(peer, "rx_bytes" if kind == WGPEER_A_RX else "tx_bytes",
                    struct.unpack_from("=Q", value)[0])
        elif kind == WGPEER_A_ALLOWEDIPS:
            for _, ip in attributes(value):
                a = dict(attributes(ip))
                family = struct.unpack("=H", a.get(WGALLOWEDIP_A_FAMILY, b"\0\0")[:2])[0]
                if WGALLOWEDIP_A_IPADDR in a and family in (socket.AF_INET, socket.AF_INET6):
                    peer.allowed_ips.append(
                        f"{socket.inet_ntop(family, a[WGALLOWEDIP_A_IPADDR])}/"
                        f"{a.get(WGALLOWEDIP_A_CIDR, b'0')[0]}")
    return peer


def wireguard_device(ifname: str) -> tuple[int | None, list[WgPeer]] | None:
    """(listen port, peers) of the kernel WireGuard device IFNAME in the
    calling thread's namespace; None when the kernel has no WireGuard or no
    such device. A device with many peers comes in several messages."""
    family = family_id("wireguard")
    if family is None:
        return None
    body = struct.pack("=BBH", WG_CMD_GET_DEVICE, 1, 0) + attribute(
        WGDEVICE_A_IFNAME, ifname.encode() + b"\0")
    port: int | None = None
    peers: list[WgPeer] = []
    try:
        for _, payload in request(NETLINK_GENERIC, family, NLM_F_DUMP, body):
            for kind, value in attributes(payload[4:]):   # the private key (3) is skipped
                if kind == WGDEVICE_A_LISTEN_PORT and len(value) >= 2:
                    port = struct.unpack_from("=H", value)[0] or None
                elif kind == WGDEVICE_A_PEERS:
                    peers += [_peer(p) for _, p in attributes(value)]
    except NetlinkError:
        return None
    merged: dict[bytes, WgPeer] = {}
    for p in peers:   # a peer split over two messages: its allowed IPs continue
        if p.public_key in merged and not p.endpoint:
            merged[p.public_key].allowed_ips += p.allowed_ips
        else:
            merged.setdefault(p.public_key, p)
    return port, list(merged.values())

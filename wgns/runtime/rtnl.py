"""The few rtnetlink changes a tunnel's bring-up makes, without pyroute2
(whose import alone took about a third of a bring-up): a link's MTU, its
move into a namespace, up or down, deleted; an address; a route. Each is
one request that the kernel acknowledges or refuses (NetlinkError with
its errno), as `ip link set` and `ip addr add` send them, and routes as pyroute2
made them before (protocol "static").
Kernel WireGuard's own configuration (generic netlink) stays with
pyroute2 (wgconf.py)."""

from __future__ import annotations

import ipaddress
import socket
import struct

from ..core.netlink import NETLINK_ROUTE, attribute, request

NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x4, 0x200, 0x400
RTM_NEWLINK, RTM_DELLINK, RTM_NEWADDR, RTM_NEWROUTE = 16, 17, 20, 24
IFLA_MTU, IFLA_NET_NS_FD = 4, 28
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_DST, RTA_OIF = 1, 4
IFF_UP = 0x1
RT_TABLE_MAIN, RTPROT_STATIC, RT_SCOPE_UNIVERSE, RTN_UNICAST = 254, 4, 0, 1
IFINFO = struct.Struct("=BxHiII")      # family, type, index, flags, change
IFADDR = struct.Struct("=BBBBI")       # family, prefix length, flags, scope, index
RTMSG = struct.Struct("=BBBBBBBBI")    # family, dst/src length, tos, table, protocol,
                                       # scope, type, flags


def _ask(kind: int, body: bytes, flags: int = 0) -> None:
    for _ in request(NETLINK_ROUTE, kind, NLM_F_ACK | flags, body):
        pass


def index(name: str) -> int | None:
    """The index of link NAME in the calling thread's namespace (None: none)."""
    try:
        return socket.if_nametoindex(name)
    except OSError:
        return None


def set_link(idx: int, *, up: bool | None = None, mtu: int | None = None,
             netns_fd: int | None = None) -> None:
    """`ip link set`: up or down, an MTU, a move into the namespace of NETNS_FD."""
    body = IFINFO.pack(socket.AF_UNSPEC, 0, idx, IFF_UP if up else 0,
                       IFF_UP if up is not None else 0)
    if mtu is not None:
        body += attribute(IFLA_MTU, struct.pack("=I", mtu))
    if netns_fd is not None:
        body += attribute(IFLA_NET_NS_FD, struct.pack("=I", netns_fd))
    _ask(RTM_NEWLINK, body)


def delete_link(idx: int) -> None:
    _ask(RTM_DELLINK, IFINFO.pack(socket.AF_UNSPEC, 0, idx, 0, 0))


def add_address(idx: int, addr: ipaddress.IPv4Interface | ipaddress.IPv6Interface) -> None:
    """`ip addr add ADDR dev IDX` (an address already there: EEXIST)."""
    family = socket.AF_INET if addr.version == 4 else socket.AF_INET6
    raw = addr.ip.packed
    body = IFADDR.pack(family, addr.network.prefixlen, 0, RT_SCOPE_UNIVERSE, idx)
    body += attribute(IFA_LOCAL, raw) + attribute(IFA_ADDRESS, raw)
    _ask(RTM_NEWADDR, body, NLM_F_CREATE | NLM_F_EXCL)


def add_route(net: ipaddress.IPv4Network | ipaddress.IPv6Network, oif: int) -> None:
    """`ip route add NET dev OIF` in the main table (already there: EEXIST)."""
    family = socket.AF_INET if net.version == 4 else socket.AF_INET6
    body = RTMSG.pack(family, net.prefixlen, 0, 0, RT_TABLE_MAIN, RTPROT_STATIC,
                      RT_SCOPE_UNIVERSE, RTN_UNICAST, 0)
    body += attribute(RTA_DST, net.network_address.packed)
    body += attribute(RTA_OIF, struct.pack("=I", oif))
    _ask(RTM_NEWROUTE, body, NLM_F_CREATE | NLM_F_EXCL)

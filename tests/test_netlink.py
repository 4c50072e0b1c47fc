"""wgns's own netlink reader (wgns/core/netlink.py): the links and addresses
of a namespace as iproute2 sees them, and a WireGuard device's answer as
the kernel builds it (WG_CMD_GET_DEVICE, one peer split over two
messages), with the keys it must never keep."""

import json
import socket
import struct
import subprocess

import pytest

from wgns.core import netlink as nl

PRIVATE = bytes(range(32))
PRESHARED = bytes(range(100, 132))
PEER = bytes(range(200, 232))


def test_links_and_addresses_are_what_iproute2_sees():
    ours = nl.links()
    theirs = json.loads(subprocess.run(["ip", "-j", "addr"], capture_output=True,
                                       text=True, check=True).stdout)
    assert sorted(ours) == sorted(i["ifname"] for i in theirs)
    for i in theirs:
        link = ours[i["ifname"]]
        assert link.index == i["ifindex"] and link.mtu == i["mtu"]
        assert link.up == ("UP" in i["flags"]) and link.state == i["operstate"]
        assert sorted(link.addresses) == sorted(
            f"{a['local']}/{a['prefixlen']}" for a in i["addr_info"])


def nested(kind, items):
    return nl.attribute(kind | 0x8000, b"".join(items))


def sockaddr_in(addr, port):
    return struct.pack("=H", socket.AF_INET) + struct.pack("!H", port) + \
        socket.inet_aton(addr) + bytes(8)


def sockaddr_in6(addr, port):
    return struct.pack("=H", socket.AF_INET6) + struct.pack("!HI", port, 0) + \
        socket.inet_pton(socket.AF_INET6, addr) + bytes(4)


def allowed(family, addr, cidr, index):
    return nested(index, [nl.attribute(1, struct.pack("=H", family)),
                          nl.attribute(2, socket.inet_pton(family, addr)),
                          nl.attribute(3, bytes([cidr]))])


def device_messages():
    genl = struct.pack("=BBH", nl.WG_CMD_GET_DEVICE, 1, 0)
    first = genl + b"".join([
        nl.attribute(nl.WGDEVICE_A_IFNAME, b"wg\0"),
        nl.attribute(3, PRIVATE),                                    # private key
        nl.attribute(nl.WGDEVICE_A_LISTEN_PORT, struct.pack("=H", 51820)),
        nested(nl.WGDEVICE_A_PEERS, [nested(0, [
            nl.attribute(nl.WGPEER_A_PUBLIC_KEY, PEER),
            nl.attribute(2, PRESHARED),                              # preshared key
            nl.attribute(nl.WGPEER_A_ENDPOINT, sockaddr_in6("fd00::1", 51820)),
            nl.attribute(nl.WGPEER_A_KEEPALIVE, struct.pack("=H", 25)),
            nl.attribute(nl.WGPEER_A_HANDSHAKE, struct.pack("=qq", 1796000000, 5)),
            nl.attribute(nl.WGPEER_A_RX, struct.pack("=Q", 1 << 40)),
            nl.attribute(nl.WGPEER_A_TX, struct.pack("=Q", 7)),
            nested(nl.WGPEER_A_ALLOWEDIPS, [allowed(socket.AF_INET, "0.0.0.0", 0, 0)]),
        ])])])
    # the kernel's next message goes on with the same peer's allowed IPs
    second = genl + b"".join([
        nl.attribute(nl.WGDEVICE_A_IFNAME, b"wg\0"),
        nested(nl.WGDEVICE_A_PEERS, [nested(0, [
            nl.attribute(nl.WGPEER_A_PUBLIC_KEY, PEER),
            nested(nl.WGPEER_A_ALLOWEDIPS, [allowed(socket.AF_INET6, "::", 0, 0)]),
        ]), nested(1, [
            nl.attribute(nl.WGPEER_A_PUBLIC_KEY, PRESHARED[::-1]),
            nl.attribute(nl.WGPEER_A_ENDPOINT, sockaddr_in("10.1.2.3", 1)),
        ])])])
    return [first, second]


def test_a_device_split_over_messages_reads_whole_and_keeps_no_key(monkeypatch):
    monkeypatch.setattr(nl, "family_id", lambda name: 30)
    sent = []

    def request(protocol, kind, flags, body):
        sent.append((protocol, kind, flags, body))
        return [(30, m) for m in device_messages()]

    monkeypatch.setattr(nl, "request", request)
    port, peers = nl.wireguard_device("wg")
    assert port == 51820 and len(peers) == 2
    p = peers[0]
    assert (p.public_key, p.endpoint, p.keepalive, p.latest_handshake, p.rx_bytes,
            p.tx_bytes) == (PEER, "[fd00::1]:51820", 25, 1796000000, 1 << 40, 7)
    assert p.allowed_ips == ["0.0.0.0/0", "::/0"]
    assert peers[1].endpoint == "10.1.2.3:1" and peers[1].allowed_ips == []
    assert sent[0][:3] == (nl.NETLINK_GENERIC, 30, nl.NLM_F_DUMP)
    held = repr((port, peers)).encode() + b"".join(
        bytes(x) if isinstance(x, (bytes, bytearray)) else b"" for p in peers
        for x in vars(p).values())
    assert PRIVATE not in held and PRESHARED not in held


def test_no_wireguard_in_the_kernel_is_no_device(monkeypatch):
    monkeypatch.setattr(nl, "family_id", lambda name: None)
    assert nl.wireguard_device("wg") is None


@pytest.mark.parametrize("data", [b"", b"\x02\x00", b"\x00\x00\x01\x00", b"\xff\xff\x01\x00x"])
def test_broken_attributes_end_the_walk(data):
    list(nl.attributes(data))   # no exception, no endless loop

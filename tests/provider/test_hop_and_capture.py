"""The fake provider's capture (tests/harness/capture.py) and its MTU hop
(mtu.py), for real, on this host, in front of a pool of servers as
test_pool.py has it (fixtures: conftest.py).
"""

from __future__ import annotations

import os
import struct
import sys
import time

from ..harness import capture, mtu
from ..harness import pool as poolmod
from .net import Root, eventually, fetch

MULLVAD_GW = poolmod.MULLVAD_DNS[0]
TCP_CONNECT = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), 1).close()
    print("connected")
except OSError:
    print("no answer")
"""


def page(root: Root) -> str:
    return fetch(root, f"http://{MULLVAD_GW}/")


def test_capture_sees_wireguard_to_the_endpoints_and_a_stray_tcp_packet(pool_net, client, mullvad):
    root, pool = pool_net
    s = pool.servers[0]
    with capture.Capture(pool.host_links(), netns=root.name) as cap:
        client.use(s.pub, f"{s.public4}:{s.port}")
        assert page(root) == s.page
        clean = list(cap.packets)
        assert root.py(TCP_CONNECT, s.public4, 80) == "connected"  # outside the tunnel
        time.sleep(0.3)
    assert cap.dropped == 0
    sent = [p for p in clean if p.outgoing]
    kinds = {p.wg for p in sent if p.is_wireguard_to(pool.endpoints())}
    assert {1, 4} <= kinds, [str(p) for p in sent]  # handshake initiation, data
    assert any(p.wg == 2 and not p.outgoing for p in clean)  # the server's response
    # Besides ARP and neighbour discovery, at most the kernel's answers to an
    # earlier test's server keepalives (their client link is gone).
    assert not [p for p in sent if not p.is_wireguard_to(pool.endpoints())
                and not p.is_link_chatter() and not p.is_error_about(pool.endpoints())
                ], [str(p) for p in sent]
    stray = cap.stray(pool.endpoints())
    assert stray and all(p.proto == "tcp" and (p.dst, p.dport) == (s.public4, 80)
                         for p in stray), [str(p) for p in stray]
    assert str(stray[0]).startswith(f"out {s.host_if} ipv4 tcp {s.host4}:")


def test_capture_parses_what_it_cannot_classify():
    frame = bytes(12) + b"\x88\xcc" + bytes(40)  # LLDP
    assert capture.parse("x", True, frame).family == "0x88cc"
    ip6 = bytes(12) + b"\x86\xdd" + bytes([0x60, 0, 0, 0, 0, 8, 17, 64]) + bytes(32)
    udp = struct.pack("!HHHH", 1234, 51820, 8, 0) + bytes([4, 0, 0, 0])
    p = capture.parse("x", True, ip6 + udp)
    assert (p.family, p.proto, p.dport, p.wg, p.dst) == ("ipv6", "udp", 51820, 4, "::")
    assert p.is_wireguard_to({("0::0", 51820)}) and not p.is_wireguard_to({("::", 1)})
    # Port unreachable about a packet from 10.251.2.2:51820.
    quoted = bytes([0x45]) + bytes(11) + bytes([10, 251, 2, 2, 10, 251, 2, 1])
    quoted += struct.pack("!HH", 51820, 40000)
    icmp = bytes([3, 3]) + bytes(6) + quoted
    ip4 = bytes(12) + b"\x08\x00" + bytes([0x45, 0, 0, 20 + len(icmp)]) + bytes(5) \
        + bytes([1, 0, 0, 10, 251, 2, 1, 10, 251, 2, 2]) + icmp
    p = capture.parse("x", True, ip4)
    assert (p.proto, p.icmp, p.about) == ("icmp", 3, ("10.251.2.2", 51820))
    assert p.is_error_about({("10.251.2.2", 51820)}) and not p.is_error_about({("::", 1)})


DF_UDP = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, 10, 2 if sys.argv[3] == "df" else 0)  # IP_MTU_DISCOVER
s.settimeout(1)
s.sendto(bytes(int(sys.argv[2]) - 28), (sys.argv[1], 9))
try:
    print(len(s.recv(65535)) + 28)
except OSError:
    print("lost")
"""
UDP_ECHO = """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 9))
while True:
    d, a = s.recvfrom(65535)
    s.sendto(d, a)
"""


def test_mtu_hop_drops_what_does_not_fit_and_stalls_the_default_mtu(pool_net, client, mullvad):
    root, pool = pool_net
    s = pool.servers[0]
    echo = s.spawn([sys.executable, "-c", UDP_ECHO])
    hop = mtu.Hop(s, 1400)
    try:
        eventually("the echo answers", lambda: root.py(DF_UDP, s.public4, 1500, "df") == "1500")
        hop.insert()
        assert root.py(DF_UDP, s.public4, 1400, "df") == "1400"
        assert root.py(DF_UDP, s.public4, 1401, "df") == "lost"
        assert root.py(DF_UDP, s.public4, 1401, "nodf") == "lost"  # the root's link is 1500
        assert root.py(DF_UDP, s.public4, 3000, "nodf") == "lost"  # fragments dropped too
        assert root.py(DF_UDP, s.public4, 1000, "nodf") == "1000"
        assert hop.drops() >= 4
        path = mtu.big_file(s, 8 << 20)
        client.use(s.pub, f"{s.public4}:{s.port}")
        stalled = mtu.download(f"http://{MULLVAD_GW}{path}", root.name, limit=20, stall=2)
        assert stalled.bytes < 8 << 20 and stalled.error, stalled  # WireGuard's 1420
        client.mtu(1328)  # 1400 - 60, less the server's padding to 16 bytes
        done = mtu.download(f"http://{MULLVAD_GW}{path}", root.name, limit=60, stall=5)
        assert done.bytes == 8 << 20 and not done.error and done.mbit_s > 0, done
        client.mtu(1329)
        assert mtu.download(f"http://{MULLVAD_GW}{path}", root.name, limit=20,
                            stall=2).error
    finally:
        hop.remove()
        echo.kill()
        echo.wait()
    assert not os.path.exists(f"/run/netns/{hop.ns}")
    assert root.py(DF_UDP, s.public4, 1500, "df") == "lost"  # the echo is gone, the path is not
    client.mtu(1420)
    assert page(root) == s.page



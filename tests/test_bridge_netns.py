"""The bridges' parts that need real links, in throwaway namespaces: the
UDP relay answering a LAN's broadcast and multicast from the interface's
own address, and `check`'s host-addresses line (a tunnel address the host
shares, a point-to-point address, a route to the host on another link).
Needs root and CAP_NET_ADMIN; skipped without (failed under CI=true)."""

import os
import subprocess
import sys
import time

import pytest

from .conftest import REPO
from .harness.ci import can_make_links, tier_unavailable

LAN, HOST, TUN = f"wgnsb{os.getpid() % 10000}l", f"wgnsb{os.getpid() % 10000}h", \
    f"wgnsb{os.getpid() % 10000}t"


@pytest.fixture(scope="module", autouse=True)
def _needs_links():
    ok, why = can_make_links()
    if not ok:
        tier_unavailable(why)


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def inns(ns: str, code: str, *args: str, timeout: float = 20) -> str:
    p = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code, *args],
                       capture_output=True, text=True, timeout=timeout,
                       env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


@pytest.fixture
def lan():
    """HOST (10.77.0.2/24, fd77::2/64) and LAN (10.77.0.1/24, fd77::1/64) on a veth."""
    try:
        yield from _lan()
    finally:  # also when the set-up failed half-way
        for ns in (LAN, HOST):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def _lan():
    for ns in (LAN, HOST):
        ip("netns", "add", ns)
        ip("-n", ns, "link", "set", "lo", "up")
    ip("link", "add", "wgnsbv0", "netns", LAN, "type", "veth", "peer", "name", "wgnsbv1",
       "netns", HOST)
    for ns, dev, n in ((LAN, "wgnsbv0", 1), (HOST, "wgnsbv1", 2)):
        ip("-n", ns, "addr", "add", f"10.77.0.{n}/24", "dev", dev)
        ip("-n", ns, "addr", "add", f"fd77::{n}/64", "dev", dev, "nodad")
        ip("-n", ns, "link", "set", dev, "up")
    for ns in (LAN, HOST):  # link-local addresses leave duplicate detection
        for _ in range(50):
            p = subprocess.run(["ip", "-n", ns, "-6", "addr", "show", "tentative"],
                               capture_output=True, text=True)
            if not p.stdout.strip():
                break
            time.sleep(0.1)
    yield


RELAY = """
import socket, sys, threading
from wgns.runtime import relay
family = socket.AF_INET if sys.argv[1] == "4" else socket.AF_INET6
echo = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
echo.bind(("127.0.0.1", 0))
def serve():
    while True:
        d, a = echo.recvfrom(2048)
        echo.sendto(b"echo:" + d, a)
threading.Thread(target=serve, daemon=True).start()
lst = socket.socket(family, socket.SOCK_DGRAM)
lst.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 27015))
r = relay.Relay(lst, "127.0.0.1", echo.getsockname()[1])
print("ready", flush=True)
import select
while not select.select([sys.stdin], [], [], 0)[0]:  # until the test closes stdin
    r.step(0.05)
print(r.dropped)
"""

ASK = """
import socket, sys
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
c = socket.socket(family, socket.SOCK_DGRAM)
c.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
c.settimeout(3)
out = []
for dest in sys.argv[1:]:
    if family == socket.AF_INET6 and dest.startswith("ff02"):
        c.sendto(b"x", (dest, 27015, 0, socket.if_nametoindex("wgnsbv0")))
    else:
        c.sendto(b"x", (dest, 27015))
    try:
        d, a = c.recvfrom(100)
        out.append(f"{d.decode()} from {a[0]}")
    except OSError as e:
        out.append(f"no reply: {e}")
print(" | ".join(out))
"""


@pytest.mark.parametrize("version,dests,sources", [
    ("4", ["10.77.0.255", "10.77.0.2"], ["10.77.0.2", "10.77.0.2"]),
    # to all nodes the client sends from its link-local address: the
    # reply comes from the host's link-local address on that link
    ("6", ["ff02::1", "fd77::2"], ["fe80::", "fd77::2"]),
    # IPv4 to a dual-stack [::] listener: the broadcast answered from the
    # interface's address, not from the broadcast address it was sent to
    ("46", ["10.77.0.255", "10.77.0.2"], ["10.77.0.2", "10.77.0.2"]),
])
def test_the_relay_answers_broadcast_and_multicast_from_its_own_address(
        lan, version, dests, sources):
    relay = subprocess.Popen(["ip", "netns", "exec", HOST, sys.executable, "-c", RELAY, version],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             env=dict(os.environ, PYTHONPATH=str(REPO)))
    try:
        assert relay.stdout.readline().strip() == "ready"
        got = inns(LAN, ASK, *dests)
    finally:
        relay.stdin.close()
        relay.wait(timeout=30)
    replies = got.split(" | ")
    assert len(replies) == len(dests) and all(
        r.startswith(f"echo:x from {source}") for r, source in zip(replies, sources)), got
    assert relay.stdout.read().strip() == "0"  # nothing dropped


CHECK = """
from wgns.admin import check_bridges
ok, detail = check_bridges.host_addresses(__import__("sys").argv[1])
print(ok, detail)
"""


@pytest.fixture
def tunnel_ns():
    try:
        yield from _tunnel_ns()
    finally:  # also when the set-up failed half-way
        subprocess.run(["ip", "netns", "del", TUN], capture_output=True)


def _tunnel_ns():
    ip("netns", "add", TUN)
    ip("-n", TUN, "link", "set", "lo", "up")
    # the tunnel's link is named as its namespace, as wgns names both
    ip("-n", TUN, "link", "add", TUN, "type", "veth", "peer", "name", "wgnsbpeer")
    ip("-n", TUN, "addr", "add", "10.2.0.2/32", "dev", TUN)
    ip("-n", TUN, "link", "set", TUN, "up")
    ip("-n", TUN, "route", "add", "default", "dev", TUN)
    yield


def test_host_addresses_passes_a_shared_tunnel_address_and_fails_a_route_out(
        lan, tunnel_ns):
    # the host also holds the tunnel's address (ProtonVPN gives everyone 10.2.0.2)
    # and a point-to-point address, whose own side is IFA_LOCAL
    ip("-n", HOST, "link", "add", "ppp0", "type", "veth", "peer", "name", "ppp1")
    ip("-n", HOST, "addr", "add", "10.2.0.2/32", "dev", "ppp0")
    ip("-n", HOST, "addr", "add", "192.0.2.1", "peer", "192.0.2.2", "dev", "ppp0")
    ip("-n", HOST, "link", "set", "ppp0", "up")
    out = inns(HOST, CHECK, TUN)
    assert out.startswith("True"), out
    # a link into the namespace with a route to the host's own address
    ip("-n", TUN, "link", "add", "hole0", "type", "veth", "peer", "name", "hole1")
    ip("-n", TUN, "link", "set", "hole0", "up")
    ip("-n", TUN, "route", "add", "192.0.2.1/32", "dev", "hole0")
    time.sleep(0.1)
    out = inns(HOST, CHECK, TUN)
    assert out.startswith("False") and "192.0.2.1 via hole0" in out, out

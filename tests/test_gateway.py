"""The fake provider's NAT-PMP gateway (tests/harness/gateway.py), for real.

Three throwaway network namespaces: the gateway's, a client's (10.66.0.2,
the gateway 10.66.0.1 across a veth, as the WireGuard tunnel would put them)
and the outside world's (10.251.0.1, the gateway's public 10.251.0.2 across a
second veth). Hand-built NAT-PMP packets from the client; traffic from the
outside to the port the gateway handed out must reach the client's echo server.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .harness.ci import can_make_links, tier_unavailable


@pytest.fixture(scope="module", autouse=True)
def _needs_links():
    """Root that may make network links; skipped without (failed under CI)."""
    ok, why = can_make_links()
    if not ok:
        tier_unavailable(why)

GATEWAY = Path(__file__).resolve().parent / "harness" / "gateway.py"
PREFIX = f"gwt-{os.getpid()}"
GW, CLIENT, OUT = f"{PREFIX}-gw", f"{PREFIX}-cl", f"{PREFIX}-out"
SERVER, CLIENT4, OUTSIDE, WORLD = "10.66.0.1", "10.66.0.2", "10.251.0.2", "10.251.0.1"
INTERNAL = 8080
UDP, TCP = 1, 2

# Run in a namespace by `python3 -c`, with their arguments after the code.
ASK = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(float(sys.argv[3]))
s.sendto(bytes.fromhex(sys.argv[1]), (sys.argv[2], 5351))
try:
    print(s.recv(100).hex())
except socket.timeout:  # TimeoutError only from Python 3.10
    print("timeout")
"""
ECHO = """
import socket, sys, threading
addr = (sys.argv[1], int(sys.argv[2]))
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(addr)
def udp():
    while True:
        data, peer = u.recvfrom(2048)
        u.sendto(b"udp " + data, peer)
threading.Thread(target=udp, daemon=True).start()
t = socket.create_server(addr)
while True:
    c, _ = t.accept()
    c.sendall(b"tcp " + c.recv(2048))
    c.close()
"""
TCP_PROBE = """
import socket, sys
try:
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), 3)
except ConnectionRefusedError:
    print("refused")
else:
    # The relay may accept before the server behind it listens: it then
    # closes or resets this connection, which is "not yet", not a crash.
    try:
        c.sendall(b"hello")
        print(c.recv(100).decode() or "closed")
    except OSError as e:
        print(f"reset: {e}")
"""
UDP_PROBE = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
s.sendto(b"hello", (sys.argv[1], int(sys.argv[2])))
data, peer = s.recvfrom(100)
print(data.decode(), "from", peer[0], peer[1])
"""


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def inns(ns: str, code: str, *args: object) -> str:
    cmd = ["ip", "netns", "exec", ns, sys.executable, "-c", code, *map(str, args)]
    return subprocess.run(cmd, check=True, capture_output=True, text=True,
                          timeout=20).stdout.strip()


def spawn(ns: str, code: str, *args: object) -> subprocess.Popen:
    return subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", code,
                             *map(str, args)])


def ask(packet: bytes, ns: str = CLIENT, wait: float = 1.0) -> bytes | None:
    out = inns(ns, ASK, packet.hex(), SERVER, wait)
    return None if out == "timeout" else bytes.fromhex(out)


def request(op: int, internal: int, lifetime: int, suggested: int = 0) -> bytes:
    return struct.pack("!BBHHHI", 0, op, 0, internal, suggested, lifetime)


def mapping(op: int, internal: int = INTERNAL, lifetime: int = 60,
            suggested: int = 0) -> dict[str, int]:
    reply = ask(request(op, internal, lifetime, suggested))
    assert reply is not None and len(reply) == 16, reply
    fields = struct.unpack("!BBHIHHI", reply)
    keys = ("version", "op", "result", "epoch", "internal", "external", "lifetime")
    return dict(zip(keys, fields))


def external_address() -> tuple[int, int, str]:
    reply = ask(bytes(2))
    assert reply is not None and len(reply) == 12, reply
    version, op, result, epoch, addr = struct.unpack("!BBHI4s", reply)
    assert (version, op) == (0, 128)
    return result, epoch, socket.inet_ntoa(addr)


def wait_echo(ns: str, host: str, port: int) -> None:
    deadline = time.monotonic() + 30  # generous: a loaded machine
    while inns(ns, TCP_PROBE, host, port) != "tcp hello":
        assert time.monotonic() < deadline, f"no echo from {host}:{port}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def net():
    made: list[str] = []
    echo = None
    try:
        for ns in (GW, CLIENT, OUT):
            ip("netns", "add", ns)
            made.append(ns)
            ip("-n", ns, "link", "set", "lo", "up")
        ip("-n", GW, "link", "add", "tocl", "type", "veth", "peer", "name", "togw", "netns", CLIENT)
        ip("-n", GW, "link", "add", "toout", "type", "veth", "peer", "name", "togw", "netns", OUT)
        ip("-n", GW, "addr", "add", f"{SERVER}/24", "dev", "tocl")
        ip("-n", GW, "addr", "add", f"{OUTSIDE}/24", "dev", "toout")
        ip("-n", CLIENT, "addr", "add", f"{CLIENT4}/32", "dev", "togw")
        ip("-n", OUT, "addr", "add", f"{WORLD}/24", "dev", "togw")
        for ns, dev in ((GW, "tocl"), (GW, "toout"), (CLIENT, "togw"), (OUT, "togw")):
            ip("-n", ns, "link", "set", dev, "up")
        ip("-n", CLIENT, "route", "add", SERVER, "dev", "togw")
        # The outside may knock on the gateway's NAT-PMP port: it must not answer.
        ip("-n", OUT, "route", "add", SERVER, "via", OUTSIDE)
        echo = spawn(CLIENT, ECHO, CLIENT4, INTERNAL)
        wait_echo(CLIENT, CLIENT4, INTERNAL)
        yield
    finally:
        if echo is not None:
            echo.kill()
            echo.wait()
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], check=False)


class Gateway:
    """gateway.py in the gateway namespace; every process started is stopped."""

    def __init__(self, tmp: Path) -> None:
        self.state, self.log = tmp / "natpmp.json", tmp / "natpmp.log"
        self.procs: list[subprocess.Popen] = []

    def start(self, *args: str) -> subprocess.Popen:
        with open(self.log, "a") as log:
            p = subprocess.Popen(["ip", "netns", "exec", GW, sys.executable, str(GATEWAY),
                                  "--listen", SERVER, "--outside", OUTSIDE,
                                  "--state", str(self.state), *args],
                                 stdout=log, stderr=log)
        self.procs.append(p)
        deadline = time.monotonic() + 10
        while ask(bytes(2), wait=0.2) is None:
            assert p.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, "the gateway did not answer"
        return p

    def stop(self, p: subprocess.Popen) -> int:
        if p.poll() is None:
            p.terminate()
        return p.wait(10)

    def read(self) -> dict:
        return json.loads(self.state.read_text())

    def tracebacks(self) -> str:
        log = self.log.read_text()
        return log if "Traceback" in log else ""


@pytest.fixture
def gateway(net, tmp_path):
    gw = Gateway(tmp_path)
    try:
        yield gw
    finally:
        for p in gw.procs:
            try:
                gw.stop(p)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def test_external_address(gateway):
    gateway.start()
    result, epoch, addr = external_address()
    assert (result, addr) == (0, OUTSIDE)
    assert epoch < 5


def test_one_port_for_udp_and_tcp_lifetime_capped(gateway):
    gateway.start("--lifetime-cap", "10")
    udp = mapping(UDP, suggested=1234)
    assert (udp["op"], udp["result"], udp["internal"], udp["lifetime"]) == (129, 0, INTERNAL, 10)
    assert 40000 <= udp["external"] <= 60999
    tcp = mapping(TCP, lifetime=5, suggested=udp["external"])
    assert (tcp["op"], tcp["result"], tcp["lifetime"]) == (130, 0, 5)
    assert tcp["external"] == udp["external"]
    state = gateway.read()
    mapped = {(m["proto"], m["client"], m["internal"], m["external"]) for m in state["mappings"]}
    assert mapped == {("udp", CLIENT4, INTERNAL, tcp["external"]),
                      ("tcp", CLIENT4, INTERNAL, tcp["external"])}
    assert state["requests"] >= 3 and state["refuse"] is False
    assert state["pid"] == gateway.procs[0].pid


def test_refuse(gateway):
    gateway.start("--refuse")
    assert external_address()[0] == 0
    for op in (UDP, TCP):
        m = mapping(op)
        assert (m["result"], m["external"], m["lifetime"]) == (2, 0, 0)
    state = gateway.read()
    assert state["refuse"] is True and state["mappings"] == []


def test_bad_version_and_opcode(gateway):
    gateway.start()
    reply = ask(b"\x01" + request(UDP, INTERNAL, 60)[1:])
    assert reply is not None and reply[:4] == bytes([0, 129, 0, 1]) and len(reply) == 16
    reply = ask(b"\x01\x00")
    assert reply is not None and reply[:4] == bytes([0, 128, 0, 1]) and len(reply) == 12
    reply = ask(b"\x00\x03" + bytes(10))
    assert reply is not None and reply[:4] == bytes([0, 131, 0, 5])


def test_malformed_and_strangers_ignored(gateway):
    p = gateway.start()
    # Empty, short, long, a reply, garbage: no answer, no harm.
    for junk in (b"", b"\x00", b"\x00\x00\x00", b"\x00\x01", request(TCP, INTERNAL, 60)[:11],
                 request(TCP, INTERNAL, 60) + b"\x00", b"\x00\x81" + bytes(14), b"\xff" * 1100):
        assert ask(junk, wait=0.3) is None, junk
    assert ask(bytes(2), ns=OUT, wait=0.3) is None  # 10.251.0.1 is no client
    assert external_address()[0] == 0 and p.poll() is None
    assert gateway.stop(p) == 0
    assert not gateway.tracebacks()


def test_lifetime_zero_deletes(gateway):
    gateway.start()
    tcp = mapping(TCP)
    assert inns(OUT, TCP_PROBE, OUTSIDE, tcp["external"]) == "tcp hello"
    gone = mapping(TCP, lifetime=0)
    assert (gone["result"], gone["internal"], gone["external"], gone["lifetime"]) \
        == (0, INTERNAL, 0, 0)
    assert gateway.read()["mappings"] == []
    assert inns(OUT, TCP_PROBE, OUTSIDE, tcp["external"]) == "refused"


def test_restart_new_epoch_new_port(gateway):
    first = gateway.start()
    port = mapping(UDP)["external"]
    time.sleep(2.1)
    epoch = external_address()[1]
    assert epoch >= 2
    assert gateway.stop(first) == 0
    assert gateway.read()["mappings"] == []
    second = gateway.start()
    assert external_address()[1] < epoch
    again = mapping(UDP)
    assert again["epoch"] < epoch and again["external"] != port
    assert gateway.read()["pid"] == second.pid
    assert not gateway.tracebacks()


def test_forwards_tcp_and_udp(gateway):
    gateway.start()
    port = mapping(TCP)["external"]
    assert mapping(UDP)["external"] == port
    assert inns(OUT, TCP_PROBE, OUTSIDE, port) == "tcp hello"
    assert inns(OUT, UDP_PROBE, OUTSIDE, port) == f"udp hello from {OUTSIDE} {port}"


def test_internal_port_zero_forwards_to_the_same_port(gateway):
    """What ProtonVPN's instructions send (natpmpc -a 1 0 tcp 60)."""
    gateway.start()
    m = mapping(TCP, internal=0)
    assert (m["result"], m["internal"]) == (0, 0)
    echo = spawn(CLIENT, ECHO, CLIENT4, m["external"])
    try:
        wait_echo(OUT, OUTSIDE, m["external"])
    finally:
        echo.kill()
        echo.wait()


def test_expired_mapping_stops_forwarding(gateway):
    gateway.start("--lifetime-cap", "2")
    m = mapping(TCP)
    assert m["lifetime"] == 2
    assert inns(OUT, TCP_PROBE, OUTSIDE, m["external"]) == "tcp hello"
    time.sleep(3)
    assert inns(OUT, TCP_PROBE, OUTSIDE, m["external"]) == "refused"
    assert gateway.read()["mappings"] == []


def test_survives_the_tunnel_address_going_and_coming_back(gateway):
    """The provider's WireGuard server restarting takes 10.66.0.1 away a while."""
    gateway.start()
    port = mapping(TCP)["external"]
    ip("-n", GW, "addr", "del", f"{SERVER}/24", "dev", "tocl")
    ip("-n", GW, "addr", "add", f"{SERVER}/24", "dev", "tocl")
    assert mapping(TCP)["external"] == port
    assert inns(OUT, TCP_PROBE, OUTSIDE, port) == "tcp hello"


def test_provider_api(net, tmp_path, monkeypatch):
    """Provider's start/stop/restart_natpmp and natpmp_state, pointed at the
    test's namespaces (Provider.stop would tear down the guest's: not here)."""
    if shutil.which("wg") is None:
        pytest.skip("Provider() makes its key with wg")
    from tests.harness import provider
    monkeypatch.setattr(provider, "NS", GW)
    monkeypatch.setattr(provider, "STATE", tmp_path)
    monkeypatch.setattr(provider, "NATPMP_STATE", tmp_path / "natpmp.json")
    prov = provider.Provider()
    try:
        assert prov.natpmp_state() == {}
        prov.start_natpmp(lifetime_cap=3)
        assert prov.natpmp is not None
        first = prov.natpmp_state()
        assert first["pid"] == prov.natpmp.pid and first["refuse"] is False
        m = mapping(UDP)
        assert (m["result"], m["lifetime"]) == (0, 3)
        assert prov.natpmp_state()["ports"] == {CLIENT4: m["external"]}
        prov.restart_natpmp()
        assert prov.natpmp_state()["pid"] != first["pid"]
        again = mapping(UDP)
        assert again["lifetime"] == 3 and again["external"] != m["external"]
        prov.restart_natpmp(refuse=True)
        assert mapping(UDP)["result"] == 2 and prov.natpmp_state()["refuse"] is True
        prov.stop_natpmp()
        prov.stop_natpmp()
        assert prov.natpmp is None and ask(bytes(2), wait=0.3) is None
        assert "Traceback" not in (tmp_path / "natpmp.log").read_text()
    finally:
        prov.stop_natpmp()

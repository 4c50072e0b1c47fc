"""The fake provider's pool of servers (tests/harness/pool.py), for real,
on this host: a namespace stands in for a guest's root namespace, three
pool servers hang off it, each in its own namespace, and a WireGuard
client in the root plays the tunnel wgns would run, moving from server to
server as a failover would (fixtures: conftest.py).
"""

from __future__ import annotations

import os
import stat
import subprocess

import pytest

from ..harness import mtu, netnode
from ..harness import pool as poolmod
from .net import PID, Root, fetch

MULLVAD_GW = poolmod.MULLVAD_DNS[0]


def page(root: Root) -> str:
    return fetch(root, f"http://{MULLVAD_GW}/")


def test_every_server_answers_with_its_own_name(pool_net, client, mullvad):
    root, pool = pool_net
    names = []
    for key in mullvad:
        s = key.server
        client.use(s.pub, f"{s.public4}:{s.port}")
        body = page(root)
        assert pool.answered(body) is s, body
        assert s.handshakes()[key.pub] > 0
        names.append(s.name)
    assert len(set(names)) == 3 and len({s.public4 for s in pool.servers}) == 3
    assert len({s.pub for s in pool.servers}) == 3


def test_traffic_goes_through_the_next_server_after_one_stops(pool_net, client, mullvad):
    root, pool = pool_net
    first, second = pool.servers[0], pool.servers[1]
    client.use(first.pub, f"{first.public4}:{first.port}")
    assert page(root) == first.page
    first.stop()
    try:
        assert not first.running() and page(root).startswith("error")
        client.use(second.pub, f"{second.public4}:{second.port}")
        assert page(root) == second.page
    finally:
        first.start()
    assert first.running()
    client.use(first.pub, f"{first.public4}:{first.port}")
    assert page(root) == first.page  # its clients survive a restart


def test_a_dropped_server_is_alive_but_unreachable(pool_net, client, mullvad):
    root, pool = pool_net
    s = pool.servers[1]
    client.use(s.pub, f"{s.public4}:{s.port}")
    assert page(root) == s.page
    s.drop()
    try:
        shook = s.handshakes()[mullvad[0].pub]
        client.use(s.pub, f"{s.public4}:{s.port}")  # a fresh peer: a new handshake is due
        assert page(root).startswith("error")
        assert s.dropped() and s.running() and s.handshakes()[mullvad[0].pub] == shook
        assert root.py(TCP_CONNECT, s.public4, 80) == "no answer"
    finally:
        s.undrop()
    assert not s.dropped() and page(root) == s.page


TCP_CONNECT = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), 1).close()
    print("connected")
except OSError:
    print("no answer")
"""


def test_proton_style_a_key_per_server_one_address(pool_net, client, tmp_path):
    root, pool = pool_net
    keys = pool.proton_clients()
    assert len({k.pub for k in keys}) == 3 and {tuple(k.addrs) for k in keys} == {
        ("10.2.0.2/32", "fd02::2/128")}
    files = pool.write_confs(tmp_path / "proton", keys)
    assert [f.name for f in files] == [f"{s.name}.conf" for s in pool.servers]
    for f, k in zip(files, keys):
        text = f.read_text()
        assert stat.S_IMODE(f.stat().st_mode) == 0o600
        assert f"PrivateKey = {k.priv}\n" in text and f"PublicKey = {k.server.pub}\n" in text
        assert f"Endpoint = {k.server.public4}:51820\n" in text
        assert "Address = 10.2.0.2/32, fd02::2/128\nDNS = 10.2.0.1\n" in text
    named = keys[0].conf(endpoint="name", dns="own", mtu=1328)
    assert f"Endpoint = {keys[0].server.hostname}:51820" in named
    assert f"DNS = {keys[0].server.own_dns}\nMTU = 1328\n" in named
    first, second = pool.servers[0], pool.servers[1]
    client.up(keys[0].priv, ["10.2.0.2/32"], ["10.2.0.0/24"])
    client.use(second.pub, f"{second.public4}:{second.port}")  # the wrong key for it
    assert fetch(root, "http://10.2.0.1/", 2).startswith("error")
    client.use(first.pub, f"{first.public4}:{first.port}")
    assert fetch(root, "http://10.2.0.1/") == first.page


DNS_A = """
import socket, struct, sys
q = struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
q += b"".join(bytes([len(p)]) + p.encode() for p in sys.argv[2].split(".")) + b"\\0"
q += struct.pack("!HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
s.sendto(q, (sys.argv[1], 53))
print(socket.inet_ntoa(s.recv(512)[-4:]))
"""


def test_dns_through_the_tunnel_names_the_server(pool_net, client, mullvad):
    root, pool = pool_net
    for key in mullvad[:2]:
        s = key.server
        client.use(s.pub, f"{s.public4}:{s.port}")
        assert root.py(DNS_A, MULLVAD_GW, "whoami.probe.test") == s.whoami
        assert root.py(DNS_A, MULLVAD_GW, "probe.test") == MULLVAD_GW


ECHO = """
import socket, sys
t = socket.create_server((sys.argv[1], int(sys.argv[2])))
while True:
    c, _ = t.accept()
    c.sendall(b"echo " + c.recv(100))
    c.close()
"""
NATPMP_MAP = """
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.2.0.2", 0))
s.settimeout(3)
s.sendto(struct.pack("!BBHHHI", 0, 2, 0, int(sys.argv[1]), 0, 60), ("10.2.0.1", 5351))
print(struct.unpack("!BBHIHHI", s.recv(16))[5])
"""
SAY = """
import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), 3)
c.sendall(b"hello")
print(c.recv(100).decode())
"""


def test_natpmp_forwards_for_real_through_a_pool_server(pool_net, client):
    root, pool = pool_net
    s = pool.servers[2]
    keys = pool.proton_clients()
    client.up(keys[2].priv, ["10.2.0.2/32"], ["10.2.0.0/24"])
    client.use(s.pub, f"{s.public4}:{s.port}", keepalive=1)
    root.spawn(ECHO, "10.2.0.2", 7000)
    s.start_natpmp(lifetime_cap=30)
    try:
        port = int(root.py(NATPMP_MAP, 7000))
        assert 40000 <= port <= 60999
        mapped = s.natpmp_state()["mappings"]
        assert [(m["client"], m["internal"], m["external"]) for m in mapped] == [
            ("10.2.0.2", 7000, port)]
        # From the world (the root's side of the link) to the server's public
        # address, through the server and the tunnel, to the client.
        assert root.py(SAY, s.public4, port) == "echo hello"
    finally:
        s.stop_natpmp()
    assert s.natpmp_state()["mappings"] == []


def test_a_failed_setup_leaves_nothing(pool_net, tmp_path, monkeypatch):
    root, _ = pool_net
    broken = poolmod.Pool(2, tag=f"pf{PID}-", root=root.name, state=tmp_path, hosts=None)

    def fail(self):  # the second server's WireGuard cannot start
        if self.n == 2:
            raise RuntimeError("no WireGuard here")
        return real(self)
    real = poolmod.Server.start
    monkeypatch.setattr(poolmod.Server, "start", fail)
    with pytest.raises(RuntimeError, match="no WireGuard here"):
        broken.setup()
    left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"pf{PID}-" not in left
    links = subprocess.run(["ip", "-n", root.name, "-o", "link"], capture_output=True,
                           text=True).stdout
    assert f"pf{PID}-" not in links
    assert not os.path.exists(f"/var/run/wireguard/pf{PID}-1wg.sock")


def test_reset_takes_away_what_a_broken_scenario_left(pool_net, tmp_path):
    """provider.reset() between the scenarios of a boot: a pool's
    namespaces (a hop's too) and its root links gone, nothing else."""
    root, pool = pool_net
    left = poolmod.Pool(1, tag=f"pr{PID}-", root=root.name, state=tmp_path, hosts=None)
    left.setup()
    try:
        hop = mtu.Hop(left.servers[0], 1400)
        hop.insert()
        netnode.reset(f"pr{PID}-", root=root.name)
        names = subprocess.run(["ip", "netns", "list"], capture_output=True,
                               text=True).stdout
        assert f"pr{PID}-" not in names and pool.servers[0].ns in names
        links = subprocess.run(["ip", "-n", root.name, "-o", "link"], capture_output=True,
                               text=True).stdout
        assert f"pr{PID}-1h" not in links and pool.servers[0].host_if in links
    finally:
        left.teardown()

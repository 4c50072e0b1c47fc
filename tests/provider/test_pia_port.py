"""wgns's PIA port forwarding (runtime/pia_port.py) against the fake PIA
API, for real on this host: the forwarder runs in the namespace standing
in for the tunnel's, getSignature and bindPort go through a WireGuard
tunnel to the server's gateway (TLS pinned to the provider's authority,
the server's PIA name as the TLS name), the port is reached from outside
through the server, a restart binds the kept signature again, and an odd
port is one line of error (fixtures: conftest.py). The token is the
fixture's: the fake's servers do not route on to its web API."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ..conftest import REPO
from ..harness import pool as poolmod
from ..harness.netnode import kill_namespace, sh
from .net import PID, WgClient, eventually
from .pia_calls import ECHO, FIRST, KNOCK, add_key, get_token
from .pia_wgns import Hosts

pytestmark = pytest.mark.usefixtures("calm")

STEP = """
import json, sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from wgns.core import pia
from wgns.runtime.pia_port import PiaPort
gateway, cn, ca, token, state, out = sys.argv[2:8]
class Calls:
    def token(self):
        return token
    def signature(self, tok):
        return pia.get_signature(gateway, cn, ca, tok)
    def bind(self, sig):
        pia.bind_port(gateway, cn, ca, sig)
logs = []
fw = PiaPort("pia", gateway, Calls(), [], Path(out), Path(state), log=logs.append,
             secrets=(token,))
wait = fw.step()
print(json.dumps({"wait": wait, "port": fw.port, "error": fw.error, "logs": logs}))
"""


def step(root, pia, answer, token, tmp_path) -> dict:  # type: ignore[no-untyped-def]
    (tmp_path / "state").mkdir(exist_ok=True)
    (tmp_path / "run").mkdir(exist_ok=True)
    return json.loads(root.py(STEP, REPO, answer["server_vip"], pia.cn(FIRST), pia.ca, token,
                              tmp_path / "state", tmp_path / "run"))


def test_a_signed_port_bound_through_the_tunnel_reaches_the_client(pia_net, tunnel, tmp_path):
    root, pool, pia = pia_net
    wg, answer, token, pub = tunnel
    s = pool.server(FIRST)
    first = step(root, pia, answer, token, tmp_path)
    assert first["error"] is None and first["wait"] == 900, first
    port = first["port"]
    assert (tmp_path / "run/forwarded-port").read_text() == f"{port}\n"
    assert any(f"forwarded port {port}" in line for line in first["logs"])
    root.spawn(ECHO, answer["peer_ip"], port)
    eventually("the echo answering through the forwarded port",
               lambda: root.py(KNOCK, s.public4, port) == "tcp hello / udp hello")
    signed = pia.state(FIRST)["requests"]["getSignature"]
    again = step(root, pia, answer, token, tmp_path)    # a restart: the kept signature
    assert again["port"] == port and again["error"] is None
    assert pia.state(FIRST)["requests"]["getSignature"] == signed
    assert token not in json.dumps([first, again])
    assert token not in (tmp_path / "run/forward.json").read_text()


@pytest.mark.parametrize("literal", ["0", "1e999", '"80"'])
def test_an_odd_port_is_one_line_and_a_retry(pia_net, tunnel, tmp_path, literal):
    root, _, pia = pia_net
    _, answer, token, _ = tunnel
    pia.set_modes(port=literal)
    got = step(root, pia, answer, token, tmp_path)
    assert got["port"] is None and got["wait"] == 10.0
    assert "is not a port from 1 to 65535" in got["error"] and "\n" not in got["error"]
    assert not (tmp_path / "run/forwarded-port").exists()


def test_an_expired_signature_is_refused_and_forgotten(pia_net, tunnel, tmp_path):
    root, _, pia = pia_net
    _, answer, token, _ = tunnel
    pia.set_modes(expired_signature=True)
    got = step(root, pia, answer, token, tmp_path)
    # The payload says it expired: asked again at once, then bindPort refuses it.
    assert got["port"] is None and "payload expired" in got["error"], got
    assert not (tmp_path / "state/pia-signature.json").exists()
    pia.set_modes(expired_signature=None)
    assert step(root, pia, answer, token, tmp_path)["error"] is None


def test_a_rogue_gateway_certificate_is_refused(pia_net, tunnel, tmp_path):
    root, _, pia = pia_net
    _, answer, token, _ = tunnel
    pia.set_modes(rogue=True)
    got = step(root, pia, answer, token, tmp_path)
    assert got["port"] is None and "not from the expected authority" in got["error"]


UNIT = """
import json, sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from wgns.core import pia
from wgns.runtime.pia_port import Calls, PiaPort
api, ca, gateway, cn, user, password, state, out = sys.argv[2:10]
logs = []
calls = Calls((user, password), pia.Api(api, ca), gateway, cn)
fw = PiaPort("pia", gateway, calls, [], Path(out), Path(state), log=logs.append,
             secrets=(password,))
wait = fw.step()
print(json.dumps({"wait": wait, "port": fw.port, "error": fw.error, "logs": logs,
                  "token": fw.token}))
"""


def test_the_token_too_comes_through_the_tunnel_as_the_unit_asks(pia_net, tmp_path):
    """As the forwarding unit runs: in a namespace whose only way out is a
    WireGuard tunnel, the API asked by name for a token, then the gateway."""
    root, pool, pia = pia_net
    s = pool.server(FIRST)
    token = get_token(root, pia)
    priv, pub = poolmod.genkey()
    answer = add_key(root, pia, s, token, pub)
    ns, link = f"pt{PID}-tun", f"t{PID}"
    pia.api_through_tunnels()
    hosts = Hosts(ns, pia.api.public4)
    sh("ip", "netns", "add", ns)
    wg = WgClient(root, link, tmp_path)
    try:
        wg.up(priv, [], [])
        wg.use(answer["server_key"], f"{answer['server_ip']}:{answer['server_port']}")
        sh("ip", "-n", root.name, "link", "set", link, "netns", ns)
        for args in (["addr", "add", f"{answer['peer_ip']}/32", "dev", link],
                     ["link", "set", link, "up"], ["link", "set", "lo", "up"],
                     ["route", "add", "default", "dev", link]):
            sh("ip", "-n", ns, *args)
        for d in ("state", "run"):
            (tmp_path / d).mkdir()
        tokens = pia.state("api")["requests"].get("token", 0)
        (user, pw), = pia.users.items()
        p = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", UNIT, str(REPO),
                            pia.url, str(pia.ca), answer["server_vip"], pia.cn(FIRST), user, pw,
                            str(tmp_path / "state"), str(tmp_path / "run")],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        got = json.loads(p.stdout)
        assert got["error"] is None and got["port"], got
        assert pia.state("api")["requests"]["token"] == tokens + 1
        log = (pia.dir / "api" / "pia.log").read_text()
        assert f"token from {s.public4}" in log      # through the server, not from the root
        assert got["token"] not in json.dumps(got["logs"]) and pw not in p.stdout
    finally:
        kill_namespace(ns)
        hosts.close()
        pia.api_through_tunnels(False)

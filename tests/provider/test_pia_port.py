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

import pytest

from ..conftest import REPO
from .net import eventually
from .pia_calls import ECHO, FIRST, KNOCK

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
    return json.loads(root.py(STEP, REPO, answer["server_vip"], pia.cn(FIRST), pia.ca, token, tmp_path / "state",
        tmp_path / "run"))


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

"""The fake PIA API's port forwarding (tests/harness/pia_routes.py,
pia_forward.py), for real, on this host: getSignature and bindPort through
the tunnel at the server's gateway, the port reached from outside through
the server, a binding that lapses without renewal, expired signatures and
odd ports refused (fixtures: conftest.py, pia_calls.py).
"""

from __future__ import annotations

import base64
import json
import time

import pytest

from ..harness import pool as poolmod
from .net import PID, WgClient
from .pia_calls import ECHO, FIRST, KNOCK, add_key, bind, get_token, signature

pytestmark = pytest.mark.usefixtures("calm")


def test_port_forwarding_through_the_tunnel_for_real(pia_net, tunnel):
    root, pool, pia = pia_net
    wg, answer, token, pub = tunnel
    s = pool.server(FIRST)
    sig = signature(root, pia, s, answer, token)
    assert sig["status"] == "OK", sig
    payload = json.loads(base64.b64decode(sig["payload"]))
    port = payload["port"]
    assert payload["token"] == token and 10000 <= port <= 60999
    left = time.mktime(time.strptime(payload["expires_at"][:19], "%Y-%m-%dT%H:%M:%S")) \
        - time.mktime(time.gmtime())
    assert 59 * 86400 < left <= 60 * 86400 and payload["expires_at"].endswith("Z")
    root.spawn(ECHO, answer["peer_ip"], port)
    assert root.py(KNOCK, s.public4, port) == "refused / none"  # not bound yet
    assert bind(root, pia, s, answer, sig) == {"status": "OK",
                                               "message": "port scheduled for add"}
    # From the world to the server's public address, through the tunnel to the client.
    assert root.py(KNOCK, s.public4, port) == "tcp hello / udp hello"
    assert (port, answer["peer_ip"]) in [(b["port"], b["client"])
                                         for b in pia.state(FIRST)["bindings"]]
    tampered = dict(sig, signature=base64.b64encode(b"x" * 32).decode())
    assert bind(root, pia, s, answer, tampered)["message"] == "invalid signature"
    other = json.loads(base64.b64decode(sig["payload"]))
    other["port"] = port + 1
    forged = dict(sig, payload=base64.b64encode(json.dumps(other).encode()).decode())
    assert bind(root, pia, s, answer, forged)["message"] == "invalid signature"
    pia.revoke_tokens()
    assert signature(root, pia, s, answer, token)["message"] == "Login failed!"


def test_a_bound_port_lapses_without_a_fresh_bind(pia_net, tunnel):
    root, pool, pia = pia_net
    wg, answer, token, pub = tunnel
    s = pool.server(FIRST)
    pia.set_modes(bind_window=4)
    sig = signature(root, pia, s, answer, token)
    port = json.loads(base64.b64decode(sig["payload"]))["port"]
    root.spawn(ECHO, answer["peer_ip"], port)
    bound = time.monotonic()
    assert bind(root, pia, s, answer, sig)["status"] == "OK"
    assert root.py(KNOCK, s.public4, port).startswith("tcp hello")
    time.sleep(max(0.0, bound + 2.5 - time.monotonic()))
    assert bind(root, pia, s, answer, sig)["status"] == "OK"  # renewed: 4 s from now
    renewed = time.monotonic()
    time.sleep(max(0.0, bound + 5 - time.monotonic()))  # the first bind's window is over
    assert root.py(KNOCK, s.public4, port).startswith("tcp hello")
    time.sleep(max(0.0, renewed + 5 - time.monotonic()))
    assert root.py(KNOCK, s.public4, port).startswith("refused")
    assert port not in [b["port"] for b in pia.state(FIRST)["bindings"]]


def test_expired_signatures_and_odd_ports_are_refused(pia_net, tunnel):
    root, pool, pia = pia_net
    wg, answer, token, pub = tunnel
    s = pool.server(FIRST)
    pia.set_modes(sig_lifetime=3)
    signed = time.monotonic()
    sig = signature(root, pia, s, answer, token)
    assert bind(root, pia, s, answer, sig)["status"] == "OK"
    time.sleep(max(0.0, signed + 3.5 - time.monotonic()))
    assert bind(root, pia, s, answer, sig)["message"] == "payload expired"
    pia.set_modes(sig_lifetime=None, expired_signature=True)
    sig = signature(root, pia, s, answer, token)
    expires = json.loads(base64.b64decode(sig["payload"]))["expires_at"]
    assert expires < time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    assert bind(root, pia, s, answer, sig)["message"] == "payload expired"
    pia.set_modes(expired_signature=None)
    for literal, seen in (("0", 0), ("1e999", float("inf")), ("65536", 65536), ('"80"', "80")):
        pia.set_modes(port=literal)
        sig = signature(root, pia, s, answer, token)
        assert json.loads(base64.b64decode(sig["payload"]))["port"] == seen
        assert bind(root, pia, s, answer, sig)["message"] == "invalid port"


def test_a_server_whose_region_has_no_port_forwarding_refuses(pia_net, tmp_path):
    root, pool, pia = pia_net
    s = pool.servers[2]
    token = get_token(root, pia)
    priv, pub = poolmod.genkey()
    answer = add_key(root, pia, s, token, pub)
    wg = WgClient(root, f"d{PID}", tmp_path)
    try:
        wg.up(priv, [f"{answer['peer_ip']}/32"], ["10.68.3.0/24"])
        wg.use(answer["server_key"], f"{s.public4}:51820")
        assert signature(root, pia, s, answer, token) == {
            "status": "ERROR", "message": "port forwarding is not available on this server"}
    finally:
        wg.close()



"""The fake provider's PIA-like API (tests/harness/pia.py, pia_api.py), for
real, on this host: HTTPS with the provider's own authority, a token, the
server list, a key registered with a pool server's WireGuard so that a
handshake happens, every hostile mode, and a client pinning the provider's
authority refusing the rogue one's certificates. The client runs in a
namespace standing in for a guest's root (fixtures: conftest.py).
"""

from __future__ import annotations

import base64
import json
import os
import stat

import pytest

from ..harness import pia as piamod
from ..harness import pool as poolmod
from .net import PID, fetch
from .pia_calls import FIRST, add_key, api, call, get_token

pytestmark = pytest.mark.usefixtures("calm")


def test_a_token_from_username_and_password(pia_net):
    root, _, pia = pia_net
    (user, pw), = pia.users.items()
    r = api(root, pia, "POST", "/api/client/v2/token", f"username={user}&password={pw}")
    assert r["status"] == 200 and json.loads(r["body"])["token"]
    form = (f'--xx\r\nContent-Disposition: form-data; name="username"\r\n\r\n{user}\r\n'
            f'--xx\r\nContent-Disposition: form-data; name="password"\r\n\r\n{pw}\r\n--xx--\r\n')
    r = api(root, pia, "POST", "/api/client/v2/token", form, "multipart/form-data; boundary=xx")
    assert r["status"] == 200 and json.loads(r["body"])["token"], r  # curl --form, as PIA's scripts
    for body in (f"username={user}&password=wrong", f"username=nobody&password={pw}",
                 "username=&password=", ""):
        r = api(root, pia, "POST", "/api/client/v2/token", body)
        assert r["status"] == 401 and "token" not in r["body"], (body, r)
    pia.set_modes(refuse_login=True)
    r = api(root, pia, "POST", "/api/client/v2/token", f"username={user}&password={pw}")
    assert r["status"] == 401
    assert pia.state("api")["requests"]["token"] >= 7
    log = (pia.dir / "api" / "pia.log").read_text()
    assert pw not in log and "token from" in log


def test_the_server_list_in_pias_shape(pia_net):
    root, pool, pia = pia_net
    r = api(root, pia, "GET", "/vpninfo/servers/v6")
    lines = r["body"].split("\n")
    doc = json.loads(lines[0])
    assert len(lines[0]) > 1000  # PIA's scripts take a shorter answer for a failure
    assert base64.b64decode(lines[2], validate=True) and lines[1] == "" and lines[3] == ""
    regions = {g["id"]: g for g in doc["regions"]}
    assert list(regions) == ["se_stockholm", "nl_amsterdam", "swiss"] == pia.regions()
    assert [g["port_forward"] for g in regions.values()] == [True, True, False]
    for g, s in zip(regions.values(), pool.servers):
        assert g["servers"]["wg"] == [{"ip": s.public4, "cn": piamod.cn_of(s)}]
        assert g["name"] and g["country"] and g["offline"] is False
    assert regions["se_stockholm"]["servers"]["wg"][0]["cn"] == "stockholm401"
    assert doc["groups"]["wg"][0]["ports"] == [1337]
    pia.set_modes(hide_regions=["nl_amsterdam"])
    doc = json.loads(api(root, pia, "GET", "/vpninfo/servers/v6")["body"].split("\n")[0])
    assert [g["id"] for g in doc["regions"]] == ["se_stockholm", "swiss"]


DNS_A = """
import socket, struct, sys
q = struct.pack("!HHHHHH", 7, 0x0100, 1, 0, 0, 0) + b"\\x06whoami\\x05probe\\x04test\\x00"
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
s.sendto(q + struct.pack("!HH", 1, 1), (sys.argv[1], 53))
print(socket.inet_ntoa(s.recv(512)[-4:]))
"""


def test_add_key_registers_the_key_for_real(pia_net, tunnel):
    root, pool, pia = pia_net
    wg, answer, token, pub = tunnel
    s = pool.server(FIRST)
    assert list(answer) == ["status", "server_key", "server_port", "server_ip", "server_vip",
                            "peer_ip", "peer_pubkey", "dns_servers"]
    assert (answer["server_key"], answer["server_port"], answer["server_ip"],
            answer["server_vip"], answer["peer_pubkey"], answer["dns_servers"]) == (
        s.pub, 51820, s.public4, "10.68.1.1", pub, ["10.0.0.243"])
    assert answer["peer_ip"].startswith("10.68.1.") and s.registered()[pub] == answer["peer_ip"]
    assert fetch(root, f"http://{answer['server_vip']}/") == s.page  # through the tunnel
    assert s.handshakes()[pub] > 0
    assert root.py(DNS_A, answer["dns_servers"][0]) == s.whoami
    again = add_key(root, pia, s, get_token(root, pia), pub)
    assert again["peer_ip"] == answer["peer_ip"]  # the same key keeps its address
    s.stop()
    s.start()  # a server restart keeps what addKey registered
    assert pub in s.handshakes()
    assert add_key(root, pia, s, "nonsense", pub) == {"status": "ERROR",
                                                     "message": "Login failed!"}
    assert add_key(root, pia, s, token, "bm90IGEga2V5")["message"] == "Invalid public key"
    pia.revoke_tokens()
    assert add_key(root, pia, s, token, pub)["message"] == "Login failed!"
    pia.forget_keys(FIRST)
    assert pub not in s.handshakes() and s.registered() == {}
    assert fetch(root, f"http://{answer['server_vip']}/", 2).startswith("error")
    assert add_key(root, pia, s, get_token(root, pia), pub)["status"] == "OK"
    # The client's session died with the server's peer: a client that
    # registers again sets its peer again, and the handshake is new.
    wg.use(answer["server_key"], f"{answer['server_ip']}:{answer['server_port']}")
    assert fetch(root, f"http://{answer['server_vip']}/") == s.page


def test_hostile_answers(pia_net):
    root, pool, pia = pia_net
    pia.set_modes(garbage=["token"])
    r = api(root, pia, "POST", "/api/client/v2/token", "username=a&password=b")
    assert r["status"] == 200
    with pytest.raises(ValueError):
        json.loads(r["body"])
    pia.set_modes(garbage=None, slow={"servers": 2})
    r = api(root, pia, "GET", "/vpninfo/servers/v6")
    assert r["seconds"] >= 2 and r["status"] == 200
    pia.set_modes(slow=None, redirect={"*": "http://10.251.200.1:8080/elsewhere"})
    r = api(root, pia, "GET", "/vpninfo/servers/v6")
    assert (r["status"], r["headers"]["location"]) == (302, "http://10.251.200.1:8080/elsewhere")
    s = pool.server(FIRST)
    r = call(root, s.public4, 1337, piamod.cn_of(s), pia.ca, "GET", "/addKey?pt=x&pubkey=y")
    assert r["status"] == 302  # "*": every endpoint
    pia.set_modes(redirect=None, error={"addKey": 500})
    r = call(root, s.public4, 1337, piamod.cn_of(s), pia.ca, "GET", "/addKey?pt=x&pubkey=y")
    assert r["status"] == 500 and json.loads(r["body"])["status"] == "ERROR"
    assert api(root, pia, "GET", "/nowhere")["status"] == 404
    with pytest.raises(ValueError, match="unknown PIA API modes: nope"):
        pia.set_modes(nope=True)


def test_a_client_pinning_the_providers_authority_refuses_the_rogue_one(pia_net):
    root, pool, pia = pia_net
    s = pool.server(FIRST)
    assert api(root, pia, "GET", "/vpninfo/servers/v6")["status"] == 200
    pia.set_modes(rogue=True)
    for r in (api(root, pia, "GET", "/vpninfo/servers/v6"),
              call(root, s.public4, 1337, piamod.cn_of(s), pia.ca, "GET", "/addKey")):
        assert r["tls"] == "refused" and "issuer" in r["error"], r
    # The rogue certificates really are served: the rogue's own authority takes them.
    assert api(root, pia, "GET", "/vpninfo/servers/v6", ca=pia.rogue_ca)["status"] == 200
    wrong_name = call(root, s.public4, 1337, "zurich403", pia.ca, "GET", "/addKey")
    pia.set_modes(rogue=None)
    assert wrong_name["tls"] == "refused"
    # A certificate for one server does not pass for another.
    assert call(root, s.public4, 1337, "zurich403", pia.ca, "GET", "/addKey")["tls"] == "refused"
    assert api(root, pia, "GET", "/vpninfo/servers/v6")["status"] == 200


def test_account_file_and_certificates(pia_net, tmp_path):
    _, pool, pia = pia_net
    path = pia.account_file(tmp_path / "account")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    (user, pw), = pia.users.items()
    assert path.read_text() == f"username={user}\npassword={pw}\n"
    assert pia.ca.read_text().startswith("-----BEGIN CERTIFICATE-----")
    assert pia.ca.read_bytes() != pia.rogue_ca.read_bytes()
    keys = list(pia.dir.glob("*.key")) + [pool.servers[0].state / "server.key"]
    assert keys and all(stat.S_IMODE(k.stat().st_mode) == 0o600 for k in keys)
    assert stat.S_IMODE(pia.config.stat().st_mode) == 0o600


def test_a_failed_setup_leaves_nothing(pia_net, tmp_path, monkeypatch):
    root, _, _ = pia_net
    pool = poolmod.Pool(1, tag=f"pb{PID}-", root=root.name, state=tmp_path, hosts=None)
    pool.setup()
    try:
        broken = piamod.PiaApi(pool)
        monkeypatch.setattr(piamod, "SCRIPT", tmp_path / "missing.py")
        with pytest.raises(RuntimeError, match=r"the PIA API \(api\) did not come up"):
            broken.setup()
        assert not os.path.exists(f"/run/netns/pb{PID}-api")
        assert not broken.procs
    finally:
        pool.teardown()

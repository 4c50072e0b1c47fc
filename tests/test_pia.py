"""The fake provider's PIA-like API (tests/harness/pia.py, pia_api.py), for
real, on this host: HTTPS with the provider's own authority, a token, the
server list, a key registered with a pool server's WireGuard so that a
handshake happens, a port forwarded through the server to the client, and
every hostile mode; a client pinning the provider's authority refuses the
rogue one's certificates.

A throwaway namespace stands in for a guest's root, where the test's
client runs (its HTTPS calls, its WireGuard link, what connects from
outside to a forwarded port); three pool servers and the API node hang off
it. Names carry this run's pid; everything is taken away afterwards.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import time

import pytest

from .conftest import REPO
from .harness import pia as piamod
from .harness import pool as poolmod
from .provider_net import PID, Root, WgClient, fetch, require

ECHO = """
import socket, sys, threading
addr = (sys.argv[1], int(sys.argv[2]))
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(addr)
def udp():
    while True:
        d, peer = u.recvfrom(2048)
        u.sendto(b"udp " + d, peer)
threading.Thread(target=udp, daemon=True).start()
t = socket.create_server(addr)
while True:
    c, _ = t.accept()
    c.sendall(b"tcp " + c.recv(100))
    c.close()
"""
KNOCK = """
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
try:
    c = socket.create_connection((host, port), 3)
    c.sendall(b"hello")
    tcp = c.recv(100).decode() or "closed"
except OSError as e:
    tcp = "refused" if isinstance(e, ConnectionRefusedError) else "error %s" % e
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(2)
u.sendto(b"hello", (host, port))
try:
    udp = u.recv(100).decode()
except OSError:
    udp = "none"
print(tcp + " / " + udp)
"""
FIRST = "se-sto-001"
CLIENT = REPO / "tests/harness/pia_client.py"


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    """(root, pool, pia): three servers, the third's region without port forwarding."""
    require()
    root = Root(f"pa{PID}-root")
    pool = poolmod.Pool(3, tag=f"pa{PID}", root=root.name,
                        state=tmp_path_factory.mktemp("pia"), hosts=None)
    pia = piamod.PiaApi(pool, no_port_forward=("swiss",))
    try:
        pool.setup()
        pia.setup()
        yield root, pool, pia
    finally:
        pia.stop()
        pool.teardown()
        root.close()


@pytest.fixture(autouse=True)
def _calm(net):
    """Every test starts and ends with the API behaving."""
    _, _, pia = net
    pia.clear_modes()
    yield
    pia.clear_modes()


def call(root: Root, ip: str, port: int, host: str, ca, method: str = "GET",  # type: ignore[no-untyped-def]
         path: str = "/", body: str = "", ctype: str = "application/x-www-form-urlencoded"):
    """The harness's own PIA client (pia_client.py) in the root."""
    return json.loads(root.script(CLIENT, ip, port, host, ca, method, path, body, ctype))


def api(root, pia, method, path, body="", ctype="application/x-www-form-urlencoded",  # type: ignore[no-untyped-def]
        ca=None):
    return call(root, pia.api.public4, 443, piamod.API_HOST, ca or pia.ca, method, path, body,
                ctype)


def get_token(root, pia) -> str:  # type: ignore[no-untyped-def]
    user, pw = next(iter(pia.users.items()))
    r = api(root, pia, "POST", "/api/client/v2/token", f"username={user}&password={pw}")
    assert r["status"] == 200, r
    return str(json.loads(r["body"])["token"])


def add_key(root, pia, server, token, pub):  # type: ignore[no-untyped-def]
    from urllib.parse import quote
    r = call(root, server.public4, 1337, piamod.cn_of(server), pia.ca, "GET",
             f"/addKey?pt={quote(token)}&pubkey={quote(pub)}")
    return json.loads(r["body"])


@pytest.fixture
def tunnel(net, tmp_path):
    """A client registered with the first server by addKey, its tunnel up:
    (client, the addKey answer, the token, the client's public key)."""
    root, pool, pia = net
    s = pool.server(FIRST)
    token = get_token(root, pia)
    priv, pub = poolmod.genkey()
    answer = add_key(root, pia, s, token, pub)
    assert answer["status"] == "OK", answer
    wg = WgClient(root, f"c{PID}", tmp_path)
    try:
        wg.up(priv, [f"{answer['peer_ip']}/32"],
              [f"{answer['server_vip'].rsplit('.', 1)[0]}.0/24", f"{answer['dns_servers'][0]}/32"])
        wg.use(answer["server_key"], f"{answer['server_ip']}:{answer['server_port']}")
        yield wg, answer, token, pub
    finally:
        wg.close()


def test_a_token_from_username_and_password(net):
    root, _, pia = net
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


def test_the_server_list_in_pias_shape(net):
    root, pool, pia = net
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


def test_add_key_registers_the_key_for_real(net, tunnel):
    root, pool, pia = net
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


def pf(root, pia, server, answer, path):  # type: ignore[no-untyped-def]
    r = call(root, answer["server_vip"], 19999, piamod.cn_of(server), pia.ca, "GET", path)
    return json.loads(r["body"]) if r.get("status") == 200 else r


def signature(root, pia, server, answer, token):  # type: ignore[no-untyped-def]
    from urllib.parse import quote
    return pf(root, pia, server, answer, f"/getSignature?token={quote(token)}")


def bind(root, pia, server, answer, sig):  # type: ignore[no-untyped-def]
    from urllib.parse import quote
    return pf(root, pia, server, answer,
              f"/bindPort?payload={quote(sig['payload'])}&signature={quote(sig['signature'])}")


def test_port_forwarding_through_the_tunnel_for_real(net, tunnel):
    root, pool, pia = net
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


def test_a_bound_port_lapses_without_a_fresh_bind(net, tunnel):
    root, pool, pia = net
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


def test_expired_signatures_and_odd_ports_are_refused(net, tunnel):
    root, pool, pia = net
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


def test_a_server_whose_region_has_no_port_forwarding_refuses(net, tmp_path):
    root, pool, pia = net
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


def test_hostile_answers(net):
    root, pool, pia = net
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


def test_a_client_pinning_the_providers_authority_refuses_the_rogue_one(net):
    root, pool, pia = net
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


def test_account_file_and_certificates(net, tmp_path):
    _, pool, pia = net
    path = pia.account_file(tmp_path / "account")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    (user, pw), = pia.users.items()
    assert path.read_text() == f"username={user}\npassword={pw}\n"
    assert pia.ca.read_text().startswith("-----BEGIN CERTIFICATE-----")
    assert pia.ca.read_bytes() != pia.rogue_ca.read_bytes()
    keys = list(pia.dir.glob("*.key")) + [pool.servers[0].state / "server.key"]
    assert keys and all(stat.S_IMODE(k.stat().st_mode) == 0o600 for k in keys)
    assert stat.S_IMODE(pia.config.stat().st_mode) == 0o600


def test_a_failed_setup_leaves_nothing(net, tmp_path, monkeypatch):
    root, _, _ = net
    pool = poolmod.Pool(1, tag=f"pb{PID}", root=root.name, state=tmp_path, hosts=None)
    pool.setup()
    try:
        broken = piamod.PiaApi(pool)
        monkeypatch.setattr(piamod, "SCRIPT", tmp_path / "missing.py")
        with pytest.raises(RuntimeError, match=r"the PIA API \(api\) did not come up"):
            broken.setup()
        assert not os.path.exists(f"/run/netns/pb{PID}api")
        assert not broken.procs
    finally:
        pool.teardown()

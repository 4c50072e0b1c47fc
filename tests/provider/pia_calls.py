"""What the fake PIA API's host tests call: the harness's client
(pia_client.py) run in the stand-in root, and the test's own echo and
knocking from outside (fixtures: conftest.py).
"""

from __future__ import annotations

import json
from urllib.parse import quote

from ..conftest import REPO
from ..harness import pia as piamod
from .net import Root

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
    r = call(root, server.public4, 1337, piamod.cn_of(server), pia.ca, "GET",
             f"/addKey?pt={quote(token)}&pubkey={quote(pub)}")
    return json.loads(r["body"])


def pf(root, pia, server, answer, path):  # type: ignore[no-untyped-def]
    r = call(root, answer["server_vip"], 19999, piamod.cn_of(server), pia.ca, "GET", path)
    return json.loads(r["body"]) if r.get("status") == 200 else r


def signature(root, pia, server, answer, token):  # type: ignore[no-untyped-def]
    return pf(root, pia, server, answer, f"/getSignature?token={quote(token)}")


def bind(root, pia, server, answer, sig):  # type: ignore[no-untyped-def]
    return pf(root, pia, server, answer,
              f"/bindPort?payload={quote(sig['payload'])}&signature={quote(sig['signature'])}")



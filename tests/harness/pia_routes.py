"""Guest side: what the fake PIA API (pia_api.py) answers, endpoint by
endpoint, and the hostile modes pia.py can switch on while it runs (the
modes file, read at every request):

  refuse_login: bool          every login refused, right or wrong
  garbage: [endpoint | "*"]   200 with a body that is no JSON
  slow: {endpoint | "*": s}   the answer only after that many seconds
  redirect: {endpoint | "*": url}   302 to url
  error: {endpoint | "*": code}     that HTTP status and an ERROR body
  expired_signature: bool     getSignature's payload expired an hour ago
  port: "literal"             getSignature's port, as raw JSON ("0", "1e999")
  rogue: bool                 TLS with the rogue authority's certificate
  token_gen: int              tokens of another generation refused
  hide_regions: [id]          regions left out of the server list
  token_lifetime, sig_lifetime, bind_window: s    the config's, overridden

Endpoints: token, servers, addKey, getSignature, bindPort. Stdlib only.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import email.parser
import email.policy
import hashlib
import hmac
import ipaddress
import json
import os
import random
import re
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

Answer = tuple[int, Any, dict]
GARBAGE = b"<html><body><h1>502 Bad Gateway</h1></body></html>\x00\xff{\"status\":"
PORTS = (10000, 60999)


class App:
    """One process's side of the API: its config, its node, its state."""

    def __init__(self, cfg: dict, role: str, contexts: dict[bool, ssl.SSLContext],
                 log: Callable[[str], None]) -> None:
        self.cfg, self.role, self.contexts, self.log = cfg, role, contexts, log
        self.node = cfg["api"] if role == "api" else cfg["servers"][role]
        self.secret = bytes.fromhex(cfg["secret"])
        self.lock = threading.Lock()
        self.requests: dict[str, int] = {}
        self.forwarder: Any = None

    def modes(self) -> dict:
        try:
            return dict(json.loads(Path(self.cfg["modes"]).read_text()))
        except (OSError, ValueError):
            return {}

    def setting(self, name: str) -> float:
        return float(self.modes().get(name, self.cfg[name]))

    def context(self, _who: str) -> ssl.SSLContext:
        return self.contexts[bool(self.modes().get("rogue"))]

    def mac(self, data: bytes) -> bytes:
        return hmac.new(self.secret, data, hashlib.sha256).digest()

    def token(self, user: str) -> str:
        expires = int(time.time() + self.setting("token_lifetime"))
        raw = f"{self.modes().get('token_gen', 0)}:{expires}:{user}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=") + "." + self.mac(raw).hex()

    def token_ok(self, token: str) -> bool:
        body, _, mac = token.partition(".")
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            gen, expires, _user = raw.decode().split(":", 2)
            good = hmac.compare_digest(bytes.fromhex(mac), self.mac(raw))
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return False
        return good and int(gen) == int(self.modes().get("token_gen", 0)) \
            and int(expires) > time.time()

    def count(self, name: str) -> None:
        with self.lock:
            self.requests[name] = self.requests.get(name, 0) + 1
        self.save()

    def save(self) -> None:
        """The state file: requests per endpoint, forwarded ports."""
        doc = {"pid": os.getpid(), "requests": self.requests,
               "bindings": self.forwarder.state() if self.forwarder else []}
        path = Path(self.node["state"]) / f"pia-{self.role}.json"
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
        tmp.write_text(json.dumps(doc, indent=1) + "\n")
        os.replace(tmp, path)


@dataclass
class Request:
    app: App
    name: str
    client: str
    query: dict[str, str]
    handler: Any  # the http.server handler: headers, rfile


def _matches(table: Any, name: str) -> Any:
    if isinstance(table, dict):
        return table.get(name, table.get("*"))
    return name in table or "*" in table if table else None


def hostile(r: Request) -> Answer | None:
    """The answer a hostile mode gives instead of the real one, if any."""
    modes = r.app.modes()
    if r.handler.command == "POST":
        form(r)   # read first: a hostile answer over an unread body reset the connection
    delay = _matches(modes.get("slow", {}), r.name)
    if delay:
        time.sleep(float(delay))
    url = _matches(modes.get("redirect", {}), r.name)
    if url:
        return 302, b"", {"Location": str(url)}
    code = _matches(modes.get("error", {}), r.name)
    if code:
        return int(code), {"status": "ERROR", "message": "internal error"}, {}
    if _matches(modes.get("garbage", []), r.name):
        return 200, GARBAGE, {}
    return None


def error(message: str, status: int = 200) -> Answer:
    return status, {"status": "ERROR", "message": message}, {}


def form(r: Request) -> dict[str, str]:
    """A POST's form fields, urlencoded or multipart (curl --form)."""
    h = r.handler
    if getattr(h, "form_fields", None) is not None:
        return dict(h.form_fields)
    h.form_fields = _read_form(h)
    return dict(h.form_fields)


def _read_form(h: Any) -> dict[str, str]:
    size = int(h.headers.get("Content-Length") or 0)
    body = h.rfile.read(size) if 0 < size <= 65536 else b""
    ctype = h.headers.get("Content-Type", "")
    if ctype.startswith("multipart/form-data"):
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body)
        out = {}
        for part in (msg.iter_parts() if msg.is_multipart() else []):  # type: ignore[attr-defined]
            name = part.get_param("name", header="content-disposition")
            if name:
                data = part.get_payload(decode=True)
                out[str(name)] = data.decode("utf-8", "replace") if isinstance(data, bytes) else ""
        return out
    from urllib.parse import parse_qs
    return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}


def token(r: Request) -> Answer:
    fields = form(r)
    user, password = fields.get("username", ""), fields.get("password", "")
    users = r.app.cfg["users"]
    if r.app.modes().get("refuse_login") or users.get(user) != password or not user:
        return error("authentication failed", 401)
    return 200, {"token": r.app.token(user)}, {}


def servers(r: Request) -> Answer:
    hidden = set(r.app.modes().get("hide_regions", []))
    doc = {"groups": r.app.cfg["groups"],
           "regions": [g for g in r.app.cfg["regions"] if g["id"] not in hidden]}
    line = json.dumps(doc, separators=(",", ":"))
    sig = base64.b64encode(r.app.mac(line.encode()) * 8).decode()
    return 200, f"{line}\n\n{sig}\n", {}


def add_key(r: Request) -> Answer:
    app, node = r.app, r.app.node
    if not app.token_ok(r.query.get("pt", "")):
        return error("Login failed!")
    key = r.query.get("pubkey", "")
    try:
        if len(base64.b64decode(key, validate=True)) != 32:
            raise ValueError
    except (ValueError, binascii.Error):
        return error("Invalid public key")
    registered = Path(node["state"]) / "registered.json"
    with app.lock:
        try:
            peers = dict(json.loads(registered.read_text()))
        except (OSError, ValueError):
            peers = {}
        ip = peers.get(key)
        if ip is None:
            used = set(peers.values())
            ip = next((f"{node['peer_net']}.{i}" for i in range(2, 255)
                       if f"{node['peer_net']}.{i}" not in used), None)
            if ip is None:
                return error("no address left", 503)
        p = subprocess.run(["wg", "set", node["wg_if"], "peer", key, "allowed-ips",
                            f"{ip}/32"], capture_output=True, text=True)
        if p.returncode != 0:
            app.log(f"addKey: wg set failed: {p.stderr.strip()}")
            return error("server unavailable", 503)
        peers[key] = ip
        registered.write_text(json.dumps(peers, indent=1) + "\n")
    return 200, {"status": "OK", "server_key": node["pub"], "server_port": node["wg_port"],
                 "server_ip": node["public"], "server_vip": node["vip"], "peer_ip": ip,
                 "peer_pubkey": key, "dns_servers": node["dns"]}, {}


def rfc3339(t: float) -> str:
    """As PIA writes expires_at: nanoseconds, Z."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + \
        f".{int(t % 1 * 1e9):09d}Z"


def parse_rfc3339(text: str) -> float:
    m = re.fullmatch(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d+)?Z", text)
    if not m:
        raise ValueError(text)
    fields = [int(g) for g in m.groups()[:6]]
    return calendar.timegm((*fields, 0, 0, 0)) + float(m.group(7) or 0)  # type: ignore[arg-type]


def get_signature(r: Request) -> Answer:
    app = r.app
    tok = r.query.get("token", "")
    if not app.token_ok(tok):
        return error("Login failed!")
    if not app.node["port_forward"]:
        return error("port forwarding is not available on this server")
    modes = app.modes()
    port = str(modes["port"]) if modes.get("port") is not None else str(random.randint(*PORTS))
    now = time.time()
    expires = now - 3600 if modes.get("expired_signature") else now + app.setting("sig_lifetime")
    # Built by hand: the port is a raw JSON literal in the hostile modes.
    doc = f'{{"token":{json.dumps(tok)},"port":{port},"expires_at":{json.dumps(rfc3339(expires))}}}'
    payload = base64.b64encode(doc.encode()).decode()
    return 200, {"status": "OK", "payload": payload,
                 "signature": base64.b64encode(app.mac(payload.encode())).decode()}, {}


def bind_port(r: Request) -> Answer:
    app, node = r.app, r.app.node
    payload, signature = r.query.get("payload", ""), r.query.get("signature", "")
    try:
        good = hmac.compare_digest(base64.b64decode(signature, validate=True),
                                   app.mac(payload.encode()))
    except (ValueError, binascii.Error):
        good = False
    if not good:
        return error("invalid signature")
    try:
        doc = json.loads(base64.b64decode(payload, validate=True))
        port, expires = doc["port"], parse_rfc3339(doc["expires_at"])
    except (ValueError, binascii.Error, KeyError, TypeError):
        return error("invalid payload")
    if expires <= time.time():
        return error("payload expired")
    if type(port) is not int or not 1 <= port <= 65535:
        return error("invalid port")
    if ipaddress.ip_address(r.client) not in ipaddress.ip_network(f"{node['peer_net']}.0/24"):
        return error("not from the tunnel")
    try:
        app.forwarder.bind(port, r.client, app.setting("bind_window"))
    except OSError as e:
        return error(f"port unavailable: {e.strerror}", 503)
    return 200, {"status": "OK", "message": "port scheduled for add"}, {}


ROUTES: list[tuple[tuple[str, str], str, Callable[[Request], Answer]]] = [
    (("POST", "/api/client/v2/token"), "token", token),
    (("GET", "/vpninfo/servers/v6"), "servers", servers),
    (("GET", "/addKey"), "addKey", add_key),
    (("GET", "/getSignature"), "getSignature", get_signature),
    (("GET", "/bindPort"), "bindPort", bind_port),
]


def summary(body: Any) -> str:
    """What a log line says of an answer: never a token or a key."""
    if isinstance(body, dict):
        return str(body.get("status") or ("token" if "token" in body else "")) + \
            (f" {body['message']}" if "message" in body else "")
    return f"{len(body)} bytes"

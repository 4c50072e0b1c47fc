"""Private Internet Access's WireGuard API, as its public manual-connections
scripts use it (transport: pia_http.py). PIA hands out no wg-quick files:
a token comes from the account's username and password, the server list
names each region's WireGuard servers, and a fresh public key registered
with one server (`addKey`, port 1337) gives the rest of the tunnel. Port
forwarding asks the server's gateway, through the tunnel, for a signed
port (`getSignature`, valid about two months) and binds it every 15
minutes (`bindPort`), both on port 19999.

Every field of every answer is checked before it is used; nothing here
writes a file or logs.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import ipaddress
import json
import re
import urllib.parse
import uuid
from dataclasses import dataclass, field
from typing import Any

from .pia_http import PiaError, Refused, context, exchange

TOKEN_API = "https://www.privateinternetaccess.com"
SERVER_LIST = "https://serverlist.piaservers.net"
ADD_KEY_PORT, PF_PORT = 1337, 19999
KEY = re.compile(r"[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
TOKEN = re.compile(r"[A-Za-z0-9._~+/=-]{8,1024}")


@dataclass(frozen=True)
class Api:
    """Where the token and the server list come from (BASE: both; by
    default PIA's two hosts), and the authority its servers' certificates
    come from (a file)."""
    base: str | None
    ca: str

    def token_url(self) -> str:
        return (self.base or TOKEN_API) + "/api/client/v2/token"

    def list_url(self) -> str:
        return (self.base or SERVER_LIST) + "/vpninfo/servers/v6"


@dataclass(frozen=True)
class Server:
    ip: str
    cn: str   # the name its certificate carries


@dataclass(frozen=True)
class Region:
    id: str
    name: str
    port_forward: bool
    servers: tuple[Server, ...]


@dataclass(frozen=True)
class Registration:
    """addKey's answer: what the tunnel's wg-quick file holds."""
    server_key: str
    server_ip: str
    server_port: int
    gateway: str          # server_vip: the gateway inside the tunnel
    peer_ip: str
    dns: tuple[str, ...]


@dataclass(frozen=True)
class Signature:
    payload: str = field(repr=False)      # holds the token
    signature: str = field(repr=False)
    port: int = 0
    expires: float | None = None          # Unix time, when the payload says


def check_api(url: str) -> str:
    """--pia-api: https://HOST[:PORT] (a path allowed), no login, query or
    fragment; without its trailing slash."""
    if "@" in url:   # a login, perhaps with its password: refused, never echoed
        raise PiaError("--pia-api: a login in the URL (not shown) has no place there",
                       hint="the account goes in --account FILE")
    bad = PiaError(f"--pia-api: {url[:80]!r} is not an https:// URL of an API base",
                   hint="for example https://www.privateinternetaccess.com")
    if len(url) > 512 or any(c.isspace() or not c.isprintable() for c in url):
        raise bad
    try:
        parts = urllib.parse.urlsplit(url)
        if parts.port == 0:
            raise ValueError
    except ValueError:
        raise bad from None
    if parts.scheme != "https" or not parts.hostname or "@" in parts.netloc \
            or parts.query or parts.fragment or not re.fullmatch(r"[A-Za-z0-9._~/%-]*",
                                                                parts.path):
        raise bad
    return url.rstrip("/")


def _host(url: str) -> tuple[str, int, str]:
    parts = urllib.parse.urlsplit(url)
    return parts.hostname or "", parts.port or 443, parts.path or "/"


def _json(data: bytes, what: str, first_line: bool = False) -> Any:
    """The answer as JSON (the server list: its first line; a signature
    line follows)."""
    try:
        return json.loads(data.split(b"\n", 1)[0] if first_line else data)
    except (ValueError, RecursionError):
        raise PiaError(f"{what} answered something other than JSON") from None


def token(api: Api, username: str, password: str) -> str:
    """A token for the account (a multipart form, as PIA's get_token.sh)."""
    host, port, path = _host(api.token_url())
    boundary = uuid.uuid4().hex
    body = "".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n'
                   f"{v}\r\n" for k, v in (("username", username), ("password", password)))
    what = f"the PIA API ({host})"
    data = exchange(host, port, host, context(api.ca, system=True), "POST", path, what,
                    (body + f"--{boundary}--\r\n").encode(),
                    {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    answer = _json(data, what)
    value = answer.get("token") if isinstance(answer, dict) else None
    if not isinstance(value, str) or not TOKEN.fullmatch(value):
        raise Refused(f"{what} gave no token for this login")
    return value


def ipv4(value: Any, what: str) -> str:
    try:
        addr = ipaddress.IPv4Address(value if isinstance(value, str) else "")
    except ValueError:
        raise PiaError(f"the PIA API's {what} is not an IPv4 address") from None
    if addr.is_unspecified or addr.is_multicast or addr.is_loopback or addr.is_reserved:
        raise PiaError(f"the PIA API's {what} {addr} is not a server's address")
    return str(addr)


def regions(api: Api) -> list[Region]:
    """The server list's regions that have WireGuard servers."""
    host, port, path = _host(api.list_url())
    what = f"the PIA server list ({host})"
    answer = _json(exchange(host, port, host, context(api.ca, system=True), "GET", path,
                            what), what, first_line=True)
    items = answer.get("regions") if isinstance(answer, dict) else None
    if not isinstance(items, list):
        raise PiaError(f"{what} has no regions")
    return [r for r in (_region(item) for item in items[:5000]) if r is not None]


def _region(item: Any) -> Region | None:
    if not isinstance(item, dict) or not isinstance(item.get("id"), str) \
            or not NAME.fullmatch(item["id"]) or item.get("offline") is True:
        return None
    groups = item.get("servers")
    wg = groups.get("wg") if isinstance(groups, dict) else None
    servers = []
    for s in wg[:64] if isinstance(wg, list) else []:
        if isinstance(s, dict) and isinstance(s.get("cn"), str) and NAME.fullmatch(s["cn"]):
            try:
                servers.append(Server(ipv4(s.get("ip"), "server address"), s["cn"]))
            except PiaError:
                continue
    if not servers:
        return None
    name = item.get("name")
    shown = "".join(c for c in name[:60] if c.isprintable()) if isinstance(name, str) else ""
    return Region(item["id"], shown or item["id"], item.get("port_forward") is True,
                  tuple(servers))


def add_key(server: Server, ca: str, tok: str, public_key: str) -> Registration:
    """Register PUBLIC_KEY with SERVER (port 1337, its certificate from CA)."""
    what = f"PIA server {server.cn} ({server.ip}, addKey)"
    query = urllib.parse.urlencode({"pt": tok, "pubkey": public_key})
    a = _json(exchange(server.ip, ADD_KEY_PORT, server.cn, context(ca), "GET",
                       f"/addKey?{query}", what), what)
    if not isinstance(a, dict) or a.get("status") != "OK":
        msg = a.get("message") if isinstance(a, dict) else None
        if msg == "Login failed!":
            raise Refused(f"{what} refused the token")
        raise PiaError(f"{what} did not register the key")
    port, key = a.get("server_port"), a.get("server_key")
    if type(port) is not int or not 0 < port < 65536:
        raise PiaError(f"{what}: server_port is not a port")
    if not isinstance(key, str) or not KEY.fullmatch(key):
        raise PiaError(f"{what}: server_key is not a WireGuard key")
    dns = a.get("dns_servers")
    return Registration(key, ipv4(a.get("server_ip"), "server_ip"), port,
                        ipv4(a.get("server_vip"), "server_vip"),
                        ipv4(a.get("peer_ip"), "peer_ip"),
                        tuple(ipv4(d, "DNS server") for d in dns[:4])
                        if isinstance(dns, list) else ())


def expires_at(text: Any) -> float | None:
    """An RFC 3339 time as PIA writes it (nanoseconds, Z), as Unix time."""
    m = re.fullmatch(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d{1,9})?(Z|[+-]00:00)",
                     text if isinstance(text, str) else "")
    if not m:
        return None
    try:
        fields = tuple(int(g) for g in m.groups()[:6])
        return float(calendar.timegm((*fields, 0, 0, 0))) + float(m.group(7) or 0)
    except (ValueError, OverflowError):
        return None


def signature_of(payload: Any, signature: Any, what: str) -> Signature:
    """A payload and signature as getSignature gives them (and as they are
    kept): the payload base64 JSON with a port of 1-65535."""
    if not (isinstance(payload, str) and isinstance(signature, str)
            and 0 < len(payload) < 4096 and 0 < len(signature) < 4096):
        raise PiaError(f"{what}: no payload and signature")
    try:
        inner = json.loads(base64.b64decode(payload, validate=True))
    except (ValueError, RecursionError, binascii.Error):
        raise PiaError(f"{what}: the payload is not base64 JSON") from None
    port = inner.get("port") if isinstance(inner, dict) else None
    if type(port) is not int or not 0 < port < 65536:
        shown = port if type(port) in (int, float) else type(port).__name__
        raise PiaError(f"{what}: the payload's port ({str(shown)[:20]}) is not a port "
                       "from 1 to 65535")
    return Signature(payload, signature, port, expires_at(inner.get("expires_at")))


def get_signature(gateway: str, cn: str, ca: str, tok: str) -> Signature:
    """A signed port from GATEWAY (through the tunnel: ask from inside)."""
    what = f"PIA gateway {gateway} (getSignature)"
    query = urllib.parse.urlencode({"token": tok})
    a = _json(exchange(gateway, PF_PORT, cn, context(ca), "GET", f"/getSignature?{query}",
                       what), what)
    if not isinstance(a, dict) or a.get("status") != "OK":
        msg = a.get("message") if isinstance(a, dict) else None
        if msg == "Login failed!":
            raise Refused(f"{what} refused the token")
        raise PiaError(f"{what} gave no signature"
                       + (f": {msg[:80]}" if isinstance(msg, str) and msg.isprintable()
                          else ""))
    return signature_of(a.get("payload"), a.get("signature"), what)


def bind_port(gateway: str, cn: str, ca: str, sig: Signature) -> None:
    """Bind (or keep bound) the signed port."""
    what = f"PIA gateway {gateway} (bindPort)"
    query = urllib.parse.urlencode({"payload": sig.payload, "signature": sig.signature})
    a = _json(exchange(gateway, PF_PORT, cn, context(ca), "GET", f"/bindPort?{query}",
                       what), what)
    if not isinstance(a, dict) or a.get("status") != "OK":
        msg = a.get("message") if isinstance(a, dict) else None
        raise Refused(f"{what} refused port {sig.port}"
                      + (f": {msg[:80]}" if isinstance(msg, str) and msg.isprintable()
                         else ""))

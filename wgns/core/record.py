"""The record of a tunnel: everything the admin declared for it, in one
typed value from which every file wgns writes for the tunnel is rendered.

Stored in two files: the tunnel itself (keys, addresses, peers) in
/etc/wgns/NAME.conf, in wg-quick form, the only file that holds a
WireGuard key (0600); the rest in /etc/wgns/NAME/record.json (0600: it can
hold a client's login and an --exec command). Both sides read it through
here: the CLI to render and change it, the units' helpers to know what
they serve. Nothing reads what was declared back out of unit files, except
`legacy.py`, once, for a tunnel an older wgns installed (installed.py
reads the records from disk).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

from . import paths
from .config import Tunnel
from .errors import ConfigError, WgnsError
from .names import check_service, split_host_port
from .portconf import CLIENTS, CONTROL, check_command, check_gateway, check_url
from .provider import Pia
from .provider import from_json as provider_from_json
from .provider import to_json as provider_to_json

# record.json's format: a newer one is refused, never half read. A record
# that uses nothing format 1 lacks is written as format 1, byte for byte as
# before (an older wgns still reads it); one with a static port, Deluge,
# rTorrent or a client's own login is format 2, which an older wgns refuses.
FORMAT = 2
FORMATS = (1, 2)
MAX_RECORD_BYTES = 1 << 20
PROTOS = ("tcp", "udp")
METHODS = ("natpmp", "static", "pia")


@dataclass(frozen=True)
class Expose:
    """A port of a confined unit, reachable on the host at LISTEN."""
    unit: str
    port: int
    listen: str   # ADDRESS:PORT or [IPv6]:PORT in the host's namespace
    proto: str = "tcp"


@dataclass(frozen=True)
class Reach:
    """HOST:PORT outside, reachable from inside the namespace at AT."""
    target: str   # HOST:PORT or [IPv6]:PORT
    at: str       # a loopback ADDRESS:PORT inside
    proto: str = "tcp"


@dataclass(frozen=True)
class Forward:
    """Port forwarding: where the port comes from (a NAT-PMP gateway, or a
    port the provider reserved: method "static") and what follows it.
    LOGIN is every client's login unless LOGINS gives a client its own
    ((client, (username, password)), ...)."""
    method: str = "natpmp"
    gateway: str | None = None
    qbittorrent: str | None = None
    transmission: str | None = None
    command: str | None = None
    login: tuple[str, str] | None = field(default=None, repr=False)
    port: int | None = None            # the reserved port (method "static")
    deluge: str | None = None
    rtorrent: str | None = None
    logins: tuple[tuple[str, tuple[str, str]], ...] = field(default=(), repr=False)

    def clients(self) -> list[tuple[str, str]]:
        """(client, URL) of each client given, in CLIENTS' order."""
        return [(c, url) for c, url in ((c, getattr(self, c)) for c in CLIENTS) if url]

    def login_of(self, client: str) -> tuple[str, str] | None:
        """The login CLIENT is given: its own, else the one for all."""
        return dict(self.logins).get(client, self.login)

    def newer(self) -> bool:
        """Whether this uses what format 1 could not say."""
        return (self.method != "natpmp" or self.port is not None or bool(self.deluge)
                or bool(self.rtorrent) or bool(self.logins))


@dataclass(frozen=True)
class Record:
    """What the admin declared for tunnel NAME, and what rendering it needs
    that is not in the tunnel: which copy of wgns the units run, where
    systemd-socket-proxyd is, whether a dynamic user can read that copy,
    and the host's nsswitch.conf as it was copied."""
    tunnel: Tunnel
    python: str
    helper: str
    proxyd: str = "/usr/lib/systemd/systemd-socket-proxyd"
    dynamic_user: bool = True
    nsswitch: str | None = None
    confined: tuple[str, ...] = ()
    exposes: tuple[Expose, ...] = ()
    reaches: tuple[Reach, ...] = ()
    forward: Forward | None = None
    metrics_dir: str | None = None
    provider: Pia | None = None     # the tunnel was made through PIA's API

    @property
    def name(self) -> str:
        return self.tunnel.name

    def change(self, **kwargs: Any) -> Record:
        return replace(self, **kwargs)


def header(name: str) -> str:
    from .. import __version__
    return (f"{paths.MARKER} {__version__}: what was declared for tunnel {name} (JSON from "
            "the next line). Do not edit; wgns's commands change it.\n")


def to_json(record: Record) -> str:
    """record.json's text (a marker line, then JSON): the declarations,
    never the tunnel's keys."""
    f = record.forward
    data: dict[str, Any] = {
        "format": FORMAT if f is not None and f.newer() else 1,
        "name": record.name, "python": record.python,
        "helper": record.helper, "proxyd": record.proxyd,
        "dynamic_user": record.dynamic_user, "nsswitch": record.nsswitch,
        "confined": list(record.confined),
        "exposes": [{"unit": e.unit, "port": e.port, "listen": e.listen, "proto": e.proto}
                    for e in record.exposes],
        "reaches": [{"target": r.target, "at": r.at, "proto": r.proto}
                    for r in record.reaches],
        "forward": None, "metrics_dir": record.metrics_dir,
    }
    if record.provider is not None:   # format 2: an older wgns refuses it
        data.update(format=FORMAT, provider=provider_to_json(record.provider))
    if f is not None:
        data["forward"] = {"method": f.method, "gateway": f.gateway,
                           "qbittorrent": f.qbittorrent, "transmission": f.transmission,
                           "command": f.command,
                           "login": list(f.login) if f.login else None}
        if f.newer():
            data["forward"].update({"port": f.port, "deluge": f.deluge,
                                    "rtorrent": f.rtorrent,
                                    "logins": {c: list(x) for c, x in f.logins}})
    return header(record.name) + json.dumps(data, indent=2, sort_keys=False) + "\n"


def shown(record: Record) -> dict[str, Any]:
    """The record as `status --json` shows it: no key, no password."""
    data = json.loads(to_json(record).split("\n", 1)[1])
    f = data["forward"]
    if f and f["login"]:
        f["login"] = {"username": f["login"][0], "password": "(hidden)"}
    for client, login in (f.get("logins") or {}).items() if f else ():
        f["logins"][client] = {"username": login[0], "password": "(hidden)"}
    data.pop("format")
    if record.provider is not None:
        from .provider import shown as provider_shown
        data["provider"] = provider_shown(record.provider)
    return data


def _str(data: dict[str, Any], key: str, where: str, optional: bool = False) -> Any:
    value = data.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise ConfigError(where, f"{key} is not a string")
    return value


def _confined(unit: Any, name: str, where: str) -> str:
    """A confined unit: a service's name, and none of wgns's own (the
    tunnel, its namespace, a wgns-* unit)."""
    unit = check_service(_str({"unit": unit}, "unit", where))
    if unit.startswith(("netns@", "wgns-")) or unit == f"{name}.service":
        raise ConfigError(where, f"{unit} belongs to wgns itself and cannot be confined")
    return unit


def _expose(item: Any, where: str) -> Expose:
    if not isinstance(item, dict):
        raise ConfigError(where, "an expose is not an object")
    port = item.get("port")
    if type(port) is not int or not 1 <= port <= 65535:
        raise ConfigError(where, "an expose's port is not 1-65535")
    proto = _str(item, "proto", where)
    if proto not in PROTOS:
        raise ConfigError(where, "an expose's proto is not tcp or udp")
    listen = _str(item, "listen", where)
    split_host_port(listen, "listen")
    return Expose(check_service(_str(item, "unit", where)), port, listen, proto)


def _reach(item: Any, where: str) -> Reach:
    if not isinstance(item, dict):
        raise ConfigError(where, "a reach is not an object")
    proto = _str(item, "proto", where)
    if proto not in PROTOS:
        raise ConfigError(where, "a reach's proto is not tcp or udp")
    target, at = _str(item, "target", where), _str(item, "at", where)
    split_host_port(target, "target")
    split_host_port(at, "at")
    return Reach(target, at, proto)


def _login(login: Any, where: str, what: str) -> tuple[str, str] | None:
    if login is not None and not (isinstance(login, list) and len(login) == 2
                                  and all(isinstance(x, str) for x in login)):
        raise ConfigError(where, f"{what} is not [username, password]")
    if login is not None and any(CONTROL.search(x) for x in login):
        raise ConfigError(where, f"{what} holds a control character")
    return (login[0], login[1]) if login else None


def _forward(item: Any, where: str) -> Forward | None:
    if item is None:
        return None
    if not isinstance(item, dict):
        raise ConfigError(where, "forward is not an object")
    method, port = _str(item, "method", where), item.get("port")
    gateway = _str(item, "gateway", where, optional=True)
    if method not in METHODS:
        raise ConfigError(where, f"forward's method is not one of {', '.join(METHODS)}")
    if method == "static" and not (type(port) is int and 1 <= port <= 65535
                                   and gateway is None):
        raise ConfigError(where, "a static forward needs a port 1-65535 and no gateway")
    if method in ("natpmp", "pia") and (port is not None or gateway is None):
        raise ConfigError(where, f"a {method} forward needs a gateway and no port")
    logins = item.get("logins") or {}
    if not isinstance(logins, dict) or not set(logins) <= set(CLIENTS):
        raise ConfigError(where, f"forward's logins are not per client ({', '.join(CLIENTS)})")
    own = tuple((c, _login(logins[c], where, f"the login of {c}")) for c in CLIENTS
                if c in logins)
    urls = {c: _str(item, c, where, optional=True) for c in CLIENTS}
    for c, url in urls.items():   # checked as `wgns port-forward` checks its options
        if url is not None:
            check_url(url, c, scgi=c == "rtorrent")
    if gateway is not None:
        check_gateway(gateway)
    command = _str(item, "command", where, optional=True)
    return Forward(method=method, gateway=gateway, port=port,
                   command=check_command(command) if command is not None else None,
                   login=_login(item.get("login"), where, "forward's login"),
                   logins=tuple((c, x) for c, x in own if x is not None), **urls)


def from_json(text: str, tunnel: Tunnel, where: str) -> Record:
    """The record of TUNNEL from record.json's TEXT; ConfigError naming
    WHERE for anything that is not what to_json writes."""
    if text.startswith(paths.MARKER):
        text = text.split("\n", 1)[1] if "\n" in text else ""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise ConfigError(where, "is not JSON") from None
    if not isinstance(data, dict):
        raise ConfigError(where, "is not a JSON object")
    if type(data.get("format")) is not int or data["format"] not in FORMATS:
        raise ConfigError(where, f"has format {data.get('format')!r}, not "
                          + " or ".join(map(str, FORMATS)),
                          hint="it was written by another version of wgns")
    if data.get("name") != tunnel.name:
        raise ConfigError(where, "names another tunnel")
    metrics_dir = _str(data, "metrics_dir", where, optional=True)
    if metrics_dir is not None and not metrics_dir.startswith("/"):
        raise ConfigError(where, "metrics_dir is not an absolute path")
    lists: dict[str, list[Any]] = {}
    for key in ("confined", "exposes", "reaches"):
        value = data.get(key)
        if not isinstance(value, list) or len(value) > 4096:
            raise ConfigError(where, f"{key} is not a list")
        lists[key] = value
    try:
        record = Record(
            tunnel=tunnel, python=_str(data, "python", where),
            helper=_str(data, "helper", where), proxyd=_str(data, "proxyd", where),
            dynamic_user=data.get("dynamic_user") is True,
            nsswitch=_str(data, "nsswitch", where, optional=True),
            confined=tuple(_confined(u, tunnel.name, where) for u in lists["confined"]),
            exposes=tuple(_expose(e, where) for e in lists["exposes"]),
            reaches=tuple(_reach(r, where) for r in lists["reaches"]),
            forward=_forward(data.get("forward"), where),
            metrics_dir=metrics_dir, provider=provider_from_json(data.get("provider"), where))
    except ConfigError:
        raise
    except WgnsError as e:
        raise ConfigError(where, e.message) from None
    if record.forward and record.forward.method == "pia" and record.provider is None:
        raise ConfigError(where, "a pia forward needs a tunnel made through PIA")
    return record

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

FORMAT = 1           # of record.json; a newer one is refused, never half read
MAX_RECORD_BYTES = 1 << 20
PROTOS = ("tcp", "udp")


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
    """Port forwarding: the gateway and what follows the port."""
    method: str = "natpmp"
    gateway: str | None = None
    qbittorrent: str | None = None
    transmission: str | None = None
    command: str | None = None
    login: tuple[str, str] | None = field(default=None, repr=False)


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
    data: dict[str, Any] = {
        "format": FORMAT, "name": record.name, "python": record.python,
        "helper": record.helper, "proxyd": record.proxyd,
        "dynamic_user": record.dynamic_user, "nsswitch": record.nsswitch,
        "confined": list(record.confined),
        "exposes": [{"unit": e.unit, "port": e.port, "listen": e.listen, "proto": e.proto}
                    for e in record.exposes],
        "reaches": [{"target": r.target, "at": r.at, "proto": r.proto}
                    for r in record.reaches],
        "forward": None, "metrics_dir": record.metrics_dir,
    }
    f = record.forward
    if f is not None:
        data["forward"] = {"method": f.method, "gateway": f.gateway,
                           "qbittorrent": f.qbittorrent, "transmission": f.transmission,
                           "command": f.command,
                           "login": list(f.login) if f.login else None}
    return header(record.name) + json.dumps(data, indent=2, sort_keys=False) + "\n"


def shown(record: Record) -> dict[str, Any]:
    """The record as `status --json` shows it: no key, no password."""
    data = json.loads(to_json(record).split("\n", 1)[1])
    if data["forward"] and data["forward"]["login"]:
        data["forward"]["login"] = {"username": data["forward"]["login"][0],
                                    "password": "(hidden)"}
    data.pop("format")
    return data


def _str(data: dict[str, Any], key: str, where: str, optional: bool = False) -> Any:
    value = data.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise ConfigError(where, f"{key} is not a string")
    return value


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


def _forward(item: Any, where: str) -> Forward | None:
    if item is None:
        return None
    if not isinstance(item, dict):
        raise ConfigError(where, "forward is not an object")
    login = item.get("login")
    if login is not None and not (isinstance(login, list) and len(login) == 2
                                  and all(isinstance(x, str) for x in login)):
        raise ConfigError(where, "forward's login is not [username, password]")
    return Forward(method=_str(item, "method", where),
                   gateway=_str(item, "gateway", where, optional=True),
                   qbittorrent=_str(item, "qbittorrent", where, optional=True),
                   transmission=_str(item, "transmission", where, optional=True),
                   command=_str(item, "command", where, optional=True),
                   login=(login[0], login[1]) if login else None)


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
    if data.get("format") != FORMAT:
        raise ConfigError(where, f"has format {data.get('format')!r}, not {FORMAT}",
                          hint="it was written by another version of wgns")
    if data.get("name") != tunnel.name:
        raise ConfigError(where, "names another tunnel")
    lists: dict[str, list[Any]] = {}
    for key in ("confined", "exposes", "reaches"):
        value = data.get(key)
        if not isinstance(value, list) or len(value) > 4096:
            raise ConfigError(where, f"{key} is not a list")
        lists[key] = value
    try:
        return Record(
            tunnel=tunnel, python=_str(data, "python", where),
            helper=_str(data, "helper", where), proxyd=_str(data, "proxyd", where),
            dynamic_user=data.get("dynamic_user") is True,
            nsswitch=_str(data, "nsswitch", where, optional=True),
            confined=tuple(check_service(_str({"u": u}, "u", where)) for u in lists["confined"]),
            exposes=tuple(_expose(e, where) for e in lists["exposes"]),
            reaches=tuple(_reach(r, where) for r in lists["reaches"]),
            forward=_forward(data.get("forward"), where),
            metrics_dir=_str(data, "metrics_dir", where, optional=True))
    except ConfigError:
        raise
    except WgnsError as e:
        raise ConfigError(where, e.message) from None

"""The units of the UDP exposes and of the reaches (`wgns expose --udp`,
`wgns reach`). Pure, as render.py: plans of files, no disk, no systemd.

A bridge is a socket unit on one side of the namespace boundary and, started
by it, a proxy on the other: the TCP expose (render.py) listens on the host
and proxies inside; a UDP expose does the same with wgns's relay; a reach
listens inside, on a loopback address, and proxies from the host to one
declared HOST:PORT (systemd-socket-proxyd for TCP, the relay for UDP).
"""

from __future__ import annotations

import ipaddress
import re
from typing import NamedTuple

from .. import __version__
from ..core.names import exec_word, join_host_port, setting
from . import units as render
from .units import UNIT_DIR, File, Link, Plan, _template, tunnel_unit


class Reach(NamedTuple):
    target: str  # HOST:PORT, [IPv6]:PORT
    proto: str  # "tcp" or "udp"
    tunnel: str
    at: str  # ADDR:PORT inside the namespace


def expose_udp_unit(name: str, listen_port: int) -> str:
    return f"wgns-{name}-expose-udp-{listen_port}"


def reach_unit(name: str, at_port: int, proto: str) -> str:
    return f"wgns-{name}-reach-{'udp-' if proto == 'udp' else ''}{at_port}"


def _fence(host: str) -> str:
    """IPAddressDeny=/Allow= for a literal address; a name's addresses are
    the host resolver's to give, so it gets none."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return ("# A name, resolved by the host at each connection: no address\n"
                "# fence can follow it (see 'wgns reach' in the README).")
    return f"# Only {host}: nothing else, even if the proxy were subverted.\n" \
           f"IPAddressDeny=any\nIPAddressAllow={host}"


def _relay(values: dict[str, str], python: str, target_host: str, target_port: int,
           dynamic_user: bool) -> str:
    values = {**values, "python": exec_word(python, "the interpreter's path", first=True),
              "helper": exec_word(render.helper_path(), "the wgns package's path"),
              "target_host": exec_word(target_host, "HOST"), "target_port": str(target_port),
              "user": render.user_setting(dynamic_user, python),
              "secret_paths": render.secret_paths(),
              **render.sandbox_values(python, render.helper_path())}
    return _template("relay.service").substitute(values)


def render_expose_udp(unit: str, port: int, listen: str, listen_port: int, name: str,
                      python: str, dynamic_user: bool) -> Plan:
    """A datagram socket in the host namespace and, started by it, the relay
    inside the tunnel's namespace, towards 127.0.0.1:PORT there."""
    base = expose_udp_unit(name, listen_port)
    header = f"exposes UDP port {port} of {setting(unit, 'unit')} (tunnel {name}) on " \
             f"{setting(listen, '--listen')}"
    values = {"version": __version__, "name": name, "unit": setting(unit, "unit"),
              "port": str(port), "listen": setting(listen, "--listen"),
              "listen_kind": "ListenDatagram", "proto_word": "UDP ", "udp_flag": " --udp",
              "header": header, "undo": f"wgns unexpose {setting(unit, 'unit')} {port} --udp "
              f"--name {name}", "target": f"127.0.0.1:{port} inside",
              "netns": f"NetworkNamespacePath=/run/netns/{name}",
              "fence": "# Only 127.0.0.1 inside the namespace.\n"
                       "IPAddressDeny=any\nIPAddressAllow=localhost"}
    return {
        f"{UNIT_DIR}/{base}.socket": File(_template("expose.socket").substitute(values), 0o644),
        f"{UNIT_DIR}/{base}.service": File(
            _relay(values, python, "127.0.0.1", port, dynamic_user), 0o644),
        f"{UNIT_DIR}/{tunnel_unit(name)}.wants/{base}.socket": Link(
            f"{UNIT_DIR}/{base}.socket"),
    }


def render_reach(host: str, port: int, proto: str, at: str, at_port: int, name: str,
                 proxyd: str, python: str, dynamic_user: bool) -> Plan:
    """A socket inside the tunnel's namespace (on a loopback address) and,
    started by it, a proxy in the host's namespace towards HOST:PORT."""
    base = reach_unit(name, at_port, proto)
    target = setting(join_host_port(host, port), "HOST:PORT")
    values = {"version": __version__, "name": name, "target": target, "proto": proto,
              "at": setting(at, "--at"), "listen": setting(at, "--at") + " inside",
              "listen_kind": "ListenDatagram" if proto == "udp" else "ListenStream",
              "header": f"reaches {target} ({proto}) from {setting(at, '--at')} in tunnel {name}",
              "undo": f"wgns unreach {target}{' --udp' if proto == 'udp' else ''} "
              f"--name {name}",
              "netns": "# In the host's namespace: it reaches the target from there.",
              "fence": _fence(host)}
    if proto == "udp":
        service = _relay(values, python, host, port, dynamic_user)
    else:
        service = _template("reach.service").substitute(
            values, proxyd=exec_word(proxyd, "systemd-socket-proxyd", first=True),
            target_word=exec_word(join_host_port(host, port), "HOST:PORT"))
    return {
        f"{UNIT_DIR}/{base}.socket": File(_template("reach.socket").substitute(values), 0o644),
        f"{UNIT_DIR}/{base}.service": File(service, 0o644),
        f"{UNIT_DIR}/{tunnel_unit(name)}.wants/{base}.socket": Link(
            f"{UNIT_DIR}/{base}.socket"),
    }


def reach_info(text: str) -> Reach | None:
    """What a reach unit's header declares."""
    m = re.match(r"# Generated by wgns [^:\n]*: reaches (\S+) \((tcp|udp)\) from (\S+) "
                 r"in tunnel ([a-z0-9_-]{1,15})\.", text, flags=re.ASCII)
    return Reach(m.group(1), m.group(2), m.group(4), m.group(3)) if m else None

"""The units of the bridges, from the record's exposes and reaches. Pure.

A bridge is a socket unit on one side of the namespace boundary and,
started by it, a proxy on the other: an expose listens on the host and
proxies inside (systemd-socket-proxyd for TCP, wgns's relay for UDP); a
reach listens inside, on a loopback address, and proxies from the host to
one declared HOST:PORT.
"""

from __future__ import annotations

import ipaddress

from .. import __version__
from ..core.names import exec_word, join_host_port, setting, split_host_port
from ..core.paths import UNIT_DIR, expose_unit, netns_path, reach_unit, tunnel_unit
from ..core.plan import File, Link, Plan
from ..core.record import Expose, Reach, Record
from .units import copy_values, secret_paths, template, user_setting


def _port(address: str) -> int:
    return split_host_port(address, "address")[1]


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


def _relay(record: Record, values: dict[str, str], host: str, port: int) -> str:
    return template("relay.service").substitute(
        {**values, **copy_values(record), "target_host": exec_word(host, "HOST"),
         "target_port": str(port), "user": user_setting(record),
         "secret_paths": secret_paths()})


def _pair(record: Record, base: str, socket: str, service: str) -> Plan:
    return {f"{UNIT_DIR}/{base}.socket": File(socket, 0o644),
            f"{UNIT_DIR}/{base}.service": File(service, 0o644),
            f"{UNIT_DIR}/{tunnel_unit(record.name)}.wants/{base}.socket": Link(
                f"{UNIT_DIR}/{base}.socket")}


def expose(record: Record, e: Expose) -> Plan:
    """A socket in the host's namespace and, started by it, a proxy inside
    the tunnel's namespace towards 127.0.0.1:PORT there."""
    name, udp = record.name, e.proto == "udp"
    unit, listen = setting(e.unit, "unit"), setting(e.listen, "--listen")
    values = {"version": __version__, "name": name, "unit": unit, "port": str(e.port),
              "listen": listen, "listen_kind": "ListenDatagram" if udp else "ListenStream",
              "proto_word": "UDP " if udp else "", "udp_flag": " --udp" if udp else ""}
    base = expose_unit(name, _port(e.listen), e.proto)
    if not udp:
        service = template("expose.service").substitute(
            values, proxyd=exec_word(record.proxyd, "systemd-socket-proxyd", first=True))
    else:
        service = _relay(record, {
            **values, "header": f"exposes UDP port {e.port} of {unit} (tunnel {name}) on "
            f"{listen}", "undo": f"wgns unexpose {unit} {e.port} --udp --name {name}",
            "target": f"127.0.0.1:{e.port} inside",
            "netns": f"NetworkNamespacePath={netns_path(name)}",
            "fence": "# Only 127.0.0.1 inside the namespace.\n"
                     "IPAddressDeny=any\nIPAddressAllow=localhost"}, "127.0.0.1", e.port)
    return _pair(record, base, template("expose.socket").substitute(values), service)


def reach(record: Record, r: Reach) -> Plan:
    """A socket inside the tunnel's namespace (on a loopback address) and,
    started by it, a proxy in the host's namespace towards HOST:PORT."""
    name, udp = record.name, r.proto == "udp"
    host, port = split_host_port(r.target, "HOST:PORT")
    target, at = setting(join_host_port(host, port), "HOST:PORT"), setting(r.at, "--at")
    values = {"version": __version__, "name": name, "target": target, "proto": r.proto,
              "at": at, "listen": at + " inside",
              "listen_kind": "ListenDatagram" if udp else "ListenStream",
              "header": f"reaches {target} ({r.proto}) from {at} in tunnel {name}",
              "undo": f"wgns unreach {target}{' --udp' if udp else ''} --name {name}",
              "netns": "# In the host's namespace: it reaches the target from there.",
              "fence": _fence(host)}
    if udp:
        service = _relay(record, values, host, port)
    else:
        service = template("reach.service").substitute(
            values, proxyd=exec_word(record.proxyd, "systemd-socket-proxyd", first=True),
            target_word=exec_word(join_host_port(host, port), "HOST:PORT"))
    base = reach_unit(name, _port(r.at), r.proto)
    return _pair(record, base, template("reach.socket").substitute(values), service)

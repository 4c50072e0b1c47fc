"""`wgns expose`, `unexpose`, `reach` and `unreach`: bridges added to or
taken from a tunnel's record, their socket and proxy units rendered from
it, and the socket started while its tunnel runs (never the tunnel). No
route, link or firewall rule: render/bridges.py says what each unit is."""

from __future__ import annotations

import ipaddress

from ..core.errors import SystemdError, WgnsError
from ..core.installed import installed, load
from ..core.names import (
    check_address,
    check_port,
    check_service,
    join_host_port,
    printable,
    split_host_port,
)
from ..core.paths import expose_unit, reach_unit, tunnel_unit
from ..core.record import Expose, Reach, Record
from ..core.systemd import Systemd
from . import store
from .store import Report, serialised


def parse_listen(listen: str) -> tuple[str, int]:
    """ADDRESS:PORT or [IPv6]:PORT, without a zone ID, as a socket unit's
    ListenStream= takes it."""
    host, sep, port = listen.rpartition(":")
    if not sep:
        raise WgnsError(f"--listen {printable(listen)} is not ADDRESS:PORT",
                        hint="for example 127.0.0.1:8080, 0.0.0.0:8080 or [::1]:8080")
    bracketed = host.startswith("[") and host.endswith("]")
    addr = check_address(host[1:-1] if bracketed else host, "--listen")
    if (addr.version == 6) != bracketed:
        raise WgnsError(f"--listen {printable(listen)}: write an IPv6 address in brackets, "
                        "an IPv4 address without")
    lport = check_port(port, "--listen")
    return (f"[{addr}]" if addr.version == 6 else str(addr)), lport


def parse_target(target: str) -> tuple[str, int]:
    """HOST:PORT to reach: an address (no zone ID, not a wildcard or
    multicast one) or a name the host resolves."""
    host, port = split_host_port(target, "HOST:PORT")
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return host, port
    shown = printable(target)
    if addr.version == 6 and addr.ipv4_mapped:  # type: ignore[union-attr]
        raise WgnsError(f"HOST:PORT {shown}: write an IPv4-mapped address as IPv4 "
                        f"({addr.ipv4_mapped}:{port})")  # type: ignore[union-attr]
    if addr.version == 6 and addr.is_link_local:
        raise WgnsError(f"HOST:PORT {shown}: a link-local IPv6 address needs a zone ID, "
                        "which wgns does not take", hint="give a global or ULA address")
    if addr.is_unspecified or addr.is_multicast or str(addr) == "255.255.255.255":
        raise WgnsError(f"HOST:PORT {shown}: {addr} names no single host",
                        hint="give the host's own address or name")
    return host, port


def parse_at(at: str) -> tuple[str, int]:
    """--at: a loopback address and port inside the namespace. Anything
    else would be reachable from the provider's side of the tunnel."""
    host, port = split_host_port(at, "--at")
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        addr = None
    if addr is None or not addr.is_loopback:
        raise WgnsError(f"--at {printable(at)} must be a loopback address and port, e.g. "
                        "127.0.0.1:5432 or [::1]:5432",
                        hint="a socket on the tunnel's address would let the VPN's side "
                        "reach your host")
    return host, port


def _port(address: str) -> int:
    return split_host_port(address, "address")[1]


def _start(report: Report, sd: Systemd | None, root: str, before: Record, after: Record,
           base: str, where: str) -> None:
    """Start the new socket when its tunnel runs (never the tunnel itself);
    when it does not start, put the record back and say why."""
    if sd is None:
        return
    unit = tunnel_unit(after.name)
    try:
        sd.reload()
        # The socket comes and goes with its tunnel (BindsTo=, and wanted by
        # it): listening now would start a tunnel the admin stopped. Mode
        # "fail": a stop of the tunnel already queued is not overridden.
        if sd.active_state(unit) != "active":
            report.say(f"it listens once {unit} runs")
            return
        cause: Exception | None = None
        state = sd.start(f"{base}.socket", mode="fail")
    except (SystemdError, OSError) as e:
        state, cause = "not started", e
    if state != "active":
        store.save(root, after, before)
        try:
            sd.reload()
            sd.reset_failed(f"{base}.socket")
        except (SystemdError, OSError):
            pass  # the files are gone; the reason it did not start is what matters
        raise SystemdError(f"{base}.socket did not start ({cause or f'state {state}'}); "
                           "nothing was changed", hint=f"is {where} free? see "
                           f"'journalctl -u {base}.socket'")


def _stop(report: Report, sd: Systemd | None, root: str, before: Record, after: Record,
          bases: list[str], said: list[str]) -> None:
    if sd is not None:
        for base in bases:
            sd.stop(f"{base}.socket")
            sd.stop(f"{base}.service")
    store.save(root, before, after)
    report.lines += said
    if sd is not None:
        sd.reload()
        for base in bases:
            sd.reset_failed(f"{base}.service")
            sd.reset_failed(f"{base}.socket")


@serialised
def expose(unit: str, port: int, listen: str | None, name: str, root: str,
           sd: Systemd | None, udp: bool = False) -> Report:
    report = Report()
    before = store.require_tunnel(root, name)
    unit = check_service(unit)
    if unit not in before.confined:
        raise WgnsError(f"{unit} is not confined to tunnel {name!r}",
                        hint=f"run 'wgns confine {unit}"
                        + ("'" if name == "wg" else f" --name {name}'") + " first")
    if not 1 <= port <= 65535:
        raise WgnsError(f"port {port} must be 1-65535")
    host, lport = parse_listen(listen or f"127.0.0.1:{port}")
    proto = "udp" if udp else "tcp"
    new = Expose(unit, port, f"{host}:{lport}", proto)
    for r in before.reaches:
        if _port(r.at) == port and r.proto == proto:
            raise WgnsError(f"port {port}/{proto} inside tunnel {name} is taken by the reach "
                            f"of {r.target}", hint=f"'wgns unreach {r.target}' first")
    for tunnel, other in installed_exposes(root):
        if (tunnel == name and (_port(other.listen), other.proto) == (lport, proto)) or \
                (other.listen, other.proto) == (new.listen, proto):
            raise WgnsError(f"{new.listen} ({proto}) already exposes port {other.port} of "
                            f"{other.unit}", hint="pick another --listen port, or "
                            "'wgns unexpose' that one")
    after = before.change(exposes=before.exposes + (new,))
    store.save(root, before, after)
    report.say(f"exposed {proto.upper()} port {port} of {unit} on {new.listen} "
               "(host namespace)")
    _start(report, sd, root, before, after, expose_unit(name, lport, proto),
           f"{new.listen} ({proto})")
    return report


def installed_exposes(root: str) -> list[tuple[str, Expose]]:
    """(tunnel, expose) of every tunnel's record."""
    return [(n, e) for n in installed(root) for e in load(root, n).exposes]


@serialised
def unexpose(unit: str, port: int, name: str, root: str, sd: Systemd | None,
             udp: bool = False) -> Report:
    report = Report()
    before = store.require_tunnel(root, name)
    unit = check_service(unit)
    proto = "udp" if udp else "tcp"
    found = [e for e in before.exposes if (e.unit, e.port, e.proto) == (unit, port, proto)]
    if not found:
        raise WgnsError(f"{proto.upper()} port {port} of {unit} is not exposed (tunnel {name})")
    after = before.change(exposes=tuple(e for e in before.exposes if e not in found))
    _stop(report, sd, root, before, after,
          [expose_unit(name, _port(e.listen), proto) for e in found],
          [f"no longer exposing {proto.upper()} port {port} of {unit} on {e.listen}"
           for e in found])
    return report


@serialised
def reach(target: str, at: str | None, udp: bool, name: str, root: str,
          sd: Systemd | None) -> Report:
    report = Report()
    before = store.require_tunnel(root, name)
    host, port = parse_target(target)
    target = join_host_port(host, port)
    at_host, at_port = parse_at(at if at is not None else f"127.0.0.1:{port}")
    new = Reach(target, join_host_port(at_host, at_port), "udp" if udp else "tcp")
    for r in before.reaches:
        if (_port(r.at), r.proto) == (at_port, new.proto):
            raise WgnsError(f"port {at_port}/{new.proto} inside tunnel {name} already "
                            f"reaches {r.target} (from {r.at})",
                            hint="pick another --at port, or 'wgns unreach' that one")
    for e in before.exposes:
        if (e.port, e.proto) == (at_port, new.proto):
            raise WgnsError(f"port {at_port}/{new.proto} inside tunnel {name} is {e.unit}'s, "
                            f"exposed on {e.listen}", hint="pick another --at port")
    after = before.change(reaches=before.reaches + (new,))
    store.save(root, before, after)
    report.say(f"tunnel {name}: {new.at} ({new.proto}, inside the namespace) reaches "
               f"{target} (from the host)")
    _start(report, sd, root, before, after, reach_unit(name, at_port, new.proto),
           f"{new.at} inside the namespace")
    return report


@serialised
def unreach(target: str, udp: bool, name: str, root: str, sd: Systemd | None) -> Report:
    report = Report()
    before = store.require_tunnel(root, name)
    host, port = split_host_port(target, "HOST:PORT")
    target = join_host_port(host, port)
    proto = "udp" if udp else "tcp"
    found = [r for r in before.reaches if (r.target, r.proto) == (target, proto)]
    if not found:
        raise WgnsError(f"tunnel {name} does not reach {target} ({proto})",
                        hint="'wgns status' lists what it reaches")
    after = before.change(reaches=tuple(r for r in before.reaches if r not in found))
    _stop(report, sd, root, before, after,
          [reach_unit(name, _port(r.at), proto) for r in found],
          [f"tunnel {name} no longer reaches {target} ({proto}) from {r.at}" for r in found])
    return report

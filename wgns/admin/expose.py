"""`wgns expose` and `unexpose`: a socket unit in the host namespace whose
connections (TCP: systemd-socket-proxyd) or datagrams (UDP: wgns's relay)
are carried into the tunnel's namespace. The socket listens only while its
tunnel runs (BindsTo= it, wanted by it)."""

from __future__ import annotations

from ..core.errors import WgnsError
from ..core.names import check_address, check_port
from ..core.systemd import Systemd
from ..render.bridges import expose_udp_unit, render_expose_udp
from ..render.units import UNIT_DIR, expose_info, expose_unit, render_expose
from .bridge import (
    dynamic_user_can_run,
    proxyd_path,
    refuse_reached_port,
    start_bridge,
    stop_bridges,
)
from .ops import Report, confined_units, normalize_unit, require_tunnel, serialised
from .writer import read_owned, under, write_plan


def exposures(root: str, name: str | None = None
              ) -> list[tuple[str, tuple[str, int, str, str, str]]]:
    """[(unit base name, (unit, port, tunnel, listen, proto))] of wgns's
    expose units."""
    out = []
    for p in sorted(under(root, UNIT_DIR).glob("wgns-*-expose-*.socket")):
        text = read_owned(root, f"{UNIT_DIR}/{p.name}")
        info = expose_info(text) if text else None
        base = p.name[: -len(".socket")]
        if info and base == _expected(info) and (name is None or info[2] == name):
            out.append((base, info))
    return out


def _expected(info: tuple[str, int, str, str, str]) -> str | None:
    """The unit name wgns writes for what a header declares (a renamed file
    or a header claiming another tunnel does not match)."""
    try:
        _, lport = parse_listen(info[3])
    except WgnsError:
        return None
    return (expose_udp_unit if info[4] == "udp" else expose_unit)(info[2], lport)


def parse_listen(listen: str) -> tuple[str, int]:
    """ADDRESS:PORT or [IPv6]:PORT, without a zone ID, as a socket unit's
    ListenStream= takes it."""
    host, sep, port = listen.rpartition(":")
    if not sep:
        raise WgnsError(f"--listen {listen!r} is not ADDRESS:PORT",
                        hint="for example 127.0.0.1:8080, 0.0.0.0:8080 or [::1]:8080")
    bracketed = host.startswith("[") and host.endswith("]")
    addr = check_address(host[1:-1] if bracketed else host, "--listen")
    if (addr.version == 6) != bracketed:
        raise WgnsError(f"--listen {listen!r}: write an IPv6 address in brackets, "
                        "an IPv4 address without")
    lport = check_port(port, "--listen")
    return (f"[{addr}]" if addr.version == 6 else str(addr)), lport


@serialised
def expose(unit: str, port: int, listen: str | None, name: str, root: str,
           sd: Systemd | None, udp: bool = False, python: str = "") -> Report:
    report = Report()
    require_tunnel(root, name)
    unit = normalize_unit(unit)
    if confined_units(root).get(unit) != name:
        raise WgnsError(f"{unit} is not confined to tunnel {name!r}",
                        hint=f"run 'wgns confine {unit}"
                        + ("'" if name == "wg" else f" --name {name}'") + " first")
    if not 1 <= port <= 65535:
        raise WgnsError(f"port {port} must be 1-65535")
    host, lport = parse_listen(listen or f"127.0.0.1:{port}")
    listen = f"{host}:{lport}"
    proto = "udp" if udp else "tcp"
    base = expose_udp_unit(name, lport) if udp else expose_unit(name, lport)
    refuse_reached_port(root, name, port, proto)
    for other, info in exposures(root):
        if other == base or (info[3] == listen and info[4] == proto):
            raise WgnsError(f"{listen} ({proto}) already exposes port {info[1]} of {info[0]}",
                            hint="pick another --listen port, or 'wgns unexpose' that one")
    if udp:
        write_plan(root, render_expose_udp(unit, port, listen, lport, name, python,
                                           dynamic_user_can_run(python)))
    else:
        write_plan(root, render_expose(unit, port, listen, lport, name, proxyd_path(root)))
    report.say(f"exposed {proto.upper()} port {port} of {unit} on {listen} (host namespace)")
    start_bridge(report, sd, root, name, base, f"{listen} ({proto})")
    return report


@serialised
def unexpose(unit: str, port: int, name: str, root: str, sd: Systemd | None,
             udp: bool = False) -> Report:
    report = Report()
    unit = normalize_unit(unit)
    proto = "udp" if udp else "tcp"
    found = [(b, i) for b, i in exposures(root, name)
             if i[0] == unit and i[1] == port and i[4] == proto]
    if not found:
        raise WgnsError(f"{proto.upper()} port {port} of {unit} is not exposed (tunnel {name})")
    stop_bridges(report, sd, root, name, [
        (b, f"no longer exposing {proto.upper()} port {port} of {unit} on {i[3]}")
        for b, i in found])
    return report

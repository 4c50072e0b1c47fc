"""`wgns reach` and `unreach`: from inside a tunnel's namespace to one
declared HOST:PORT outside it, with no route, link or firewall rule. A
socket unit listens inside the namespace on a loopback address (only what
runs there can connect) and starts a proxy in the host's namespace that
goes to HOST:PORT and nowhere else. CLI side; the units are in
render_bridge.py, the UDP relay they run in relay.py.

Also what every bridge shares: listing them, starting one only while its
tunnel runs, and taking back what was written when it does not start.
"""

from __future__ import annotations

import ipaddress
import re

from ..core.errors import SystemdError, WgnsError
from ..core.names import join_host_port, printable, split_host_port
from ..core.systemd import Systemd
from ..render.bridges import Reach, reach_info, reach_unit, render_reach
from ..render.units import UNIT_DIR, tunnel_unit
from .ops import Report, require_tunnel, serialised
from .writer import lookup, read_owned, remove_owned, under, write_plan

PROXYD = ("/usr/lib/systemd/systemd-socket-proxyd", "/lib/systemd/systemd-socket-proxyd")


def proxyd_path(root: str) -> str:
    return next((p for p in PROXYD if lookup(root, p).exists()), PROXYD[0])


def unit_paths(base: str, name: str) -> list[str]:
    return [f"{UNIT_DIR}/{base}.socket", f"{UNIT_DIR}/{base}.service",
            f"{UNIT_DIR}/{tunnel_unit(name)}.wants/{base}.socket"]


def _valid(base: str, info: Reach) -> bool:
    """Whether a reach unit's header declares what wgns would have written
    under that file name: a file renamed, or a header edited to claim
    another tunnel or a non-loopback address, is not a declared reach."""
    try:
        host, port = split_host_port(info.target, "HOST:PORT")
        _, at_port = parse_at(info.at)
    except WgnsError:
        return False
    return (join_host_port(host, port) == info.target and info.proto in ("tcp", "udp")
            and reach_unit(info.tunnel, at_port, info.proto) == base)


def owned_bridges(root: str, name: str) -> list[str]:
    """The base names of every bridge unit wgns wrote for tunnel NAME, by
    file name alone (the exact pattern render writes), whatever the header
    says: what uninstall must take away even when the header no longer
    reads as a declared bridge (an older wgns's, or one edited)."""
    pattern = re.compile(rf"wgns-{re.escape(name)}-(?:reach|expose)(?:-udp)?-[0-9]{{1,5}}")
    return sorted({p.name.rsplit(".", 1)[0] for p in under(root, UNIT_DIR).glob(f"wgns-{name}-*")
                   if pattern.fullmatch(p.name.rsplit(".", 1)[0])
                   and p.name.endswith((".socket", ".service"))
                   and read_owned(root, f"{UNIT_DIR}/{p.name}") is not None})


def reaches(root: str, name: str | None = None) -> list[tuple[str, Reach]]:
    """[(unit base name, what it reaches)] of wgns's reach units."""
    out = []
    for p in sorted(under(root, UNIT_DIR).glob("wgns-*-reach-*.socket")):
        text = read_owned(root, f"{UNIT_DIR}/{p.name}")
        info = reach_info(text) if text else None
        base = p.name[: -len(".socket")]
        if info and _valid(base, info) and (name is None or info.tunnel == name):
            out.append((base, info))
    return out


def dynamic_user_can_run(python: str) -> bool:
    from .forward import dynamic_user_can_run as can_run  # one rule for every unit
    return can_run(python)


def start_bridge(report: Report, sd: Systemd | None, root: str, name: str, base: str,
                 where: str) -> None:
    """Start the new socket when its tunnel runs (never the tunnel itself);
    when it does not start, take its files back and say why."""
    if sd is None:
        return
    try:
        sd.reload()
        # The socket comes and goes with its tunnel (BindsTo=, and wanted by
        # it): listening now would start a tunnel the admin stopped. Mode
        # "fail": a stop of the tunnel already queued is not overridden.
        if sd.active_state(tunnel_unit(name)) != "active":
            report.say(f"it listens once {tunnel_unit(name)} runs")
            return
        cause: Exception | None = None
        state = sd.start(f"{base}.socket", mode="fail")
    except (SystemdError, OSError) as e:
        state, cause = "not started", e
    if state != "active":
        remove_owned(root, unit_paths(base, name),
                     prune=[f"{UNIT_DIR}/{tunnel_unit(name)}.wants"])
        try:
            sd.reload()
            sd.reset_failed(f"{base}.socket")
        except (SystemdError, OSError):
            pass  # the files are gone; the reason it did not start is what matters
        raise SystemdError(f"{base}.socket did not start ({cause or f'state {state}'}); "
                           "nothing was changed", hint=f"is {where} free? see "
                           f"'journalctl -u {base}.socket'")


def stop_bridges(report: Report, sd: Systemd | None, root: str, name: str,
                 found: list[tuple[str, str]]) -> None:
    """Stop and remove bridges: [(unit base name, what to say)]."""
    for base, said in found:
        if sd is not None:
            sd.stop(f"{base}.socket")
            sd.stop(f"{base}.service")
        remove_owned(root, unit_paths(base, name),
                     prune=[f"{UNIT_DIR}/{tunnel_unit(name)}.wants"])
        report.say(said)
    if sd is not None:
        sd.reload()
        for base, _ in found:
            sd.reset_failed(f"{base}.service")
            sd.reset_failed(f"{base}.socket")


def refuse_exposed_port(root: str, name: str, port: int, proto: str) -> None:
    """A reach's port inside may not be a port an expose carries to: the
    reach's socket, started with the tunnel, would take it from the service
    and the host's connections would go out to the reach's target."""
    from .expose import exposures
    for _, info in exposures(root, name):
        if info[1] == port and info[4] == proto:
            raise WgnsError(f"port {port}/{proto} inside tunnel {name} is {info[0]}'s, "
                            f"exposed on {info[3]}", hint="pick another --at port")


def refuse_reached_port(root: str, name: str, port: int, proto: str) -> None:
    """The other way round: an expose towards a port a reach listens on."""
    for _, info in reaches(root, name):
        if int(info.at.rpartition(":")[2]) == port and info.proto == proto:
            raise WgnsError(f"port {port}/{proto} inside tunnel {name} is taken by the reach "
                            f"of {info.target}", hint=f"'wgns unreach {info.target}' first")


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


@serialised
def reach(target: str, at: str | None, udp: bool, name: str, root: str,
          sd: Systemd | None, python: str) -> Report:
    report = Report()
    require_tunnel(root, name)
    host, port = parse_target(target)
    target = join_host_port(host, port)
    at_host, at_port = parse_at(at if at is not None else f"127.0.0.1:{port}")
    at = join_host_port(at_host, at_port)
    proto = "udp" if udp else "tcp"
    base = reach_unit(name, at_port, proto)
    for other, info in reaches(root, name):
        if other == base:
            raise WgnsError(f"port {at_port}/{proto} inside tunnel {name} already reaches "
                            f"{info.target} (from {info.at})",
                            hint="pick another --at port, or 'wgns unreach' that one")
    refuse_exposed_port(root, name, at_port, proto)
    write_plan(root, render_reach(host, port, proto, at, at_port, name, proxyd_path(root),
                                  python, dynamic_user_can_run(python)))
    report.say(f"tunnel {name}: {at} ({proto}, inside the namespace) reaches {target} "
               "(from the host)")
    start_bridge(report, sd, root, name, base, f"{at} inside the namespace")
    return report


@serialised
def unreach(target: str, udp: bool, name: str, root: str, sd: Systemd | None) -> Report:
    report = Report()
    host, port = split_host_port(target, "HOST:PORT")
    target = join_host_port(host, port)
    proto = "udp" if udp else "tcp"
    found = [(b, i) for b, i in reaches(root, name) if i.target == target and i.proto == proto]
    if not found:
        raise WgnsError(f"tunnel {name} does not reach {target} ({proto})",
                        hint="'wgns status' lists what it reaches")
    stop_bridges(report, sd, root, name, [
        (b, f"tunnel {name} no longer reaches {target} ({proto}) from {i.at}")
        for b, i in found])
    return report

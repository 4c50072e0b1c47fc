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

from .errors import SystemdError, WgnsError
from .install import lookup, read_owned, remove_owned, under, write_plan
from .names import join_host_port, split_host_port
from .ops import Report, require_tunnel, serialised
from .render import UNIT_DIR, tunnel_unit
from .render_bridge import Reach, reach_info, reach_unit, render_reach
from .systemd import Systemd

PROXYD = ("/usr/lib/systemd/systemd-socket-proxyd", "/lib/systemd/systemd-socket-proxyd")


def proxyd_path(root: str) -> str:
    return next((p for p in PROXYD if lookup(root, p).exists()), PROXYD[0])


def unit_paths(base: str, name: str) -> list[str]:
    return [f"{UNIT_DIR}/{base}.socket", f"{UNIT_DIR}/{base}.service",
            f"{UNIT_DIR}/{tunnel_unit(name)}.wants/{base}.socket"]


def reaches(root: str, name: str | None = None) -> list[tuple[str, Reach]]:
    """[(unit base name, what it reaches)] of wgns's reach units."""
    out = []
    for p in sorted(under(root, UNIT_DIR).glob("wgns-*-reach-*.socket")):
        text = read_owned(root, f"{UNIT_DIR}/{p.name}")
        info = reach_info(text) if text else None
        if info and (name is None or info.tunnel == name):
            out.append((p.name[: -len(".socket")], info))
    return out


def dynamic_user_can_run(python: str) -> bool:
    from .portforward import readable_by_all
    from .render import helper_path
    return readable_by_all(python) and readable_by_all(helper_path())


def start_bridge(report: Report, sd: Systemd | None, root: str, name: str, base: str,
                 where: str) -> None:
    """Start the new socket when its tunnel runs (never the tunnel itself);
    when it does not start, take its files back and say why."""
    if sd is None:
        return
    sd.reload()
    # The socket comes and goes with its tunnel (BindsTo=, and wanted by
    # it): listening now would start a tunnel the admin stopped.
    if sd.active_state(tunnel_unit(name)) != "active":
        report.say(f"it listens once {tunnel_unit(name)} runs")
        return
    state = sd.start(f"{base}.socket")
    if state != "active":
        remove_owned(root, unit_paths(base, name))
        sd.reload()
        sd.reset_failed(f"{base}.socket")
        raise SystemdError(f"{base}.socket did not start (state {state}); nothing was "
                           "changed", hint=f"is {where} free? see "
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


def parse_target(target: str) -> tuple[str, int]:
    """HOST:PORT to reach: an address (no zone ID, not a wildcard or
    multicast one) or a name the host resolves."""
    host, port = split_host_port(target, "HOST:PORT")
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return host, port
    if addr.is_unspecified or addr.is_multicast or str(addr) == "255.255.255.255":
        raise WgnsError(f"HOST:PORT {target!r}: {addr} names no single host",
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
        raise WgnsError(f"--at {at!r} must be a loopback address and port, e.g. "
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

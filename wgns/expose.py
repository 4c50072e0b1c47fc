"""`wgns expose` and `unexpose`: a socket unit in the host namespace whose
connections systemd-socket-proxyd carries into the tunnel's namespace. The
socket listens only while its tunnel runs (BindsTo= it, wanted by it)."""

from __future__ import annotations

from .errors import SystemdError, WgnsError
from .install import lookup, read_owned, remove_owned, under, write_plan
from .names import check_address, check_port
from .ops import Report, confined_units, normalize_unit, require_tunnel, serialised
from .render import UNIT_DIR, expose_info, expose_unit, render_expose, tunnel_unit
from .systemd import Systemd

PROXYD = ("/usr/lib/systemd/systemd-socket-proxyd", "/lib/systemd/systemd-socket-proxyd")


def exposures(root: str, name: str | None = None) -> list[tuple[str, tuple[str, int, str, str]]]:
    """[(unit base name, (unit, port, tunnel, listen))] of wgns's expose units."""
    out = []
    for p in sorted(under(root, UNIT_DIR).glob("wgns-*-expose-*.socket")):
        text = read_owned(root, f"{UNIT_DIR}/{p.name}")
        info = expose_info(text) if text else None
        if info and (name is None or info[2] == name):
            out.append((p.name[: -len(".socket")], info))
    return out


def _expose_paths(base: str, name: str) -> list[str]:
    return [f"{UNIT_DIR}/{base}.socket", f"{UNIT_DIR}/{base}.service",
            f"{UNIT_DIR}/{tunnel_unit(name)}.wants/{base}.socket"]


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
           sd: Systemd | None) -> Report:
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
    base = expose_unit(name, lport)
    for other, info in exposures(root):
        if other == base or info[3] == listen:
            raise WgnsError(f"{listen} already exposes port {info[1]} of {info[0]}",
                            hint="pick another --listen port, or 'wgns unexpose' that one")
    proxyd = next((p for p in PROXYD if lookup(root, p).exists()), PROXYD[0])
    write_plan(root, render_expose(unit, port, listen, lport, name, proxyd))
    report.say(f"exposed port {port} of {unit} on {listen} (host namespace)")
    if sd is not None:
        sd.reload()
        # The socket comes and goes with its tunnel (BindsTo=, and wanted by
        # it): listening now would start a tunnel the admin stopped.
        if sd.active_state(tunnel_unit(name)) != "active":
            report.say(f"it listens once {tunnel_unit(name)} runs")
            return report
        state = sd.start(f"{base}.socket")
        if state != "active":
            remove_owned(root, _expose_paths(base, name))
            sd.reload()
            raise SystemdError(f"{base}.socket did not start (state {state}); nothing "
                               "was exposed", hint=f"is {listen} free? see "
                               f"'journalctl -u {base}.socket'")
    return report


@serialised
def unexpose(unit: str, port: int, name: str, root: str, sd: Systemd | None) -> Report:
    report = Report()
    unit = normalize_unit(unit)
    found = [(b, i) for b, i in exposures(root, name) if i[0] == unit and i[1] == port]
    if not found:
        raise WgnsError(f"port {port} of {unit} is not exposed (tunnel {name})")
    for base, info in found:
        if sd is not None:
            sd.stop(f"{base}.socket")
            sd.stop(f"{base}.service")
        remove_owned(root, _expose_paths(base, name),
                     prune=[f"{UNIT_DIR}/{tunnel_unit(name)}.wants"])
        report.say(f"no longer exposing port {port} of {unit} on {info[3]}")
    if sd is not None:
        sd.reload()
        for base, _ in found:
            sd.reset_failed(f"{base}.service")
    return report

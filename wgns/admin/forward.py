"""`wgns port-forward`: port forwarding turned on (or changed) and off in
a tunnel's record, its unit and settings rendered from it, the unit
(re)started while the tunnel runs. The unit runs runtime/forwarder.py;
what it publishes is read by core/forward_state.py."""

from __future__ import annotations

import os
import stat
from typing import Any

from ..core import portconf
from ..core.errors import SystemdError, WgnsError
from ..core.paths import forward_unit, tunnel_unit
from ..core.record import Forward
from ..core.safeio import read_text
from ..core.systemd import Systemd
from . import store
from .store import Report, serialised

MAX_LOGIN_BYTES = 4096


def read_login(path: str) -> tuple[str, str]:
    """The --credentials file: 'username=' and 'password=' lines, in a file
    only its owner may read (as ssh wants of a key)."""
    if not path:
        raise WgnsError("--credentials: give the path of a file")
    try:
        st = os.stat(path)
    except OSError as e:
        raise WgnsError(f"--credentials {path}: {e.strerror}") from None
    if stat.S_ISREG(st.st_mode) and st.st_mode & 0o077:
        raise WgnsError(f"--credentials {path} may be read by others "
                        f"(mode {stat.S_IMODE(st.st_mode):04o})", hint=f"chmod 600 {path}")
    return portconf.parse_login(read_text(path, MAX_LOGIN_BYTES), f"--credentials {path}")


@serialised
def enable(name: str, root: str, sd: Systemd | None, gateway: str | None,
           qbittorrent: str | None, transmission: str | None, command: str | None,
           credentials: str | None) -> Report:
    """Validate everything, then write; the unit (re)starts only when the
    tunnel runs. Running it again replaces the settings."""
    report = Report()
    before = store.require_tunnel(root, name)
    addresses = list(before.tunnel.addresses)
    if gateway is None:
        gateway = portconf.default_gateway(addresses)
    f = Forward(
        gateway=portconf.check_gateway(gateway),
        qbittorrent=portconf.check_url(qbittorrent, "--qbittorrent")
        if qbittorrent is not None else None,
        transmission=portconf.check_url(transmission, "--transmission")
        if transmission is not None else None,
        command=portconf.check_command(command) if command is not None else None)
    for url, what in ((f.qbittorrent, "--qbittorrent"), (f.transmission, "--transmission")):
        if url:
            portconf.check_inside(url, what, [str(a.ip) for a in addresses])
    login = read_login(credentials) if credentials is not None else None
    if login and not (f.qbittorrent or f.transmission):
        raise WgnsError("--credentials is for --qbittorrent or --transmission; "
                        "give one of them")
    after = before.change(forward=Forward(f.method, f.gateway, f.qbittorrent,
                                          f.transmission, f.command, login))
    store.save(root, before, after)
    clients = [what for what, on in (("qBittorrent", f.qbittorrent),
                                     ("Transmission", f.transmission),
                                     ("--exec", f.command)) if on]
    report.say(f"port forwarding for tunnel {name}: NAT-PMP via {f.gateway}"
               + (f", keeping {' and '.join(clients)} in sync" if clients else ""))
    if sd is None:
        return report
    sd.reload()
    unit = forward_unit(name)
    if sd.active_state(tunnel_unit(name)) != "active":
        report.say(f"it starts with {tunnel_unit(name)}")
        return report
    state = sd.restart(unit)
    if state not in ("active", "activating"):
        raise SystemdError(f"{unit} did not start (state {state})",
                           hint=f"see 'journalctl -u {unit}'")
    report.say(f"started {unit}; the port appears in 'wgns status"
               + ("'" if name == "wg" else f" --name {name}'"))
    return report


@serialised
def disable(name: str, root: str, sd: Systemd | None) -> Report:
    report = Report()
    before = store.require_tunnel(root, name)
    if before.forward is None:
        raise WgnsError(f"port forwarding is not on for tunnel {name}")
    if sd is not None:
        unit = forward_unit(name)
        if sd.stop(unit) not in ("inactive", "failed"):
            raise SystemdError(f"{unit} did not stop", hint=f"see 'journalctl -u {unit}'")
    store.save(root, before, before.change(forward=None))
    if sd is not None:
        sd.reload()
        sd.reset_failed(forward_unit(name))
    report.say(f"port forwarding for tunnel {name} is off")
    return report


def format_text(st: dict[str, Any]) -> list[str]:
    if st["port"]:
        age = st["renewed_age"]
        lines = [f"  forwarded port: {st['port']} (TCP+UDP), renewed "
                 f"{age if age is not None else '?'} s ago via {st['gateway']}"
                 + (f", public address {st['external_address']}"
                    if st.get("external_address") else "")]
    else:
        lines = [f"  forwarded port: none yet (NAT-PMP via {st['gateway'] or '?'})"]
    if st["error"]:
        lines.append(f"    error: {st['error']}")
    if st.get("warning"):
        lines.append(f"    warning: {st['warning']}")
    for c in st.get("clients") or []:
        lines.append(f"    {c['client']}: " + ("in sync" if c["synced"] else
                                                c["error"] or "not told yet"))
    return lines

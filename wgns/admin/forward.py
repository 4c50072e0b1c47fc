"""`wgns port-forward`: port forwarding turned on (or changed) and off in
a tunnel's record, its unit and settings rendered from it, the unit
(re)started while the tunnel runs. The unit runs runtime/forwarder.py;
what it publishes is read by core/forward_state.py."""

from __future__ import annotations

import os
import stat
from dataclasses import replace
from typing import Any

from ..core import portconf
from ..core.errors import SystemdError, WgnsError
from ..core.paths import forward_unit, tunnel_unit
from ..core.record import Forward, Record
from ..core.safeio import read_text
from ..core.systemd import Systemd
from . import store
from .store import Report, serialised

MAX_LOGIN_BYTES = 4096
NAMES = {"qbittorrent": "qBittorrent", "transmission": "Transmission", "deluge": "Deluge",
         "rtorrent": "rTorrent"}


def read_login(path: str, password_only: bool = False) -> tuple[str, str]:
    """The --credentials file: 'username=' and 'password=' lines, in a file
    only its owner may read (as ssh wants of a key); Deluge's own login
    (PASSWORD_ONLY) may be a 'password=' line alone."""
    if not path:
        raise WgnsError("--credentials: give the path of a file")
    try:
        st = os.stat(path)
    except OSError as e:
        raise portconf.login_path_error("--credentials", path, e) from None
    if stat.S_ISREG(st.st_mode) and st.st_mode & 0o077:
        raise WgnsError(f"--credentials {path} may be read by others "
                        f"(mode {stat.S_IMODE(st.st_mode):04o})", hint=f"chmod 600 {path}")
    return portconf.parse_login(read_text(path, MAX_LOGIN_BYTES), f"--credentials {path}",
                                password_only)


def split_credentials(given: list[str]) -> tuple[str | None, dict[str, str]]:
    """--credentials FILE (every client's login) and --credentials
    CLIENT=FILE (that client's own), each at most once. A value is
    CLIENT=FILE only when it starts with a client's name and '=': a file
    named so is given as ./NAME."""
    common: str | None = None
    own: dict[str, str] = {}
    for value in given:
        client, sep, path = value.partition("=")
        if sep and client.strip().lower() in ("username", "password", "user", "pass"):
            raise WgnsError("--credentials: a login line was given where a file goes "
                            "(not shown)", hint="put username= and password= lines in a "
                            "0600 file and give its path")
        if sep and client in portconf.CLIENTS:
            if client in own:
                raise WgnsError(f"--credentials {client}=: given twice")
            if not path:
                raise WgnsError(f"--credentials {client}=: give the path of a file")
            own[client] = path
        elif common is not None:
            raise WgnsError("--credentials FILE: given twice; one login serves every "
                            "client", hint="give a client its own: --credentials "
                            "CLIENT=FILE (" + ", ".join(portconf.CLIENTS) + ")")
        else:
            common = value
    return common, own


def logins(f: Forward, given: list[str]) -> Forward:
    """F with the logins of --credentials, each read and checked."""
    common, own = split_credentials(given)
    urls = dict(f.clients())
    # rTorrent over SCGI takes no login (SCGI has none: its socket is the guard).
    takers = [c for c, url in urls.items() if not url.startswith("scgi:")]
    for client in own:
        if client not in urls:
            raise WgnsError(f"--credentials {client}=: give --{client} URL too")
        if client not in takers:
            raise WgnsError(f"--credentials {client}=: rTorrent over SCGI takes no login",
                            hint="leave it out, or give rTorrent's HTTP URL")
    if common is not None and not [c for c in takers if c not in own]:
        raise WgnsError("--credentials is for a client that takes a login ("
                        + ", ".join(f"--{c}" for c in portconf.CLIENTS if c != "rtorrent")
                        + ", --rtorrent over HTTP); give one of them")
    return replace(f, login=read_login(common) if common is not None else None,
                   logins=tuple((c, read_login(own[c], c == "deluge"))
                                for c in portconf.CLIENTS if c in own))


def declared(before: Record, gateway: str | None, static: int | None,
             urls: dict[str, str | None], command: str | None,
             credentials: list[str]) -> Forward:
    """The Forward the options declare, every value checked (nothing written)."""
    addresses = list(before.tunnel.addresses)
    if static is not None and gateway is not None:
        raise WgnsError("--static and --gateway: a reserved port needs no gateway; give one "
                        "of them")
    pia = before.provider is not None and static is None
    if pia and gateway is not None:
        raise WgnsError("--gateway: a tunnel made through PIA forwards by PIA's API, at "
                        "the server's own gateway; leave --gateway out")
    if pia:
        assert before.provider is not None
        gateway = before.provider.gateway
    elif static is None and gateway is None:
        gateway = portconf.default_gateway(addresses)
    checked = {c: portconf.check_url(url, f"--{c}", scgi=c == "rtorrent")
               for c, url in urls.items() if url is not None}
    for client, url in checked.items():
        portconf.check_inside(url, f"--{client}", [str(a.ip) for a in addresses])
    f = Forward(method="static" if static is not None else "pia" if pia else "natpmp",
                gateway=portconf.check_gateway(gateway) if gateway is not None else None,
                port=portconf.check_static(static) if static is not None else None,
                command=portconf.check_command(command) if command is not None else None,
                qbittorrent=checked.get("qbittorrent"), transmission=checked.get("transmission"),
                deluge=checked.get("deluge"), rtorrent=checked.get("rtorrent"))
    return logins(f, credentials)


@serialised
def enable(name: str, root: str, sd: Systemd | None, gateway: str | None,
           urls: dict[str, str | None], command: str | None, credentials: list[str],
           static: int | None = None) -> Report:
    """Validate everything, then write; the unit (re)starts only when the
    tunnel runs. Running it again replaces the settings. URLS: the URL of
    each client (portconf.CLIENTS) given."""
    report = Report()
    before = store.require_tunnel(root, name)
    f = declared(before, gateway, static, urls, command, credentials)
    store.save(root, before, before.change(forward=f))
    clients = [NAMES[c] for c, _ in f.clients()] + (["--exec"] if f.command else [])
    source = (f"static port {f.port} (reserved at the provider)" if f.method == "static"
              else f"PIA's port forwarding via {f.gateway}" if f.method == "pia"
              else f"NAT-PMP via {f.gateway}")
    listed = (", ".join(clients[:-1]) + " and " + clients[-1]) if len(clients) > 1 else \
        "".join(clients)
    report.say(f"port forwarding for tunnel {name}: {source}"
               + (f", keeping {listed} in sync" if clients else ""))
    if f.rtorrent:
        report.warnings.append("rTorrent listens on a new port only from its next start: "
                               "see docs/port-forwarding.md (rTorrent)")
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
    static = st.get("method") == "static"
    if st["port"] and static:
        lines = [f"  forwarded port: {st['port']} (static: reserved at the provider, "
                 "no gateway protocol)"]
    elif st["port"]:
        age = st["renewed_age"]
        lines = [f"  forwarded port: {st['port']} (TCP+UDP), "
                 + ("bound " if st.get("method") == "pia" else "renewed ")
                 + f"{age if age is not None else '?'} s ago via {st['gateway']}"
                 + (f", public address {st['external_address']}"
                    if st.get("external_address") else "")]
    else:
        how = "PIA" if st.get("method") == "pia" else "NAT-PMP"
        lines = ["  forwarded port: none yet (" + ("static port" if static else
                                                 f"{how} via {st['gateway'] or '?'}") + ")"]
    if st["error"]:
        lines.append(f"    error: {st['error']}")
    if st.get("warning"):
        lines.append(f"    warning: {st['warning']}")
    for c in st.get("clients") or []:
        if c["synced"] and c.get("restart"):
            lines.append(f"    {c['client']}: port set to {st['port']}; it listens there "
                         "from its next start (restart it)")
        else:
            lines.append(f"    {c['client']}: " + ("in sync" if c["synced"] else
                                                    c["error"] or "not told yet"))
    return lines

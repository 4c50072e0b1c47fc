"""`wgns port-forward`: turn NAT-PMP port forwarding on (or change it) and
off for a tunnel, and read back what its unit publishes for `status` and
`check`. CLI side; the unit runs forwarder.py."""

from __future__ import annotations

import ipaddress
import json
import os
import stat
import time
from pathlib import Path
from typing import Any

from ..core import portconf
from ..core.config import parse_wgquick
from ..core.errors import SystemdError, WgnsError
from ..core.portconf import Settings
from ..core.safeio import read_text
from ..core.systemd import Systemd
from ..render.units import (
    UNIT_DIR,
    conf_path,
    forward_conf_path,
    forward_login_path,
    forward_unit,
    helper_path,
    in_private_tmp,
    render_forward,
    tunnel_unit,
)
from .ops import Report, require_tunnel, serialised
from .writer import read_owned, remove_owned, under, write_plan

RUN_DIR = "/run/wgns"
MAX_LOGIN_BYTES = 4096


def readable_by_all(path: str) -> bool:
    """Whether an unprivileged user can open PATH: every directory on the
    way searchable by others, the file readable by them; on the way to
    where PATH really is too (a venv's python linked to a build under
    /root)."""
    try:
        for p in {Path(path), Path(os.path.realpath(path))}:
            if not os.stat(p).st_mode & stat.S_IROTH:
                return False
            for d in p.parents:
                if not os.stat(d).st_mode & stat.S_IXOTH:
                    return False
    except OSError:
        return False
    return True


def dynamic_user_can_run(python: str) -> bool:
    """Whether a unit of this copy of wgns can run as a dynamic user: one
    can read it, and it is not where the dynamic user's own /tmp and
    /var/tmp hide it."""
    return (readable_by_all(python) and readable_by_all(helper_path())
            and not in_private_tmp(python, helper_path()))


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


def _paths(name: str) -> list[str]:
    unit = forward_unit(name)
    return [forward_conf_path(name), forward_login_path(name), f"{UNIT_DIR}/{unit}",
            f"{UNIT_DIR}/{tunnel_unit(name)}.wants/{unit}"]


def settings_of(root: str, name: str) -> Settings | None:
    text = read_owned(root, forward_conf_path(name))
    return portconf.parse(text, forward_conf_path(name)) if text else None


@serialised
def enable(name: str, root: str, sd: Systemd | None, python: str, gateway: str | None,
           qbittorrent: str | None, transmission: str | None, command: str | None,
           credentials: str | None) -> Report:
    """Validate everything, then write; the unit (re)starts only when the
    tunnel runs. Running it again replaces the settings."""
    report = Report()
    require_tunnel(root, name)
    addresses = list(parse_wgquick(read_owned(root, conf_path(name)) or "", conf_path(name),
                                   name).addresses)
    if gateway is None:
        gateway = portconf.default_gateway(addresses)
    settings = Settings(
        gateway=portconf.check_gateway(gateway),
        qbittorrent=portconf.check_url(qbittorrent, "--qbittorrent")
        if qbittorrent is not None else None,
        transmission=portconf.check_url(transmission, "--transmission")
        if transmission is not None else None,
        command=portconf.check_command(command) if command is not None else None)
    for url, what in ((settings.qbittorrent, "--qbittorrent"),
                      (settings.transmission, "--transmission")):
        if url:
            portconf.check_inside(url, what, [str(a.ip) for a in addresses])
    login = read_login(credentials) if credentials is not None else None
    if login and not (settings.qbittorrent or settings.transmission):
        raise WgnsError("--credentials is for --qbittorrent or --transmission; "
                        "give one of them")
    plan = render_forward(name, settings, login, python, dynamic_user_can_run(python))
    write_plan(root, plan)
    if not login:
        remove_owned(root, [forward_login_path(name)])
    clients = [what for what, on in (("qBittorrent", settings.qbittorrent),
                                     ("Transmission", settings.transmission),
                                     ("--exec", settings.command)) if on]
    report.say(f"port forwarding for tunnel {name}: NAT-PMP via {settings.gateway}"
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
    require_tunnel(root, name)
    has_unit = read_owned(root, f"{UNIT_DIR}/{forward_unit(name)}") is not None
    # Whatever of it is left, read or not (a forward.conf that no longer
    # parses must not keep it from being turned off).
    left = [p for p in _paths(name)[:2] if read_owned(root, p) is not None]
    if not has_unit and not left and not under(root, _paths(name)[3]).is_symlink():
        raise WgnsError(f"port forwarding is not on for tunnel {name}")
    under(root, f"{UNIT_DIR}/{tunnel_unit(name)}.wants/x")
    if sd is not None and has_unit:
        unit = forward_unit(name)
        if sd.stop(unit) not in ("inactive", "failed"):
            raise SystemdError(f"{unit} did not stop", hint=f"see 'journalctl -u {unit}'")
    remove_owned(root, _paths(name), prune=[f"{UNIT_DIR}/{tunnel_unit(name)}.wants"])
    if sd is not None:
        sd.reload()
        sd.reset_failed(forward_unit(name))
    report.say(f"port forwarding for tunnel {name} is off")
    return report


def state(name: str, sd: Systemd | None, root: str = "/") -> dict[str, Any] | None:
    """What status and check show: None when port forwarding is off."""
    try:
        settings = settings_of(root, name)
        problem = None
    except WgnsError as e:
        settings, problem = None, _text(str(e))
    if settings is None and problem is None:
        return None
    unit = forward_unit(name)
    out: dict[str, Any] = {"unit": unit, "state": sd.active_state(unit) if sd else "unknown",
                           "gateway": settings.gateway if settings else None, "port": None,
                           "renewed_age": None, "external_address": None, "error": problem,
                           "warning": None, "clients": []}
    if out["state"] == "active" and problem is None:
        out.update(_published(name))
    elif problem is None:
        out["error"] = f"{unit} is {out['state']}"
    return out


def _text(value: Any) -> str | None:
    """A published string as one printable line, or None: the unit is not
    privileged, and it repeats what gateways and clients answered."""
    if not isinstance(value, str):
        return None
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in value[:300])


def _published(name: str) -> dict[str, Any]:
    """forward.json, its values checked one by one (never a traceback, a
    terminal escape or a followed link in what status prints)."""
    try:
        data = json.loads(read_text(f"{RUN_DIR}/{name}/forward.json", 65536, follow=False))
    except (WgnsError, ValueError, RecursionError):
        return {}
    if not isinstance(data, dict):
        return {}
    port, renewed, address = data.get("port"), data.get("renewed"), data.get("external_address")
    age = None
    # A time as JSON can be any integer (400 digits: float() overflows) or
    # NaN or infinity: only a plausible Unix time is a time.
    if isinstance(renewed, (int, float)) and not isinstance(renewed, bool) \
            and 0 <= renewed < 1e11:
        age = time.time() - float(renewed)
    try:
        address = str(ipaddress.IPv4Address(address))
    except ValueError:
        address = None
    clients = data.get("clients")
    clients = clients if isinstance(clients, list) else []
    return {"port": port if type(port) is int and 0 < port < 65536 else None,
            "renewed_age": max(0, int(age)) if age is not None and -3600 < age < 1e9 else None,
            "external_address": address, "error": _text(data.get("error")),
            "warning": _text(data.get("warning")),
            "clients": [{"client": _text(c.get("client")) or "client",
                         "synced": c.get("synced") is True, "error": _text(c.get("error"))}
                        for c in clients[:8] if isinstance(c, dict)]}


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

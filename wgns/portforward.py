"""`wgns port-forward`: turn NAT-PMP port forwarding on (or change it) and
off for a tunnel, and read back what its unit publishes for `status` and
`check`. CLI side; the unit runs forwarder.py."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from . import portconf
from .config import parse_wgquick
from .errors import ConfigError, SystemdError, WgnsError
from .install import read_owned, remove_owned, under, write_plan
from .ops import Report, require_tunnel, serialised
from .portconf import Settings
from .render import (
    UNIT_DIR,
    conf_path,
    forward_conf_path,
    forward_login_path,
    forward_unit,
    helper_path,
    render_forward,
    tunnel_unit,
)
from .safeio import read_text
from .systemd import Systemd

RUN_DIR = "/run/wgns"
MAX_LOGIN_BYTES = 4096


def readable_by_all(path: str) -> bool:
    """Whether an unprivileged user can open PATH: every directory on the
    way searchable by others, the file readable by them."""
    p = Path(path)
    try:
        if not os.stat(p).st_mode & stat.S_IROTH:
            return False
        for d in p.parents:
            if not os.stat(d).st_mode & stat.S_IXOTH:
                return False
    except OSError:
        return False
    return True


def read_login(path: str) -> tuple[str, str]:
    """The --credentials file: 'username=' and 'password=' lines, in a file
    only its owner may read (as ssh wants of a key)."""
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
    if gateway is None:
        text = read_owned(root, conf_path(name)) or ""
        gateway = portconf.default_gateway(
            list(parse_wgquick(text, conf_path(name), name).addresses))
    settings = Settings(
        gateway=portconf.check_gateway(gateway),
        qbittorrent=portconf.check_url(qbittorrent, "--qbittorrent") if qbittorrent else None,
        transmission=portconf.check_url(transmission, "--transmission")
        if transmission else None,
        command=portconf.check_command(command) if command is not None else None)
    login = read_login(credentials) if credentials else None
    if login and not (settings.qbittorrent or settings.transmission):
        raise WgnsError("--credentials is for --qbittorrent or --transmission; "
                        "give one of them")
    dynamic = readable_by_all(python) and readable_by_all(helper_path())
    plan = render_forward(name, settings, login, python, dynamic)
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
    if not has_unit and settings_of(root, name) is None:
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
    settings = settings_of(root, name)
    if settings is None:
        return None
    unit = forward_unit(name)
    out: dict[str, Any] = {"unit": unit, "state": sd.active_state(unit) if sd else "unknown",
                           "gateway": settings.gateway, "port": None, "renewed_age": None,
                           "external_address": None, "error": None, "clients": []}
    try:
        published = json.loads(read_text(f"{RUN_DIR}/{name}/forward.json", 65536))
    except (ConfigError, ValueError):  # not published (yet, or any more), or garbage
        published = None
    if isinstance(published, dict) and out["state"] == "active":
        import time
        renewed = published.get("renewed")
        out.update({k: published.get(k) for k in ("port", "external_address", "error",
                                                   "clients", "warning")})
        out["renewed_age"] = int(time.time() - renewed) if isinstance(
            renewed, (int, float)) else None
    elif out["state"] != "active":
        out["error"] = f"{unit} is {out['state']}"
    return out


def format_text(st: dict[str, Any]) -> list[str]:
    if st["port"]:
        age = st["renewed_age"]
        lines = [f"  forwarded port: {st['port']} (TCP+UDP), renewed "
                 f"{age if age is not None else '?'} s ago via {st['gateway']}"
                 + (f", public address {st['external_address']}"
                    if st.get("external_address") else "")]
    else:
        lines = [f"  forwarded port: none yet (NAT-PMP via {st['gateway']})"]
    if st["error"]:
        lines.append(f"    error: {st['error']}")
    if st.get("warning"):
        lines.append(f"    warning: {st['warning']}")
    for c in st.get("clients") or []:
        lines.append(f"    {c['client']}: " + ("in sync" if c["synced"] else
                                                c["error"] or "not told yet"))
    return lines

"""The port forwarding unit and its settings, from the record. Pure.

The settings and the client's login reach the unit as credentials
(LoadCredential=): files only root may read, never the unit's text."""

from __future__ import annotations

from .. import __version__
from ..core import portconf
from ..core.names import setting
from ..core.paths import (
    MARKER,
    UNIT_DIR,
    forward_conf_path,
    forward_login_path,
    forward_unit,
    tunnel_unit,
)
from ..core.plan import File, Link, Plan
from ..core.portconf import Settings
from ..core.record import Forward, Record
from .units import copy_values, secret_paths, template, user_setting


def settings(forward: Forward) -> Settings:
    assert forward.gateway is not None
    return Settings(gateway=forward.gateway, qbittorrent=forward.qbittorrent,
                    transmission=forward.transmission, command=forward.command)


def forward(record: Record) -> Plan:
    """The settings (0600), the login (0600, when given) and the unit that
    keeps the mapping, wanted by the tunnel; a dynamic user when one can
    read this copy of wgns, else root without any capability."""
    f = record.forward
    if f is None:
        return {}
    name, s = record.name, settings(f)
    header = f"{MARKER} {__version__}: port forwarding of tunnel {name}."
    unit = forward_unit(name)
    values = {**copy_values(record), "gateway": s.gateway, "user": user_setting(record),
              "hosts": " ".join(setting(h, "address") for h in s.hosts()),
              "secret_paths": secret_paths(),
              "login": (f"LoadCredential=login:{forward_login_path(name)}" if f.login else
                        "# No login: the clients take the API calls without one.")}
    plan: Plan = {
        forward_conf_path(name): File(portconf.render(
            s, header + " Do not edit; wgns port-forward changes it."), 0o600),
        f"{UNIT_DIR}/{unit}": File(template("forward.service").substitute(values), 0o644),
        f"{UNIT_DIR}/{tunnel_unit(name)}.wants/{unit}": Link(f"{UNIT_DIR}/{unit}"),
    }
    if f.login:
        plan[forward_login_path(name)] = File(
            portconf.render_login(f.login, header + " A login: root only (0600)."), 0o600)
    return plan

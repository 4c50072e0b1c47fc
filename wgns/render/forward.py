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
    login_credential,
    pia_account_path,
    pia_ca_path,
    tunnel_unit,
)
from ..core.plan import File, Link, Plan
from ..core.record import Forward, Record
from ..core.tunnel_files import forward_conf, forward_settings
from .units import copy_values, secret_paths, template, user_setting


def how(forward: Forward) -> str:
    """Where the port comes from, as the unit's description says it."""
    if forward.method == "static":
        return f"static port {forward.port}"
    if forward.method == "pia":
        return "PIA's method at its server's gateway"   # which one: forward.conf
    return f"NAT-PMP via {forward.gateway}"


# PIA's token comes from its web API by name, through the tunnel: its
# addresses are not known when the unit is written (the namespace's only way
# out is the tunnel all the same). Neither is named its gateway: a new
# registration (runtime/rereg.py) may move the tunnel to another server of
# the region, and rewrites forward.conf alone, never the unit.
PIA_HOSTS = " 0.0.0.0/0"


def pia_lines(name: str) -> str:
    """PIA's account and authority as credentials, and the state directory
    that keeps the signed port across restarts and reboots."""
    return (f"# PIA: its account and authority, and the signed port kept across restarts.\n"
            f"LoadCredential=pia-account:{pia_account_path(name)}\n"
            f"LoadCredential=pia-ca:{pia_ca_path(name)}\n"
            f"StateDirectory=wgns/{name}\nStateDirectoryMode=0700")


def logins(forward: Forward) -> list[tuple[str | None, tuple[str, str]]]:
    """(client or None for all, login) of each login file the unit gets."""
    out: list[tuple[str | None, tuple[str, str]]] = []
    if forward.login:
        out.append((None, forward.login))
    return out + [(client, login) for client, login in forward.logins]


def forward(record: Record) -> Plan:
    """The settings (0600), the logins (0600, when given: the one for all
    clients, forward.login, and a client's own, forward-CLIENT.login) and
    the unit that keeps the port, wanted by the tunnel; a dynamic user when
    one can read this copy of wgns, else root without any capability."""
    f = record.forward
    if f is None:
        return {}
    name, s = record.name, forward_settings(f, record.provider)
    header = f"{MARKER} {__version__}: port forwarding of tunnel {name}."
    unit = forward_unit(name)
    given = logins(f)
    values = {**copy_values(record), "how": how(f), "user": user_setting(record),
              "hosts": " ".join(setting(h, "address") for h in s.hosts()
                                if not (s.pia and h == s.gateway)) + (PIA_HOSTS if s.pia else ""),
              "secret_paths": secret_paths(),
              "login": "\n".join(f"LoadCredential={login_credential(client)}:"
                                  f"{forward_login_path(name, client)}" for client, _ in given)
              or "# No login: the clients take the API calls without one."}
    if s.pia:
        values["login"] += "\n" + pia_lines(name)
    plan: Plan = {
        forward_conf_path(name): File(forward_conf(record, f), 0o600),
        f"{UNIT_DIR}/{unit}": File(template("forward.service").substitute(values), 0o644),
        f"{UNIT_DIR}/{tunnel_unit(name)}.wants/{unit}": Link(f"{UNIT_DIR}/{unit}"),
    }
    for client, login in given:
        plan[forward_login_path(name, client)] = File(portconf.render_login(
            login, header + f" A login{' for ' + client if client else ''}: root only "
            "(0600)."), 0o600)
    return plan

"""The units and files of a tunnel itself, from its record: the tunnel
unit, the namespace and watcher units every tunnel shares, a confined
unit's drop-in, the watcher's leave to write a metrics directory, the DNS
and name service files of confined units. Pure: text in, text out.

Every file starts with paths.MARKER, which marks it as wgns's own: what it
declares is in the record, never read back from here.
"""

from __future__ import annotations

import re
from pathlib import Path
from string import Template

from .. import __version__
from ..core.copy import in_private_tmp, sandbox_values
from ..core.names import exec_word, setting
from ..core.paths import (
    CONF_DIR,
    MARKER,
    RESOLVER_SOCKETS,
    SECRET_PATHS,
    UNIT_DIR,
    WANTS,
    WATCH_UNIT,
    netns_path,
)
from ..core.plan import File, Link, Plan
from ..core.record import Record


def template(name: str) -> Template:
    package = Path(__file__).resolve().parent.parent   # wgns/
    # installed: the package's wgns/units; in a checkout: the top-level units/
    for d in (package / "units", package.parent / "units"):
        if (d / name).is_file():
            return Template((d / name).read_text())
    raise FileNotFoundError(f"wgns unit template {name} is missing")


def copy_values(record: Record) -> dict[str, str]:
    """What every unit that runs this copy of wgns says of it."""
    return {"version": __version__, "name": record.name,
            "python": exec_word(record.python, "the interpreter's path", first=True),
            "helper": exec_word(record.helper, "the wgns package's path"),
            **sandbox_values(record.python, record.helper)}


def unit(name: str, values: dict[str, str], path: str | None = None) -> Plan:
    return {path or f"{UNIT_DIR}/{name}": File(template(name).substitute(values), 0o644)}


def nsswitch_conf(host_nsswitch: str | None, name: str) -> str:
    """The host's nsswitch.conf with hosts: answered by files and DNS only,
    so that no NSS module (resolve, mdns, ...) asks a resolver outside."""
    out = [f"{MARKER} {__version__}: nsswitch.conf for units confined to {name}."]
    has_hosts = False
    for line in (host_nsswitch or "passwd: files\ngroup: files\n").splitlines():
        if re.match(r"^\s*hosts\s*:", line):
            line, has_hosts = "hosts: files dns", True
        out.append(line)
    if not has_hosts:
        out.append("hosts: files dns")
    return "\n".join(out) + "\n"


def confinement(name: str) -> dict[str, str]:
    """The [Service] settings that confine a unit to tunnel NAME: its
    drop-in says them, and `wgns check` gives them to its probe."""
    return {"NetworkNamespacePath": netns_path(name),
            "BindReadOnlyPaths": f"{CONF_DIR}/{name}/resolv.conf:/etc/resolv.conf "
                                 f"{CONF_DIR}/{name}/nsswitch.conf:/etc/nsswitch.conf",
            "InaccessiblePaths": " ".join(f"-{p}" for p in RESOLVER_SOCKETS)}


def dropin(unit_name: str, name: str) -> str:
    c = confinement(name)
    values = {"version": __version__, "name": name, "unit": setting(unit_name, "unit"),
              "netns": c["NetworkNamespacePath"], "binds": c["BindReadOnlyPaths"],
              "inaccessible": c["InaccessiblePaths"]}
    return template("confine.conf").substitute(values)


def secret_paths() -> str:
    """InaccessiblePaths= of SECRET_PATHS ("-": a missing one is no error)."""
    return "InaccessiblePaths=" + " ".join(f"-{p}" for p in SECRET_PATHS)


def user_setting(record: Record) -> str:
    """Who a unit running this copy of wgns runs as: a dynamic user when
    one can see and read the copy, else root without capabilities (said
    why)."""
    if record.dynamic_user:
        return "DynamicUser=yes"
    why = ("its private /tmp and /var/tmp (DynamicUser= implies PrivateTmp=)\n"
           "# would hide this copy of wgns" if in_private_tmp(record.python, record.helper)
           else "it could not read this copy of wgns (its directory is private\n# to root)")
    return f"# Root without capabilities, not a dynamic user: {why}."


def metrics_word(value: str) -> str:
    """A path as one word of ReadWritePaths=: `%` escaped, in double quotes
    when it holds a space or a single quote (systemd reads a `'` outside
    quotes as the start of a quoted part: "Failed to extract first word",
    the setting ignored). Double quotes and backslashes are refused before."""
    text = setting(value, "--metrics-dir")
    return f'"{text}"' if " " in text or "'" in text else text


def metrics_dropin(name: str, directory: str) -> str:
    """The watcher's leave to write tunnel NAME's metrics directory."""
    return (f"{MARKER} {__version__}: {WATCH_UNIT} may write the metrics of tunnel {name} "
            f"in {setting(directory, '--metrics-dir')}. Do not edit; wgns install "
            "--metrics-dir changes it, wgns uninstall removes it.\n"
            "[Service]\n"
            f"ReadWritePaths={metrics_word('-' + directory)}\n")


def shared(record: Record) -> Plan:
    """The units every tunnel shares, running this record's copy of wgns:
    the namespace template and the one watcher, enabled."""
    values = copy_values(record)
    return {**unit("netns@.service", values), **unit(WATCH_UNIT, values),
            f"{WANTS}/{WATCH_UNIT}": Link(f"{UNIT_DIR}/{WATCH_UNIT}")}

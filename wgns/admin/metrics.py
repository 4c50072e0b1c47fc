"""Metrics in the Prometheus text format: what `wgns status --prometheus`
prints and what the watcher keeps in `DIR/wgns-NAME.prom`, one file per
tunnel, for node-exporter's textfile collector (Debian's
prometheus-node-exporter reads every *.prom in DEFAULT_DIR).

Shared by the CLI and the watcher: `render` is pure (status dicts in, text
out), `update` gathers one tunnel and writes its file atomically. Peers'
public keys are labels; no private or preshared key ever appears."""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import stat
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Tuple

from ..core.errors import ConfigError, WgnsError
from ..core.names import printable, setting
from ..render.units import MARKER, UNIT_DIR, File, Plan

if TYPE_CHECKING:
    from ..core.systemd import Systemd

DEFAULT_DIR = "/var/lib/prometheus/node-exporter"
RUN_DIR = "/run/wgns"
REASONS = ("link_gone", "netns_gone", "endpoint_moved", "backoff")
UNIT_STATES = ("active", "activating", "deactivating", "reloading", "inactive", "failed")
DROPIN_NAME = "90-wgns-metrics.conf"
# What the watcher's sandbox hides or replaces (ProtectHome=, PrivateTmp=,
# the API file systems): a metrics directory there would never be written.
HIDDEN = ("/home", "/root", "/run/user", "/tmp", "/var/tmp", "/proc", "/sys", "/dev")

G, C = "gauge", "counter"
Samples = Dict[str, List[Tuple[Dict[str, Any], float]]]
FAMILIES = {  # name: (type, help)
    "wgns_tunnel_up": (G, "1 when the tunnel's unit is active and its WireGuard link exists."),
    "wgns_tunnel_info": (G, "The tunnel's WireGuard implementation (none while down)."),
    "wgns_peer_latest_handshake_seconds": (G, "Unix time of the latest handshake (0: never)."),
    "wgns_peer_handshake_age_seconds": (G, "Seconds since the latest handshake (+Inf: never)."),
    "wgns_peer_receive_bytes_total": (C, "Bytes received from the peer."),
    "wgns_peer_transmit_bytes_total": (C, "Bytes sent to the peer."),
    "wgns_confined_units": (G, "Units confined to the tunnel, by systemd active state."),
    "wgns_exposed_ports": (G, "Ports of confined units exposed on the host (wgns expose)."),
    "wgns_reached_ports": (G, "Services outside that confined units reach (wgns reach)."),
    "wgns_forwarded_port": (G, "The port forwarded over NAT-PMP (0: none yet), when on."),
    "wgns_port_forward_renewed_age_seconds": (G, "Seconds since the port was last renewed."),
    "wgns_watcher_restarts_total": (C, "Restarts of the tunnel by the watcher, by reason."),
}


# -- the text format ---------------------------------------------------------

def _label(value: object) -> str:
    """A label value as the text format wants it: backslash, double quote
    and line feed escaped."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if value.is_integer() else repr(value)


def _count(value: object) -> int:
    """A byte count or a time from a status dict: a non-negative integer, or 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def restarts(name: str, run_dir: str | None = None) -> dict[str, int]:
    """The watcher's restarts of tunnel NAME by reason, from
    RUN_DIR/NAME.restarts (a JSON object {reason: count}). An absent,
    unreadable or malformed file, or a count that is not a whole number,
    counts as zero."""
    from ..core.safeio import read_text
    try:
        data = json.loads(read_text(f"{run_dir or RUN_DIR}/{name}.restarts", 65536,
                                    follow=False))
    except (ConfigError, ValueError):
        data = None
    data = data if isinstance(data, dict) else {}
    return {r: _count(data.get(r)) for r in REASONS}


def _samples(st: dict[str, Any], run_dir: str | None) -> Samples:
    """{family: [(labels without tunnel, value)]} for one tunnel."""
    out: Samples = {f: [] for f in FAMILIES}
    up = st.get("state") == "active" and st.get("interface") is not None
    out["wgns_tunnel_up"].append(({}, 1 if up else 0))
    out["wgns_tunnel_info"].append(({"implementation": st.get("implementation") or "none"}, 1))
    for p in st.get("peers") or []:
        peer = {"peer": p.get("public_key", "")}
        latest = _count(p.get("latest_handshake"))
        age = p.get("handshake_age")
        out["wgns_peer_latest_handshake_seconds"].append((peer, latest))
        out["wgns_peer_handshake_age_seconds"].append(
            (peer, _count(age) if latest and isinstance(age, int) else math.inf))
        out["wgns_peer_receive_bytes_total"].append((peer, _count(p.get("rx_bytes"))))
        out["wgns_peer_transmit_bytes_total"].append((peer, _count(p.get("tx_bytes"))))
    states = [str(u.get("state")) for u in st.get("confined") or []]
    for s in (*UNIT_STATES, *sorted(set(states) - set(UNIT_STATES))):
        out["wgns_confined_units"].append(({"state": s}, states.count(s)))
    out["wgns_exposed_ports"].append(({}, len(st.get("exposed") or [])))
    out["wgns_reached_ports"].append(({}, len(st.get("reached") or [])))
    forward = st.get("port_forward")
    if forward:
        out["wgns_forwarded_port"].append(({}, _count(forward.get("port"))))
        if isinstance(forward.get("renewed_age"), int):
            out["wgns_port_forward_renewed_age_seconds"].append(
                ({}, _count(forward["renewed_age"])))
    for reason, n in restarts(st["name"], run_dir).items():
        out["wgns_watcher_restarts_total"].append(({"reason": reason}, n))
    return out


def render(tunnels: list[dict[str, Any]], run_dir: str | None = None) -> str:
    """The Prometheus text exposition format (version 0.0.4) of the tunnels'
    status dicts (status.gather), each series labelled tunnel="NAME"; the
    watcher's restart counts come from RUN_DIR/NAME.restarts."""
    per_tunnel = [(st["name"], _samples(st, run_dir)) for st in tunnels]
    lines = []
    for family, (kind, text) in FAMILIES.items():
        rows = [(name, labels, value) for name, samples in per_tunnel
                for labels, value in samples[family]]
        if not rows:
            continue
        help_text = text.replace("\\", "\\\\").replace("\n", "\\n")  # the format's rule
        lines.append(f"# HELP {family} {help_text}")
        lines.append(f"# TYPE {family} {kind}")
        for name, labels, value in rows:
            pairs = ",".join(f'{k}="{_label(v)}"' for k, v in {"tunnel": name, **labels}.items())
            lines.append(f"{family}{{{pairs}}} {_number(value)}")
    return "".join(line + "\n" for line in lines)


# -- the file node-exporter reads --------------------------------------------

def prom_path(directory: str, name: str) -> str:
    return os.path.join(directory, f"wgns-{name}.prom")


def write_textfile(path: str, text: str) -> None:
    """Atomically: a temporary file in the same directory (a name the
    textfile collector skips), mode 0644, fsynced, renamed into place."""
    d = os.path.dirname(path) or "."
    tmp = os.path.join(d, f".{os.path.basename(path)}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600)
    try:
        os.fchmod(fd, 0o644)
        os.write(fd, text.encode())
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        os.unlink(tmp)
        raise
    dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _ours(path: str) -> bool | None:
    """True: a file wgns wrote; None: nothing there; False: anything else."""
    from .writer import is_ours
    return is_ours(Path(path)) if os.path.lexists(path) else None


def update(name: str, sd: Systemd | None, directory: str = DEFAULT_DIR) -> bool:
    """Gather tunnel NAME and write DIRECTORY/wgns-NAME.prom when DIRECTORY
    exists. Returns whether it wrote. A file of that name that wgns did not
    write is left alone (WgnsError); OSError when the directory refuses."""
    if not os.path.isdir(directory):
        return False
    path = prom_path(directory, name)
    if _ours(path) is False:
        raise WgnsError(f"{path} exists and was not written by wgns; not replacing it")
    from .. import __version__
    from .status import gather
    header = (f"{MARKER} {__version__}: metrics of tunnel {name}, kept current by "
              f"wgns-watch@{name}.service. Do not edit; wgns uninstall removes it.\n")
    write_textfile(path, header + render([gather(name, sd)]))
    return True


def remove(name: str, directory: str) -> bool:
    """Remove DIRECTORY/wgns-NAME.prom when wgns wrote it."""
    path = prom_path(directory, name)
    if not _ours(path):
        return False
    os.unlink(path)
    return True


# -- wgns install --metrics-dir ------------------------------------------------

def dropin_dir(name: str) -> str:
    return f"{UNIT_DIR}/wgns-watch@{name}.service.d"


def dropin_path(name: str) -> str:
    return f"{dropin_dir(name)}/{DROPIN_NAME}"


# Where systemd reads units and drop-ins, and where root finds its programs
# (the forwarder's --exec runs with this PATH).
SYSTEM_DIRS = ("/etc/systemd", "/run/systemd", "/usr/lib/systemd", "/lib/systemd",
               "/usr/local/lib/systemd", "/usr/local/sbin", "/usr/local/bin", "/usr/sbin",
               "/usr/bin", "/sbin", "/bin")


def protected(python: str) -> list[str]:
    """Directories the watcher must never be given to write, nor anything
    below them or above them: wgns's configuration (keys, logins), systemd's
    units and drop-ins (a unit written there runs as root), root's PATH,
    the keys of wg-quick, this copy of wgns and the interpreter with every
    directory it imports from (a module put there runs in every unit)."""
    from ..render.units import CONF_DIR, WG_QUICK_DIR, helper_path
    dirs = [CONF_DIR, WG_QUICK_DIR, *SYSTEM_DIRS, os.path.dirname(helper_path()),
            os.path.dirname(python),
            os.path.dirname(os.path.realpath(python))]
    dirs += [os.path.normpath(p) for p in sys.path if os.path.isabs(p) and os.path.isdir(p)]
    return sorted({d for d in dirs if d != "/"})


def check_dir(value: str, root: str, python: str) -> str:
    """--metrics-dir: an absolute, normalised path of an existing directory
    (below ROOT), reached without a symbolic link, that root without
    capabilities (the watcher) may write in (checked on the live system; an
    image's owners may be set later), outside what its sandbox hides,
    neither holding nor inside a protected directory (its configuration,
    systemd's units, the package, the interpreter PYTHON). A double quote
    or a backslash is refused: ReadWritePaths= cannot carry them exactly."""
    what = f"--metrics-dir {printable(value, 'path')}"
    setting(value, "--metrics-dir")  # no control characters
    if '"' in value or "\\" in value:
        raise WgnsError(f"{what} holds a double quote or a backslash; systemd cannot "
                        "take it back exactly", hint="pick a directory without them")
    if not value.startswith("/") or os.path.normpath(value) != value or value.startswith("//"):
        raise WgnsError(f"{what} must be an absolute path without '.', '..' or a "
                        "trailing '/'")
    if value == "/" or any(value == h or value.startswith(h + "/") for h in HIDDEN):
        raise WgnsError(f"{what}: the watcher's sandbox cannot write there",
                        hint=f"use a directory of its own, e.g. {DEFAULT_DIR}")
    for k in protected(python):
        if k == value or value.startswith(k + "/"):
            raise WgnsError(f"{what} is {'' if k == value else 'inside '}{k}, where wgns, "
                            "systemd or the interpreter keep their files: the watcher "
                            "would be allowed to write there",
                            hint=f"use a directory of its own, e.g. {DEFAULT_DIR}")
        if k.startswith(value + "/"):
            raise WgnsError(f"{what} holds {k}: the watcher would be allowed to "
                            f"write there", hint=f"use a directory of its own, e.g. {DEFAULT_DIR}")
    real_root = os.path.realpath(root)
    full = os.path.join(real_root, value.lstrip("/"))
    try:
        st = os.lstat(full)
    except OSError as e:
        raise WgnsError(f"{what}: {e.strerror}", hint="create it first") from None
    if stat.S_ISLNK(st.st_mode) or os.path.realpath(full) != full:
        raise WgnsError(f"{what} is or goes through a symbolic link",
                        hint="give the real path of the directory")
    if not stat.S_ISDIR(st.st_mode):
        raise WgnsError(f"{what} is not a directory")
    if root == "/" and (st.st_uid != 0 or not st.st_mode & 0o200):
        raise WgnsError(f"{what} is not owned and writable by root (the watcher runs "
                        "without capabilities to override file modes)",
                        hint=f"chown root {value}; chmod u+w {value}")
    return value


def _word(value: str) -> str:
    """A path as one word of ReadWritePaths= or Environment=: `%` escaped,
    in double quotes when it holds a space or a single quote (systemd reads
    a `'` outside quotes as the start of a quoted part: "Failed to extract
    first word", the setting ignored). Double quotes and backslashes are
    refused before this."""
    text = setting(value, "--metrics-dir")
    return f'"{text}"' if " " in text or "'" in text else text


def render_dropin(name: str, directory: str) -> Plan:
    """The watcher's drop-in: where its metrics go, and leave to write there."""
    from .. import __version__
    text = (f"{MARKER} {__version__}: where wgns-watch@{name}.service writes the metrics "
            f"of tunnel {name}. Do not edit; wgns install --metrics-dir changes it, "
            "wgns uninstall removes it.\n"
            "[Service]\n"
            f"ReadWritePaths={_word('-' + directory)}\n"
            f"Environment={_word('WGNS_METRICS_DIR=' + directory)}\n")
    return {dropin_path(name): File(text, 0o644)}


def configured_dir(root: str, name: str) -> str:
    """Where the watcher of tunnel NAME writes: its drop-in's directory, or DEFAULT_DIR."""
    from .writer import read_owned
    text = read_owned(root, dropin_path(name)) or ""
    m = re.search(r'^Environment="?WGNS_METRICS_DIR=(.*?)"?$', text, flags=re.M)
    return m.group(1).replace("%%", "%") if m else DEFAULT_DIR


def moved(name: str, before: str, after: str, sd: Systemd | None) -> str:
    """After an install that set --metrics-dir: on the live system, the
    tunnel's file in the directory used before goes, and where it is now.
    A watcher still running with the old directory (an install with
    --no-start leaves it alone) would write that file again: it is
    restarted on the new drop-in first (systemd finishes the restart even
    if this command dies, and the watcher is never left stopped), and the
    old file removed once the old process is gone."""
    if sd is not None and before != after:
        watcher = f"wgns-watch@{name}.service"
        if sd.active_state(watcher) not in ("inactive", "failed"):
            sd.restart(watcher)
        remove(name, before)
    return f"the watcher writes the metrics of tunnel {name} to {prom_path(after, name)}"


def forget(root: str, name: str, live: bool) -> None:
    """For uninstall: the drop-in, and on the live system the tunnel's .prom
    files (in the configured directory and in DEFAULT_DIR)."""
    from .writer import remove_owned
    directories = {configured_dir(root, name), DEFAULT_DIR}
    remove_owned(root, [dropin_path(name)], prune=[dropin_dir(name)])
    for d in sorted(directories) if live else []:
        remove(name, d)

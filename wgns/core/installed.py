"""What is installed below a root: the tunnels (their wg-quick files in
/etc/wgns, marked as wgns's) and the record of each, read from disk:
record.json, or, for a tunnel an older wgns installed, what its files say
(legacy.py).
"""

from __future__ import annotations

from . import paths
from .config import MAX_CONF_BYTES, Tunnel, parse_wgquick
from .errors import ConfigError
from .files import is_ours, read_owned, under
from .legacy import adopt
from .names import TUNNEL_RE
from .record import MAX_RECORD_BYTES, Record, from_json


def installed(root: str) -> list[str]:
    """The tunnels wgns installed below ROOT: each has its wg-quick file,
    marked as wgns's, in /etc/wgns, under a name wgns gives a tunnel (a copy
    such as wg.old.conf or WG.conf is no tunnel: wgns never wrote it)."""
    d = under(root, paths.CONF_DIR)
    if not d.is_dir():
        return []
    return sorted(p.stem for p in d.glob("*.conf")
                  if TUNNEL_RE.fullmatch(p.stem) and is_ours(p))


def load_tunnel(root: str, name: str) -> Tunnel:
    """The tunnel itself, from /etc/wgns/NAME.conf (wgns's own, or an error)."""
    text = read_owned(root, paths.conf_path(name), MAX_CONF_BYTES)
    if text is None:
        raise ConfigError(paths.conf_path(name), f"no tunnel named {name!r} is installed",
                          hint="wgns install creates it")
    return parse_wgquick(text, paths.conf_path(name), name)


def stored(root: str, name: str) -> str | None:
    """record.json's text, when the tunnel has one (an older wgns wrote none)."""
    return read_owned(root, paths.record_path(name), MAX_RECORD_BYTES)


def load(root: str, name: str) -> Record:
    """The record of tunnel NAME: record.json with the tunnel's wg-quick
    file, or, for a tunnel an older wgns installed, what its files say
    (legacy.py; read, not written: the next command that writes keeps it)."""
    tunnel = load_tunnel(root, name)
    text = stored(root, name)
    if text is not None:
        return from_json(text, tunnel, paths.record_path(name))
    return adopt(root, tunnel)

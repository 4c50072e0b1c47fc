"""What is installed below a root: the tunnels (their wg-quick files in
/etc/wgns, marked as wgns's) and the record of each, read from disk:
record.json, or, for a tunnel an older wgns installed, what its files say
(legacy.py).
"""

from __future__ import annotations

import os

from . import paths
from .config import MAX_CONF_BYTES, Tunnel, parse_wgquick
from .errors import ConfigError
from .files import is_ours, read_owned, under
from .legacy import adopt
from .names import TUNNEL_RE
from .record import MAX_RECORD_BYTES, Record, from_json
from .safeio import read_text


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
    """record.json's text, when the tunnel has one (an older wgns wrote
    none). One that is there but cannot be read as wgns's (a link, too
    large, not UTF-8, not marked) is an error, never taken for none: that
    would adopt the tunnel again from its files and drop the record."""
    path = paths.record_path(name)
    dest = under(root, path)
    if not os.path.lexists(dest):
        return None
    try:
        text = read_text(str(dest), MAX_RECORD_BYTES, follow=False)
    except ConfigError as e:
        raise ConfigError(path, e.message[len(str(dest)) + 2:]) from None
    if not text.startswith(paths.MARKER):
        raise ConfigError(path, "was not written by wgns",
                          hint="move it away; wgns keeps what was declared for the tunnel there")
    return text


def load(root: str, name: str) -> Record:
    """The record of tunnel NAME: record.json with the tunnel's wg-quick
    file, or, for a tunnel an older wgns installed, what its files say
    (legacy.py; read, not written: the next command that writes keeps it)."""
    tunnel = load_tunnel(root, name)
    text = stored(root, name)
    if text is not None:
        return from_json(text, tunnel, paths.record_path(name))
    return adopt(root, tunnel)

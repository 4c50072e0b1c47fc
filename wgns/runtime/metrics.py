"""The watcher's metrics file for node-exporter's textfile collector:
DIR/wgns-NAME.prom, one per tunnel, where DIR is the tunnel's
--metrics-dir (from its record) or Debian's node-exporter directory when
that exists. Written atomically (core.files), a file of that name that
wgns did not write is left alone."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .. import __version__
from ..core.errors import WgnsError
from ..core.files import is_ours, write_atomic
from ..core.installed import installed, load
from ..core.metrics_text import render
from ..core.paths import MARKER, METRICS_DIR, WATCH_UNIT, prom_path
from ..core.record import Record
from ..core.safeio import dir_lock
from ..core.state import gather

LOCK_WAIT = 5.0   # seconds the watcher waits for a wgns command to finish


def directory(record: Record) -> str:
    return record.metrics_dir or METRICS_DIR


def text(record: Record, sd: Any) -> str:
    """The file's text: the tunnel gathered now (netlink, D-Bus)."""
    header = (f"{MARKER} {__version__}: metrics of tunnel {record.name}, kept current by "
              f"{WATCH_UNIT}. Do not edit; wgns uninstall removes it.\n")
    return header + render([gather(record, sd, deep=False)])


def write(record: Record, body: str) -> bool:
    """Write the text gathered for RECORD when its directory exists.
    Returns whether it wrote; OSError when the directory refuses."""
    d = directory(record)
    if not os.path.isdir(d):
        return False
    path = prom_path(d, record.name)
    if os.path.lexists(path) and not is_ours(Path(path)):
        raise WgnsError(f"{path} exists and was not written by wgns; not replacing it")
    write_atomic(path, body)
    return True


def write_current(record: Record, body: str) -> bool | None:
    """The watcher's write: under the writers' lock, and only while the
    tunnel is still installed with that directory. An uninstall (or a new
    --metrics-dir) that ran while the text was gathered has removed the
    file, and this write must not bring it back. None when the lock stayed
    busy (a wgns command runs)."""
    with dir_lock("/", timeout=LOCK_WAIT) as held:
        if not held:
            return None
        if record.name not in installed("/") or directory(
                load("/", record.name)) != directory(record):
            return False
        return write(record, body)


def update(record: Record, sd: Any) -> bool:
    """Gather the tunnel and write its file when its directory exists."""
    if not os.path.isdir(directory(record)):
        return False
    return write(record, text(record, sd))

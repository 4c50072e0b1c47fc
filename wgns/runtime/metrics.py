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
from ..core.metrics_text import render
from ..core.paths import MARKER, METRICS_DIR, WATCH_UNIT, prom_path
from ..core.record import Record
from ..core.state import gather


def directory(record: Record) -> str:
    return record.metrics_dir or METRICS_DIR


def update(record: Record, sd: Any) -> bool:
    """Gather the tunnel and write its file when its directory exists.
    Returns whether it wrote; OSError when the directory refuses."""
    d = directory(record)
    if not os.path.isdir(d):
        return False
    path = prom_path(d, record.name)
    if os.path.lexists(path) and not is_ours(Path(path)):
        raise WgnsError(f"{path} exists and was not written by wgns; not replacing it")
    header = (f"{MARKER} {__version__}: metrics of tunnel {record.name}, kept current by "
              f"{WATCH_UNIT}. Do not edit; wgns uninstall removes it.\n")
    write_atomic(path, header + render([gather(record, sd, deep=False)]))
    return True

"""/run/wgns/NAME.restore: the confined units that were running when the
watcher restarted tunnel NAME, for the tunnel's next successful start to
bring back. Runtime state, shared by the CLI (which forgets units on
unconfine and uninstall) and the helpers (which write and take it).

The file only ever names candidates: whoever starts a unit from it first
checks that systemd has the unit confined to that tunnel now.
"""

from __future__ import annotations

import contextlib
import math
import os

from .errors import ConfigError, WgnsError
from .files import write_atomic
from .names import check_service
from .paths import RUN_DIR as RESTORE_DIR


def path(name: str) -> str:
    return f"{RESTORE_DIR}/{name}.restore"


def write(name: str, units: list[str]) -> None:
    os.makedirs(RESTORE_DIR, mode=0o755, exist_ok=True)
    write_atomic(path(name), "".join(u + "\n" for u in units))


def read(name: str) -> list[str]:
    """The units listed, each a valid service name (others are dropped)."""
    from .safeio import read_text
    try:
        text = read_text(path(name), 1 << 20, follow=False)
    except ConfigError:
        return []
    units = []
    for line in text.splitlines():
        try:
            units.append(check_service(line.strip()))
        except WgnsError:
            continue
    return units


MAX_COUNT = 1 << 20   # a count above it is no count (the file was forged)


def read_count(name: str, suffix: str) -> tuple[int, float]:
    """A back-off's state, /run/wgns/NAME.SUFFIX: (tries in a row, Unix
    time of the last). A file that says anything else (a count not from 1
    to MAX_COUNT, a time that is not a finite number of seconds since 1970,
    more than a line) counts as none: one try, which writes it again."""
    try:
        with open(f"{RESTORE_DIR}/{name}.{suffix}") as f:
            text = f.read(65)
        count_text, last_text = text.split()
        count, last = int(count_text), float(last_text)
    except (OSError, ValueError):
        return 0, 0.0
    if len(text) > 64 or not 0 < count <= MAX_COUNT or not math.isfinite(last) or last < 0:
        return 0, 0.0
    return count, last


def write_count(name: str, suffix: str, count: int, when: float) -> None:
    """Set the back-off's state (COUNT 0: remove it)."""
    path = f"{RESTORE_DIR}/{name}.{suffix}"
    if count == 0:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return
    os.makedirs(RESTORE_DIR, mode=0o755, exist_ok=True)
    write_atomic(path, f"{count} {when}\n")


def backoff(count: int, first: float, most: float) -> float:
    """Seconds to wait after COUNT tries in a row: 0, FIRST, doubling, at most MOST."""
    return 0.0 if count <= 0 else min(first * 2 ** min(count - 1, 10), most)


def clear_all(name: str) -> None:
    """Every runtime file of tunnel NAME but its namespace's record (which
    netns@NAME removes when it stops): for uninstall. The watcher's counters
    (NAME.restarts) and its registration attempts (NAME.register) too: a
    tunnel installed later under the name starts from zero."""
    for suffix in ("restore", "backoff", "booted", "restarts", "register"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{RESTORE_DIR}/{name}.{suffix}")


def forget(name: str, units: list[str] | None = None) -> None:
    """Drop these units from the file (None: the whole file)."""
    if units is None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path(name))
        return
    left = [u for u in read(name) if u not in units]
    if left:
        write(name, left)
    else:
        forget(name)

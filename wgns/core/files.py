"""Files wgns owns: finding them below a root without following a link
out of it, telling its own (the marker on the first line) from anyone
else's, reading them, and the one atomic writer every file goes through
(a temporary name in the same directory, O_EXCL and O_NOFOLLOW, the mode
set before anything is written, fsync, rename, fsync of the directory).
The admin side's plan writer stages each file with it; the units' helpers
write their runtime files with write_atomic."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import stat
import threading
from pathlib import Path
from typing import Iterator

from .errors import ConfigError, ConflictError
from .paths import MARKER
from .plan import File, Link, Plan
from .safeio import read_text

TMP_TAG = ".wgns-tmp."  # in every temporary name: a killed run's leftovers
STOPS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def under(root: str, path: str) -> Path:
    """PATH below ROOT, refusing a symlinked directory on the way: wgns
    never follows a link out of the tree it manages."""
    dest = Path(root) / path.lstrip("/")
    d = Path(root)
    for part in Path(path.lstrip("/")).parts[:-1]:
        d = d / part
        try:
            st = os.lstat(d)
        except FileNotFoundError:
            break
        except OSError as e:
            raise ConflictError(f"{d}: {e.strerror}") from None
        if stat.S_ISLNK(st.st_mode):
            raise ConflictError(f"{d} is a symbolic link; refusing to follow it",
                                hint="wgns writes only into real directories")
        if not stat.S_ISDIR(st.st_mode):
            raise ConflictError(f"{d} is not a directory")
    return dest


def lookup(root: str, path: str) -> Path:
    """PATH below ROOT for a look only (is systemd's vendor unit there?),
    where links are the system's own (/lib -> usr/lib): never to write."""
    return Path(root) / path.lstrip("/")


def first_line(dest: Path) -> str | None:
    """The first line of a regular file, read without following a link and
    without blocking on a FIFO; None for anything else."""
    try:
        fd = os.open(dest, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return os.read(fd, 256).decode("utf-8", "replace").split("\n", 1)[0]
    finally:
        os.close(fd)


def is_ours(dest: Path, item: File | Link | None = None) -> bool:
    """A file wgns wrote (marker on its first line), or a link that points
    where wgns would point it."""
    if dest.is_symlink():
        return isinstance(item, Link) and os.readlink(dest) == item.target
    line = first_line(dest)
    return line is not None and line.startswith(MARKER)


def read_owned(root: str, path: str, limit: int = 1 << 20) -> str | None:
    """The text of a wgns file, or None when absent or not wgns's."""
    dest = under(root, path)
    if not is_ours(dest):
        return None
    try:
        return read_text(str(dest), limit, follow=False)
    except ConfigError:
        return None


def fsync_dir(d: Path | str) -> None:
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def stage(dest: Path, item: File | Link) -> str:
    """ITEM written in full to a new temporary name beside DEST (which it
    is then renamed to); a failure leaves nothing (it may hold a key)."""
    tmp = str(dest.parent / f".{dest.name[:200]}{TMP_TAG}{secrets.token_hex(4)}")
    if isinstance(item, Link):
        os.symlink(item.target, tmp)
        return tmp
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600)
    try:
        os.fchmod(fd, item.mode)
        data = item.text.encode()
        while data:
            data = data[os.write(fd, data):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    return tmp


def write_atomic(path: str | Path, text: str, mode: int = 0o644) -> None:
    """PATH holds TEXT, whole, or what it held before: never half of it."""
    dest = Path(path)
    tmp = stage(dest, File(text, mode))
    try:
        os.replace(tmp, dest)
    except BaseException:
        os.unlink(tmp)
        raise
    fsync_dir(dest.parent)


def write_all(root: str, plan: Plan, last: str = "") -> list[str]:
    """Every file of PLAN (wgns's own already, or new) below ROOT, or none:
    each staged whole first, then all renamed into place, LAST last (a
    process killed between two renames leaves it as it was: the file that
    decides whether the rest is done again). Returns the paths written."""
    dests = [(path, under(root, path)) for path in sorted(plan, key=lambda p: (p == last, p))]
    for path, dest in dests:
        if os.path.lexists(dest) and not is_ours(dest):
            raise ConflictError(f"{path} exists and was not written by wgns; nothing "
                                "was written")
    staged: list[tuple[str, Path]] = []
    try:
        for path, dest in dests:
            staged.append((stage(dest, plan[path]), dest))
    except BaseException:
        for tmp, _ in staged:
            os.unlink(tmp)
        raise
    with stops_held():
        for i, (tmp, dest) in enumerate(staged):
            try:
                os.replace(tmp, dest)
            except BaseException:   # none of the rest is left staged (one may hold a key)
                for left, _ in staged[i:]:
                    os.unlink(left)
                raise
    for d in {dest.parent for _, dest in staged}:
        fsync_dir(d)
    return [path for path, _ in dests]


@contextlib.contextmanager
def stops_held() -> Iterator[None]:
    """SIGTERM, SIGINT and SIGHUP held for a moment that must not be cut in
    two (write_all's renames), then delivered as they would have been. Only
    the main thread sets handlers; a signal whose handler is not Python's
    is left alone."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[int] = []
    old = {s: signal.signal(s, lambda n, _: got.append(n))
           for s in STOPS if signal.getsignal(s) is not None}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        for n in dict.fromkeys(got):
            os.kill(os.getpid(), n)

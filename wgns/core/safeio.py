"""Reading files that may be hostile: regular files only, never a FIFO or a
device (opened without blocking, checked with fstat before any read), and
never more than a size cap. Both sides (the CLI and the unit helpers) read
through here."""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import time
from typing import Iterator

from .errors import ConfigError


def read_bytes(path: str, limit: int, follow: bool = True) -> bytes:
    """The content of a regular file of at most `limit` bytes, or
    ConfigError naming the path and the problem in one line."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        if e.errno == 40 and not follow:  # ELOOP: a symlink
            raise ConfigError(path, "is a symbolic link; refusing to follow it") from None
        raise ConfigError(path, f"cannot read: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(path, "is not a regular file")
        if st.st_size > limit:
            raise ConfigError(path, f"is larger than {limit} bytes; refusing to read it")
        chunks = []
        size = 0
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                raise ConfigError(path, f"is larger than {limit} bytes; refusing to read it")
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as e:
        raise ConfigError(path, f"cannot read: {e.strerror}") from None
    finally:
        os.close(fd)


def read_text(path: str, limit: int, follow: bool = True, encoding: str = "utf-8") -> str:
    data = read_bytes(path, limit, follow)
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        raise ConfigError(path, f"is not {encoding.upper()} text") from None


@contextlib.contextmanager
def dir_lock(path: str, timeout: float | None = None) -> Iterator[bool]:
    """An flock on a directory (wgns's writers take it on the root they
    write below). Yields True when held; with a timeout, False when the
    lock stayed busy that long."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if timeout is None:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield True
            return
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    yield False
                    return
                time.sleep(0.1)
        yield True
    finally:
        os.close(fd)

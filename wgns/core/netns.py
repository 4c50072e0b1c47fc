"""Network namespaces, for both sides: where a tunnel's is, whether it is
live, and running a function inside it (a thread that joined it; the
caller's namespace is untouched). Plain syscalls through ctypes.
(What netns@.service runs to make one: runtime/netns_unit.py.)"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import sys
import threading
from typing import Callable, TypeVar

from .paths import NETNS_DIR

T = TypeVar("T")
CLONE_NEWNET = 0x40000000

_libc = ctypes.CDLL(None, use_errno=True)


def path(name: str) -> str:
    return f"{NETNS_DIR}/{name}"


def exists(name: str) -> bool:
    """True when /run/netns/NAME is a live namespace (not a stale file)."""
    p = path(name)
    try:
        return os.stat(p).st_ino != os.stat(NETNS_DIR).st_ino and _is_nsfs(p)
    except OSError:
        return False


def _is_nsfs(p: str) -> bool:
    NSFS_MAGIC = 0x6E736673
    buf = ctypes.create_string_buffer(128)  # struct statfs
    if _libc.statfs(p.encode(), buf) != 0:
        return False
    return int.from_bytes(buf.raw[:8], sys.byteorder) == NSFS_MAGIC


def run_in(name: str, fn: Callable[[], T]) -> T:
    """Run fn in a thread that has joined namespace NAME; sockets it opens
    live there. The calling thread's namespace is untouched."""
    result: dict[str, object] = {}

    def target() -> None:
        try:
            fd = os.open(path(name), os.O_RDONLY)
        except FileNotFoundError:
            result["error"] = FileNotFoundError(
                errno.ENOENT, f"network namespace {name} does not exist", path(name))
            return
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                result["error"] = OSError(err, os.strerror(err), path(name))
                return
        finally:
            os.close(fd)
        try:
            result["value"] = fn()
        except BaseException as e:  # handed to the caller's thread as is
            result["error"] = e

    t = threading.Thread(target=target, name=f"netns-{name}")
    t.start()
    t.join()
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    return result["value"]  # type: ignore[return-value]


def has_link(name: str) -> bool:
    """A link named NAME exists in the calling thread's namespace (by its
    name alone: no netlink library needed)."""
    try:
        socket.if_nametoindex(name)
    except OSError:
        return False
    return True

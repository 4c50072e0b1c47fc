"""What netns@.service runs (`helper.py netns up|down NAME`).

`up NAME` runs inside the unit's own network namespace (PrivateNetwork=yes)
and binds it to /run/netns/NAME as `ip netns attach` does, holding an flock
on /run/netns as iproute2 does, so that units starting at once at boot do
not stack mounts. `down` unbinds it. Both are idempotent.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
from typing import Iterator

from ..core.netns import exists, path
from ..core.paths import NETNS_DIR, RUN_DIR

_libc = ctypes.CDLL(None, use_errno=True)
MNT_DETACH = 2
MS_BIND = 4096
MS_REC = 16384
MS_SHARED = 1 << 20


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    os.makedirs(NETNS_DIR, mode=0o755, exist_ok=True)
    fd = os.open(NETNS_DIR, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _unbind(p: str) -> None:
    if _libc.umount2(p.encode(), MNT_DETACH) != 0:
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOENT):
            raise OSError(err, os.strerror(err), p)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(p)


def _mount(src: str, target: str, flags: int) -> None:
    fstype = b"none"
    if _libc.mount(src.encode(), target.encode(), fstype, flags, None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), target)


def _record(name: str) -> str:
    return f"{RUN_DIR}/{name}.netns"


def _identity(p: str) -> str:
    st = os.stat(p)
    return f"{st.st_dev}:{st.st_ino}"


def _made_by_us(name: str) -> bool:
    """/run/netns/NAME is the namespace this unit bound (its identity is
    recorded at bind time), not one a user made with `ip netns add`."""
    try:
        with open(_record(name)) as f:
            return f.read().strip() == _identity(path(name))
    except OSError:
        return False


def up(name: str) -> None:
    """Bind this process's network namespace to /run/netns/NAME, as
    `ip netns attach` does: the run directory becomes a shared mount point
    (so the bind propagates to every mount namespace), then the entry is a
    bind mount of /proc/self/ns/net. Plain syscalls: importing pyroute2 for
    these three would double the namespace unit's start-up time."""
    with _locked():
        p = path(name)
        if exists(name) and not _made_by_us(name):
            raise OSError(errno.EEXIST, "a network namespace of that name exists and "
                          "wgns did not make it (remove it with 'ip netns delete "
                          f"{name}', or install the tunnel under another --name)", p)
        if os.path.lexists(p):
            _unbind(p)  # our own, left by a stop that never ran, or a stale file
        try:
            _mount("", NETNS_DIR, MS_SHARED | MS_REC)
        except OSError as e:
            if e.errno != errno.EINVAL:  # EINVAL: not a mount point yet
                raise
            _mount(NETNS_DIR, NETNS_DIR, MS_BIND | MS_REC)
            _mount("", NETNS_DIR, MS_SHARED | MS_REC)
        os.close(os.open(p, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0))
        try:
            _mount("/proc/self/ns/net", p, MS_BIND)
        except OSError:
            os.unlink(p)
            raise
        os.makedirs(os.path.dirname(_record(name)), mode=0o755, exist_ok=True)
        with open(_record(name), "w") as f:
            f.write(_identity(p) + "\n")


def down(name: str) -> None:
    """Unbind the namespace this unit made; one that replaced it (a user's
    `ip netns add NAME` after deleting ours) is left alone."""
    with _locked():
        p = path(name)
        if os.path.lexists(p) and (_made_by_us(name) or not exists(name)):
            _unbind(p)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(_record(name))



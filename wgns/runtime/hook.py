"""The --exec command: the user's own way of following the forwarded port,
run by the port forwarding unit inside the tunnel's namespace, with the
port in WGNS_PORT and the tunnel in WGNS_TUNNEL."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import time
from typing import Callable

from ..core.text import one_line
from .clients import ClientError

EXEC_TIMEOUT = 60
OUTPUT_KEPT = 8192     # of an --exec command's output, for the last 5 lines


class Command:
    """The user's command, through /bin/sh, with the port in WGNS_PORT and
    the tunnel in WGNS_TUNNEL. Called when the port is new; it has no port
    of its own to compare with."""

    what = "--exec command"

    def __init__(self, command: str, tunnel: str,
                 log: Callable[[str], None] = lambda s: print(s, flush=True)) -> None:
        self.command, self.tunnel, self.log = command, tunnel, log

    def port(self) -> int | None:
        return None

    def set_port(self, port: int) -> None:
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               "WGNS_PORT": str(port), "WGNS_TUNNEL": self.tunnel, "LANG": "C.UTF-8"}
        try:
            p = subprocess.Popen(["/bin/sh", "-c", self.command], env=env, cwd="/",
                                 stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as e:
            raise ClientError(f"the --exec command could not start ({e.strerror})") from None
        try:
            with p, p.stdout:  # type: ignore[union-attr]
                try:
                    tail = _wait(p, time.monotonic() + EXEC_TIMEOUT)
                except BaseException:   # past its time, or the unit stops: all it started ends
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(p.pid, signal.SIGKILL)
                    raise
        except TimeoutError:
            raise ClientError(f"the --exec command ran longer than {EXEC_TIMEOUT} s") from None
        for line in tail.decode(errors="replace").splitlines()[-5:]:
            self.log(f"--exec: {one_line(line[:200])}")
        if p.returncode != 0:
            raise ClientError(f"the --exec command exited with status {p.returncode}")


def _wait(p: subprocess.Popen[bytes], deadline: float) -> bytes:
    """The last bytes the command printed, once it exited (not once the pipe
    closes: what it started in the background may hold that open), or
    TimeoutError past the deadline."""
    fd, tail = p.stdout.fileno(), b""  # type: ignore[union-attr]
    while p.poll() is None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        if fd < 0:                 # output closed: wait for the exit alone
            try:
                p.wait(left)
            except subprocess.TimeoutExpired:
                pass
        elif select.select([fd], [], [], min(left, 1.0))[0]:
            chunk = os.read(fd, 65536)
            fd = fd if chunk else -1
            tail = (tail + chunk)[-OUTPUT_KEPT:]
    for _ in range(16):           # what it printed before it exited
        if fd < 0 or not select.select([fd], [], [], 0)[0]:
            break
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        tail = (tail + chunk)[-OUTPUT_KEPT:]
    return tail

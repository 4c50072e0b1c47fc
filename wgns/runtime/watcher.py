"""What `wgns-watch.service` runs: one long-lived process for every
tunnel (a Watcher each, gathered by a Fleet) that sleeps until something
happens, then runs heal.look() for that tunnel (one look, the decisions of
which live there).

It wakes up for:
- a link event inside a tunnel's namespace (an rtnetlink socket made
  there and subscribed to link changes; only a wake-up signal, never
  parsed). The tunnel's link going away, by `ip link del` or because
  wireguard-go died and took its TUN device along, is noticed at once
  instead of at the next poll;
- a namespace changing identity or disappearing (`ip netns delete`, a
  tunnel restart), seen by a stat() of /run/netns/NAME once a second;
- a full look every 60 s (a hung wireguard-go, an endpoint whose name now
  resolves elsewhere, a stale handshake, the next step of a back-off);
- a tunnel installed or uninstalled (/etc/wgns changed: its records are
  listed again).

Between those it costs a stat() per tunnel a second. Every look prints
what it did to the journal, each line starting with the tunnel's name.
"""

from __future__ import annotations

import os
import select
import socket
import time
from typing import Callable

from ..core import netns
from ..core.text import one_line

PERIOD = 60.0          # a full look this often when nothing happens
FAULT_WAIT = 5.0       # a tunnel whose look failed is looked at again after this
STAT_EVERY = 1.0       # the namespace's identity is checked this often
SETTLE = 0.2           # events come in bursts (link down, address gone): wait them out
FOLLOW_UP = 3.0        # one more look this long after an event
METRICS_EVERY = 120.0  # the metrics file is rewritten this often, and after every change
RTMGRP_LINK = 1
NETLINK_ROUTE = 0


def identity(name: str) -> tuple[int, int] | None:
    try:
        st = os.stat(netns.path(name))
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def link_events(name: str) -> socket.socket | None:
    """A netlink socket inside the tunnel's namespace, subscribed to link
    changes. It holds the namespace while open: closed as soon as the
    namespace changes identity."""
    def make() -> socket.socket:
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK,
                          NETLINK_ROUTE)
        s.bind((0, RTMGRP_LINK))
        return s
    try:
        return netns.run_in(name, make)
    except OSError:
        return None


def drain(sock: socket.socket) -> int:
    n = 0
    while True:
        try:
            sock.recv(65536)
            n += 1
        except BlockingIOError:
            return n
        except OSError:   # ENOBUFS (a burst overflowed it): still a wake-up
            return n + 1


class Watcher:
    def __init__(self, name: str, look: Callable[[str, bool], tuple[list[str], bool | None]],
                 log: Callable[[str], None] = lambda s: print(s, flush=True),
                 clock: Callable[[], float] = time.monotonic,
                 after: Callable[[bool], None] = lambda urgent: None) -> None:
        self.name, self.look, self.log, self.clock = name, look, log, clock
        self.after = after            # after each look (the metrics); urgent: things moved
        self.follow_up = False
        self.sock: socket.socket | None = None
        self.ident: tuple[int, int] | None = None
        self.next_look = clock()      # look once at start (boot: missed units)
        # The boot check (confined units that missed their start) is asked
        # for until the tunnel was seen healthy after its namespace changed.
        self.boot_check = True

    def _follow_namespace(self) -> bool:
        """(Re)open the event socket when the namespace changed; True when
        it did (which deserves a look)."""
        ident = identity(self.name)
        if ident == self.ident and (self.sock is not None or ident is None):
            return False
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self.ident = ident
        self.boot_check = True
        if ident is not None:
            self.sock = link_events(self.name)
        return True

    def wait(self, timeout: float) -> bool:
        """Sleep up to TIMEOUT; True when a link event arrived."""
        if self.sock is None:
            time.sleep(timeout)
            return False
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if not ready:
            return False
        time.sleep(SETTLE)
        drain(self.sock)
        return True

    def once(self) -> None:
        """One turn of the loop: wait for a reason, then look."""
        now = self.clock()
        reason = self._follow_namespace()
        if not reason and now < self.next_look:
            reason = self.wait(min(STAT_EVERY, self.next_look - now))
        self.look_if_due(reason)

    def look_if_due(self, reason: bool) -> bool:
        """Look now when something happened (REASON) or the next look is due;
        True when it looked."""
        if not (reason or self.clock() >= self.next_look):
            return False
        lines, healthy = self.look(self.name, self.boot_check)
        for line in lines:
            self.log(line)
        if healthy:
            self.boot_check = False
        self.after(reason or self.follow_up)
        # A change comes in several steps (a tunnel starting moves its
        # link, then sets it up): one more look shortly after an event
        # sees where it ended. What a restart changes wakes it up by
        # itself; otherwise the next look is a period away.
        # A tunnel starting or stopping (retried after a failure at
        # boot) is looked at again soon too, until it settles.
        self.follow_up = reason
        moving = healthy is None
        self.next_look = self.clock() + (FOLLOW_UP if reason or moving else PERIOD)
        return True

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def run(self, ready: Callable[[], None] = lambda: None) -> None:
        self.once()   # the first look (at boot: confined units that missed their start)
        ready()
        while True:
            self.once()


class Fleet:
    """Every installed tunnel watched by one process: a Watcher each, their
    event sockets waited on together, the list of tunnels looked at again
    once a second (one directory listing). One interpreter for twenty
    tunnels instead of twenty."""

    def __init__(self, names: Callable[[], list[str]], make: Callable[[str], Watcher],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.names, self.make, self.clock = names, make, clock
        self.watchers: dict[str, Watcher] = {}

    def refresh(self) -> None:
        want = set(self.names())
        for name in [n for n in self.watchers if n not in want]:
            self.watchers.pop(name).close()
        for name in sorted(want - set(self.watchers)):
            self.watchers[name] = self.make(name)

    def once(self) -> None:
        self.refresh()
        reasons = {n: w._follow_namespace() for n, w in self.watchers.items()}
        now = self.clock()
        if not any(reasons.values()):
            due = min([w.next_look for w in self.watchers.values()], default=now + STAT_EVERY)
            socks = {w.sock: n for n, w in self.watchers.items() if w.sock is not None}
            if due > now:
                ready, _, _ = select.select(list(socks), [], [], min(STAT_EVERY, due - now))
                if ready:
                    time.sleep(SETTLE)
                for sock in ready:
                    drain(sock)
                    reasons[socks[sock]] = True
        looked = False
        for name, w in list(self.watchers.items()):
            try:
                looked = w.look_if_due(reasons.get(name, False)) or looked
            except Exception as e:   # one tunnel's fault never stops the watch of the others
                w.log(one_line(f"{name}: the look failed ({type(e).__name__}: {e}); "
                               f"again in {FAULT_WAIT:.0f} s"))
                w.next_look = self.clock() + FAULT_WAIT
        if looked:
            release_memory()

    def run(self, ready: Callable[[], None] = lambda: None) -> None:
        self.once()   # the first look of each (at boot: confined units that missed their start)
        ready()
        while True:
            self.once()



def release_memory() -> None:
    """Give the heap that looks and metrics freed back to the system (the
    watcher lives for ever: its resident size is what it costs)."""
    try:
        netns._libc.malloc_trim(0)
    except AttributeError:   # a C library without malloc_trim (musl)
        pass


def notify_ready() -> None:
    """sd_notify READY=1 (Type=notify): `systemctl start` of the watcher
    returns once its first look is done."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    if path.startswith("@"):
        path = "\0" + path[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
        s.connect(path)
        s.send(b"READY=1")


class Metrics:
    """The tunnel's Prometheus textfile (runtime/metrics.py), rewritten
    after every look that saw a change and otherwise every 2 minutes: a
    gather costs more CPU than a look. Its directory is the record's, read
    at each write (a new --metrics-dir needs no restart)."""

    def __init__(self, name: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.name, self.clock = name, clock
        self.last: float | None = None

    def __call__(self, urgent: bool) -> None:
        now = self.clock()
        if not urgent and self.last is not None and now - self.last < METRICS_EVERY:
            return
        from ..core.errors import WgnsError
        from ..core.installed import load
        from ..core.systemd import Systemd
        from . import metrics
        try:
            record = load("/", self.name)
            if not os.path.isdir(metrics.directory(record)):
                return
            self.last = now
            with Systemd() as sd:
                body = metrics.text(record, sd)
            if metrics.write_current(record, body) is None:
                self.last = None      # a wgns command ran: at the next look
        except (WgnsError, OSError) as e:
            print(f"{self.name}: metrics not written: {e}", flush=True)


def run(name: str | None = None) -> None:
    """One tunnel's watcher (`helper.py watch NAME`: the unit of an older
    wgns, still running until a command of this one replaces it), or one
    for every tunnel (`helper.py watch`: wgns-watch.service)."""
    from ..core.installed import installed
    from ..core.paths import CONF_DIR
    from .heal import look

    def make(n: str) -> Watcher:
        return Watcher(n, look, after=Metrics(n))

    seen: list = [None, []]

    def names() -> list[str]:   # listed again only when /etc/wgns changed
        try:
            mtime = os.stat(CONF_DIR).st_mtime_ns
        except OSError:
            mtime = None
        if mtime != seen[0]:
            seen[:] = [mtime, installed("/")]
        return list(seen[1])

    if name is not None:
        make(name).run(notify_ready)
    else:
        Fleet(names, make).run(notify_ready)

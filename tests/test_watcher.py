"""The watcher's loop on this machine's kernel: a real namespace, real link
events, a look counted instead of taken (heal.watch's decisions have their
own tests in test_heal.py). Needs root (namespaces); skipped otherwise."""

import os
import subprocess
import time

import pytest

from wgns.runtime import watcher
from wgns.runtime.watcher import Watcher

from .harness.ci import can_make_links, tier_unavailable


@pytest.fixture(scope="module", autouse=True)
def _needs_links():
    """Root that may make network links; skipped without (failed under CI)."""
    ok, why = can_make_links()
    if not ok:
        tier_unavailable(why)
NAME = f"wt{os.getpid() % 100000}"


def ip(*args):
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture
def ns():
    ip("netns", "add", NAME)
    try:
        ip("-n", NAME, "link", "add", NAME, "type", "veth", "peer", "name", f"{NAME}p")
        yield NAME
    finally:
        subprocess.run(["ip", "netns", "del", NAME], capture_output=True)


def make(looks):
    t = [0.0]
    w = Watcher(NAME, lambda name, boot: (looks.append(name), ([], True))[1],
                log=lambda s: None,
                clock=lambda: t[0] + time.monotonic())
    return w, t


def test_first_look_at_once_then_sleeps_until_the_period(ns):
    looks: list = []
    w, _ = make(looks)
    w.once()
    assert looks == [NAME] and w.sock is not None
    started = time.monotonic()
    w.once()                      # nothing happens: one stat, one wait
    assert looks == [NAME] and time.monotonic() - started < 1.5


def test_link_deleted_is_noticed_within_a_second(ns):
    looks: list = []
    w, _ = make(looks)
    w.once()
    ip("-n", NAME, "link", "del", NAME)
    started = time.monotonic()
    w.once()
    assert looks == [NAME, NAME]
    assert time.monotonic() - started < 1.0


def test_namespace_replaced_or_gone_wakes_it(ns):
    looks: list = []
    w, _ = make(looks)
    w.once()
    ip("netns", "del", NAME)
    w.once()
    assert len(looks) == 2 and w.sock is None     # the old namespace is let go
    w.once()
    assert len(looks) == 2                         # still gone: nothing new
    ip("netns", "add", NAME)
    w.once()
    assert len(looks) == 3 and w.sock is not None


def test_the_period_brings_a_look(ns):
    looks: list = []
    w, t = make(looks)
    w.once()
    t[0] += watcher.PERIOD
    w.once()
    assert len(looks) == 2


def test_notify_ready_without_a_socket_does_nothing(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    watcher.notify_ready()


def test_the_boot_check_runs_until_healthy_and_again_after_a_namespace_change(ns):
    seen, healthy = [], [False]
    w = Watcher(NAME, lambda name, boot: (seen.append(boot), ([], healthy[0]))[1],
                log=lambda s: None)
    w.once()
    w.next_look = 0
    w.once()
    healthy[0] = True
    w.next_look = 0
    w.once()
    w.next_look = 0
    w.once()
    assert seen == [True, True, True, False]
    ip("netns", "del", NAME)
    ip("netns", "add", NAME)
    w.once()
    assert seen[-1] is True


def test_metrics_are_written_after_changes_and_otherwise_every_two_minutes(tmp_path,
                                                                          monkeypatch):
    from wgns.core import installed, record, systemd
    from wgns.core.config import parse_wgquick
    from wgns.runtime import metrics

    from .conftest import GOOD
    calls = []
    where = {"dir": str(tmp_path)}
    monkeypatch.setattr(metrics, "text", lambda rec, sd: "body")
    monkeypatch.setattr(metrics, "write_current",
                        lambda rec, body: calls.append(rec.metrics_dir) or True)
    monkeypatch.setattr(installed, "load", lambda root, name: record.Record(
        tunnel=parse_wgquick(GOOD, "x", name), python="/p", helper="/h",
        metrics_dir=where["dir"]))

    class NoBus:
        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False
    monkeypatch.setattr(systemd, "Systemd", NoBus)
    t = [0.0]
    m = watcher.Metrics("wg", clock=lambda: t[0])
    m(False)                 # the first one, whatever it is
    m(False)
    m(True)                  # a change: at once
    t[0] += watcher.METRICS_EVERY
    m(False)
    assert calls == [str(tmp_path)] * 3
    where["dir"] = str(tmp_path / "missing")   # the record's directory, read each time
    watcher.Metrics("wg", clock=lambda: t[0])(True)
    assert len(calls) == 3   # no node-exporter directory: nothing written


def test_a_tunnel_in_transition_is_looked_at_again_soon(ns):
    for healthy, soon in ((None, True), (False, False)):
        w = Watcher(NAME, lambda name, boot, h=healthy: ([], h), log=lambda s: None)
        w.once()              # the namespace appeared: an event
        w.next_look = 0       # the next look has no event behind it
        w.once()
        left = w.next_look - time.monotonic()
        assert (left <= watcher.FOLLOW_UP) == soon, (healthy, left)


@pytest.fixture
def two():
    names = [f"{NAME}a", f"{NAME}b"]
    for n in names:
        ip("netns", "add", n)
        ip("-n", n, "link", "add", n, "type", "veth", "peer", "name", f"{n}p")
    try:
        yield names
    finally:
        for n in names:
            subprocess.run(["ip", "netns", "del", n], capture_output=True)


def test_one_process_watches_every_tunnel_and_wakes_for_the_one_that_changed(two):
    looks: list = []
    installed = list(two)
    fleet = watcher.Fleet(lambda: installed, lambda n: Watcher(
        n, lambda name, boot: (looks.append(name), ([], True))[1], log=lambda s: None))
    fleet.once()
    assert sorted(looks) == sorted(two)           # a first look of each
    looks.clear()
    ip("-n", two[1], "link", "del", two[1])
    started = time.monotonic()
    fleet.once()
    assert looks == [two[1]] and time.monotonic() - started < 1.0
    looks.clear()
    fleet.once()                                   # nothing happened: one wait
    assert looks == []


def test_the_fleet_follows_tunnels_installed_and_removed(two):
    installed = [two[0]]
    fleet = watcher.Fleet(lambda: installed, lambda n: Watcher(
        n, lambda name, boot: ([], True), log=lambda s: None))
    fleet.once()
    assert list(fleet.watchers) == [two[0]]
    sock = fleet.watchers[two[0]].sock
    installed[:] = [two[1]]
    fleet.once()
    assert list(fleet.watchers) == [two[1]] and sock is not None and sock.fileno() == -1


def test_one_tunnels_fault_never_stops_the_watch_of_the_others(two):
    """A look that raises (a record gone bad, D-Bus refusing) is one line in
    the journal and a look again after FAULT_WAIT; the other tunnels are
    watched on, as they were by a process each."""
    looks: list = []
    lines: list = []

    def look(name, boot):
        looks.append(name)
        if name == two[0]:
            raise OSError(5, "Input/output error")
        return [], True
    fleet = watcher.Fleet(lambda: list(two), lambda n: Watcher(n, look, log=lines.append))
    fleet.once()
    assert sorted(looks) == sorted(two)
    assert lines == [f"{two[0]}: the look failed (OSError: [Errno 5] Input/output error); "
                     f"again in {watcher.FAULT_WAIT:.0f} s"]
    looks.clear()
    ip("-n", two[1], "link", "del", two[1])
    fleet.once()
    assert looks == [two[1]]
    assert fleet.watchers[two[0]].next_look > time.monotonic() + watcher.FAULT_WAIT - 2

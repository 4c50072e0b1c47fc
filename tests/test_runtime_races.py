"""The watcher's runtime files (/run/wgns/NAME.*) against a wgns command
that runs at the same time. A command holds the writers' lock (an flock on
"/", core/safeio.dir_lock) for its whole run; what the watcher writes for a
tunnel must be written under that lock too, or an uninstall that removed it
gets it back. The "uninstall" here is what a real one does to these files
(restore.clear_all, after stopping the tunnel and removing its record), run
where a real one could run: at once when the lock is free, else when the
watcher lets it go."""

from __future__ import annotations

import contextlib
import fcntl
import os

import pytest

from wgns.core import restore, safeio
from wgns.runtime import heal

from .test_heal import FakeSystemd, world  # noqa: F401  (the fixture)


class Uninstall:
    """An uninstall of tunnel wg that arrives at a given moment."""

    def __init__(self, sd: FakeSystemd, state: dict) -> None:
        self.sd, self.state, self.waiting = sd, state, False

    def run(self) -> None:
        self.sd.states["wg.service"] = "inactive"     # stopped,
        self.state["confined"] = {}                   # its record gone,
        restore.clear_all("wg")                       # its runtime files too

    def arrive(self) -> None:
        """Now, if the lock is free; else when the watcher releases it."""
        fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.waiting = True
            return
        finally:
            os.close(fd)
        self.run()

    def finish(self) -> None:
        if self.waiting:
            self.run()


def left(state_dir: str) -> list[str]:
    return sorted(os.listdir(state_dir)) if os.path.isdir(state_dir) else []


def test_uninstall_removes_every_runtime_file_of_the_tunnel(tmp_path, monkeypatch):
    """The watcher's counters (NAME.restarts) too: a tunnel installed later
    under that name starts from zero, and nothing of the old one is left."""
    monkeypatch.setattr(restore, "RESTORE_DIR", str(tmp_path))
    for suffix in ("restore", "backoff", "booted", "restarts"):
        (tmp_path / f"wg.{suffix}").write_text("1\n")
    (tmp_path / "wg2.restarts").write_text("{}")
    (tmp_path / "wg.netns").write_text("x")          # netns@wg removes it
    restore.clear_all("wg")
    assert left(str(tmp_path)) == ["wg.netns", "wg2.restarts"]


def test_the_boot_check_writes_its_file_before_it_lets_the_lock_go(world,  # noqa: F811
                                                                   monkeypatch):
    world["confined"] = {"boot.service": "wg"}
    sd = FakeSystemd({"wg.service": "active"}, confined={"boot.service": "wg"})
    sd.enabled = {"boot.service"}
    world["use"](sd)
    uninstall = Uninstall(sd, world)
    real = safeio.dir_lock

    @contextlib.contextmanager
    def then_the_waiting_command(path, timeout=None):
        with real(path, timeout) as held:
            yield held
        uninstall.run()         # it waited for the lock, and runs now
    monkeypatch.setattr(safeio, "dir_lock", then_the_waiting_command)
    heal.watch("wg")
    assert sd.started == ["boot.service"]
    assert left(restore.RESTORE_DIR) == []


@pytest.mark.parametrize("netns_gone", [False, True])
def test_an_uninstall_while_the_watcher_restarts_gets_no_file_back(world,  # noqa: F811
                                                                    monkeypatch,
                                                                    netns_gone):
    """The watcher found the link broken and acts; an uninstall arrives as
    it lists the running confined units. Whatever the order, nothing of the
    tunnel is left in /run/wgns once both are done."""
    world["problem"] = "link wg is gone from its namespace"
    world["netns"] = not netns_gone
    world["confined"] = {"app.service": "wg"}
    sd = FakeSystemd({"wg.service": "active", "app.service": "active"})
    world["use"](sd)
    uninstall = Uninstall(sd, world)
    listed = heal.confined

    def confined_then_uninstall(name):
        units = listed(name)
        uninstall.arrive()
        return units
    monkeypatch.setattr(heal, "confined", confined_then_uninstall)
    heal.watch("wg")
    uninstall.finish()
    assert left(restore.RESTORE_DIR) == []

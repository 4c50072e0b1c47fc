"""The watcher's decisions (heal.watch), with systemd, the namespace and
the WireGuard device replaced at their boundary: what it restarts, when it
backs off, what it never touches. The container `hardening` scenario runs
the same code against a real systemd."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from wgns.core import netns, restore, wireguard
from wgns.core.errors import SystemdError
from wgns.runtime import heal


class FakeSystemd:
    def __init__(self, states: dict[str, str], jobs: dict[str, list[str]] | None = None,
                 confined: dict[str, str] | None = None) -> None:
        self.states = states
        self._jobs = jobs or {}
        self.confined = confined or {}  # unit -> tunnel systemd has it confined to
        self.restarted: list[str] = []
        self.started: list[str] = []
        self.enabled: set[str] = set()
        self.ran: set[str] = set()
        self.refuse = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def active_state(self, unit):
        return self.states.get(unit, "inactive")

    def jobs(self, unit):
        return self._jobs.get(unit, [])

    def restart_if_running(self, unit):
        if self.refuse:
            raise SystemdError("systemd refused to restart: Transaction is destructive")
        self.restarted.append(unit)

    def service_properties(self, unit):
        t = self.confined.get(unit)
        return {"NetworkNamespacePath": f"/run/netns/{t}" if t else "",
                "BindsTo": [f"{t}.service"] if t else []}

    def enqueue_start(self, unit):
        self.started.append(unit)

    def unit_file_state(self, unit):
        return "enabled" if unit in self.enabled else "disabled"

    def ever_started(self, unit):
        return unit in self.ran


@pytest.fixture
def world(tmp_path, monkeypatch):
    monkeypatch.setattr(restore, "RESTORE_DIR", str(tmp_path / "run"))
    state = {"problem": None, "confined": {}}
    monkeypatch.setattr(heal, "link_problem", lambda name: state["problem"])
    monkeypatch.setattr(heal, "reresolve", lambda tunnel: [])
    monkeypatch.setattr(netns, "exists", lambda name: state.get("netns", True))
    import wgns.core.systemd
    monkeypatch.setattr(heal, "load_tunnel", lambda root, name: None)
    monkeypatch.setattr(heal, "confined",
                        lambda name: [u for u, t in state["confined"].items() if t == name])

    def use(sd):
        monkeypatch.setattr(wgns.core.systemd, "Systemd", lambda: sd)
    state["use"] = use
    return state


def test_healthy_tunnel_is_left_alone(world):
    sd = FakeSystemd({"wg.service": "active"})
    world["use"](sd)
    assert heal.watch("wg") == [] and sd.restarted == []


def test_stopped_or_stopping_tunnel_is_never_restarted(world):
    world["problem"] = "link wg is gone from its namespace"
    for states, jobs in (({"wg.service": "inactive"}, {}),
                         ({"wg.service": "deactivating"}, {}),
                         ({"wg.service": "active"}, {"wg.service": ["stop"]})):
        sd = FakeSystemd(states, jobs)
        world["use"](sd)
        assert heal.watch("wg") == [] and sd.restarted == []


def test_a_refused_restart_is_reported_and_forgets_the_restore_list(world):
    world["problem"] = "link wg is gone from its namespace"
    world["confined"] = {"app.service": "wg"}
    sd = FakeSystemd({"wg.service": "active", "app.service": "active"})
    sd.refuse = True
    world["use"](sd)
    lines = heal.watch("wg")
    assert "not restarting" in lines[0] and restore.read("wg") == []


def test_broken_link_restarts_tunnel_and_records_running_units(world):
    world["problem"] = "link wg is gone from its namespace"
    world["confined"] = {"app.service": "wg", "idle.service": "wg"}
    sd = FakeSystemd({"wg.service": "active", "app.service": "active"})
    world["use"](sd)
    lines = heal.watch("wg")
    assert sd.restarted == ["wg.service"] and "app.service" in lines[0]
    assert restore.read("wg") == ["app.service"]


def test_deleted_namespace_restarts_the_namespace_unit(world):
    world["problem"] = "namespace /run/netns/wg is gone"
    world["netns"] = False
    sd = FakeSystemd({"wg.service": "active"})
    world["use"](sd)
    heal.watch("wg")
    assert sd.restarted == ["netns@wg.service"]


def test_backoff_doubles_and_resets_when_healthy(world, monkeypatch):
    world["problem"] = "the WireGuard device wg does not answer"
    sd = FakeSystemd({"wg.service": "active"})
    world["use"](sd)
    now = [1000.0]
    monkeypatch.setattr(heal.time, "time", lambda: now[0])
    assert heal.watch("wg")[0].endswith("restarting wg.service")
    now[0] += 10
    assert "backing off" in heal.watch("wg")[0]  # 20 s after the first restart
    now[0] += 11
    assert heal.watch("wg")[0].endswith("restarting wg.service")
    now[0] += 30
    assert "backing off" in heal.watch("wg")[0]  # now 40 s
    now[0] += 11
    assert heal.watch("wg")[0].endswith("restarting wg.service")
    assert len(sd.restarted) == 3
    world["problem"] = None
    heal.watch("wg")
    world["problem"] = "the WireGuard device wg does not answer"
    heal.watch("wg")
    assert len(sd.restarted) == 4  # healthy once: no brake left
    # What metrics read: each restart and each held-back one, by reason.
    import json
    counts = json.loads((Path(restore.RESTORE_DIR) / "wg.restarts").read_text())
    assert counts == {"link_gone": 4, "backoff": 2}
    assert [heal.backoff_wait(n) for n in range(7)] == [0, 20, 40, 80, 160, 320, 600]


@pytest.mark.parametrize("forged", ["1 inf", "1 1e999", "3 nan", "-5 0", "99999999999 0",
                                    "1 -1", "2 1000 9", "x y", "\x00\xff", "1 " + "9" * 80])
def test_a_forged_backoff_file_neither_stops_healing_nor_skips_the_brake(world, monkeypatch,
                                                                         forged):
    """/run/wgns/NAME.backoff saying anything but COUNT TIME counts as no
    restart yet (restore.read_count, shared with PIA's attempts)."""
    world["problem"] = "the WireGuard device wg does not answer"
    sd = FakeSystemd({"wg.service": "active"})
    world["use"](sd)
    monkeypatch.setattr(heal.time, "time", lambda: 1000.0)
    os.makedirs(restore.RESTORE_DIR, exist_ok=True)
    (Path(restore.RESTORE_DIR) / "wg.backoff").write_text(forged, errors="surrogateescape")
    assert heal.watch("wg")[0].endswith("restarting wg.service")
    assert heal._backoff("wg") == (1, 1000.0)
    assert "backing off: next try in 20 s" in heal.watch("wg")[0]


def test_start_confined_never_starts_an_unconfined_unit(world):
    sd = FakeSystemd({}, confined={"app.service": "wg", "other.service": "vpn"})
    lines = heal.start_confined(sd, "wg", ["app.service", "other.service", "gone.service"],
                                "test")
    assert sd.started == ["app.service"] and "other" not in lines[0]


def test_missed_at_boot_only_enabled_units_that_never_ran(world):
    world["confined"] = {"boot.service": "wg", "stopped.service": "wg", "manual.service": "wg"}
    sd = FakeSystemd({"wg.service": "active"},
                     confined={u: "wg" for u in world["confined"]})
    sd.enabled = {"boot.service", "stopped.service"}
    sd.ran = {"stopped.service"}  # a person stopped it after it ran
    world["use"](sd)
    heal.watch("wg")
    assert sd.started == ["boot.service"]


def test_restore_list_drops_names_that_are_not_units(world):
    restore.write("wg", ["app.service", "bad name.service", "x%n.service"])
    assert restore.read("wg") == ["app.service"]
    restore.forget("wg", ["app.service"])
    assert restore.read("wg") == []


def test_stale_uapi_socket_falls_through_to_the_kernel(tmp_path, monkeypatch):
    """A dead wireguard-go's socket beside a kernel link must not make the
    device look dead (the watcher would restart it every 20 s)."""
    monkeypatch.setattr(wireguard, "UAPI_DIR", str(tmp_path))
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(tmp_path / "wg.sock"))
    s.close()  # the file stays; connecting is refused
    kernel = wireguard.DeviceInfo(wireguard.KERNEL, 51820, [])
    monkeypatch.setattr(netns, "exists", lambda name: True)
    monkeypatch.setattr(netns, "run_in", lambda name, fn: kernel)
    assert wireguard.device_info("wg") is kernel


@pytest.mark.parametrize("state,jobs,expected", [
    ("activating", [], None), ("deactivating", [], None), ("active", ["stop"], None),
    ("failed", ["start"], None), ("failed", [], False), ("inactive", [], False)])
def test_a_tunnel_starting_or_stopping_asks_for_another_look_soon(world, state, jobs,
                                                                 expected):
    """At boot the tunnel fails and is retried (activating, auto-restart):
    the watcher must look again soon, or its boot check waits a period."""
    sd = FakeSystemd({"wg.service": state})
    sd._jobs = {"wg.service": jobs}
    world["use"](sd)
    assert heal.look("wg", boot_check=True) == ([], expected)

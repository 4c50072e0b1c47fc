"""The real Deluge (deluged and deluge-web) and rTorrent from Debian, in a
throwaway network namespace that has only its loopback (nothing outside is
reachable), kept on a static port by the unit side of wgns: the clients
made from the unit's credentials (Deluge's own login), the Static
forwarder, what it publishes, and what the clients really listen on, read
with `ss` inside the namespace. rTorrent takes a new port only from its
next start: that is seen here, then the start that takes it.

Needs root (namespaces) and the Debian packages deluged, deluge-web and
rtorrent (tests/setup-host); skipped without (failed under CI=true). Not a
booted systemd: the container scenario would confine them as units."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from wgns.core import netns, portconf
from wgns.core.paths import login_credential
from wgns.runtime import forward_unit
from wgns.runtime.forwarder import Static

from .harness.ci import can_make_links, tier_unavailable

NS = f"wgnsrc{os.getpid() % 10000}"
PORT = 51413
WEB_PASSWORD = "deluge"   # deluge-web's first start sets its default password


@pytest.fixture(scope="module", autouse=True)
def _needs_root_and_clients():
    ok, why = can_make_links()
    if not ok:
        tier_unavailable(why)
    missing = [b for b in ("deluged", "deluge-web", "rtorrent") if not shutil.which(b)]
    if missing:
        tier_unavailable(f"{', '.join(missing)} missing (Debian packages deluged, "
                         "deluge-web, rtorrent: tests/setup-host)")


@pytest.fixture
def ns(tmp_path):
    """The namespace, and a way to start a process in it (all ended after)."""
    subprocess.run(["ip", "netns", "add", NS], check=True)
    procs: list[subprocess.Popen] = []

    def start(*argv: str, log: str) -> subprocess.Popen:
        with open(tmp_path / log, "wb") as out:
            p = subprocess.Popen(["ip", "netns", "exec", NS, *argv], stdout=out,
                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        procs.append(p)
        return p
    try:
        subprocess.run(["ip", "-n", NS, "link", "set", "lo", "up"], check=True)
        yield start
    finally:
        for p in procs:
            stop(p)
        subprocess.run(["ip", "netns", "del", NS], capture_output=True)


def stop(p: subprocess.Popen) -> None:
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def listening(process: str) -> set[int]:
    """The TCP ports PROCESS listens on inside the namespace."""
    out = subprocess.run(["ip", "netns", "exec", NS, "ss", "-Htlnp"], capture_output=True,
                         text=True, check=True).stdout
    return {int(line.split()[3].rsplit(":", 1)[1]) for line in out.splitlines()
            if f'"{process}' in line}


def wait_for(what: str, test, seconds: float = 30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = test()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"{what}: not within {seconds} s")


def rtorrent(start, tmp_path: Path, port_range: str, scgi: int) -> subprocess.Popen:
    (tmp_path / "rt/session").mkdir(parents=True, exist_ok=True)
    return start("rtorrent", "-n", "-o", "system.daemon.set=true",
                 "-o", f"network.scgi.open_port=127.0.0.1:{scgi}",
                 "-o", f"network.port_range.set={port_range}",
                 "-o", "network.port_random.set=no", "-o", "dht.mode.set=disable",
                 "-o", f"session.path.set={tmp_path}/rt/session",
                 "-o", f"directory.default.set={tmp_path}/rt", log="rtorrent.log")


def kept(tmp_path: Path, creds: Path, **urls: str) -> tuple[list[str], dict]:
    """One round of the unit side, in the namespace: the clients of URLS
    made from the credentials directory, the Static forwarder, what it
    published."""
    settings = portconf.Settings(None, static=PORT, **urls)
    logs: list[str] = []
    out = tmp_path / "run"
    out.mkdir(exist_ok=True)

    def round_() -> None:
        made = forward_unit.clients(settings, forward_unit.read_logins(str(creds)), "wg",
                                    log=logs.append)
        fw = Static("wg", PORT, made, out, log=logs.append, secrets=(WEB_PASSWORD,))
        fw.step()
        fw.sync.round()
    netns.run_in(NS, round_)
    return logs, json.loads((out / "forward.json").read_text())


def deluge(ns, tmp_path: Path) -> None:
    conf = tmp_path / "deluge"
    conf.mkdir()
    ns("deluged", "-d", "-c", str(conf), "-p", "58846", "-L", "warning", log="deluged.log")
    wait_for("deluged listens", lambda: 58846 in listening("deluged"))
    ns("deluge-web", "-d", "-c", str(conf), "-p", "8112", "-i", "127.0.0.1", log="web.log")
    wait_for("deluge-web listens", lambda: 8112 in listening("deluge-web"))


def test_real_deluge_takes_the_static_port_at_once_with_its_own_login(ns, tmp_path):
    deluge(ns, tmp_path)
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / login_credential("deluge")).write_text(f"username=\npassword={WEB_PASSWORD}\n")
    logs, state = kept(tmp_path, creds, deluge="http://127.0.0.1:8112")
    assert state["port"] == PORT and state["method"] == "static", state
    assert state["clients"] == [{"client": "Deluge", "synced": True, "error": None,
                                 "restart": False}], (state, logs)
    wait_for("deluged listens on the port", lambda: PORT in listening("deluged"))
    assert not any(WEB_PASSWORD in line for line in logs)


def test_real_rtorrent_takes_it_from_its_next_start_and_status_says_so(ns, tmp_path):
    first = rtorrent(ns, tmp_path, "6890-6890", 5000)
    wait_for("rTorrent listens", lambda: {5000, 6890} <= listening("rtorrent"))
    settings = portconf.Settings(None, static=PORT, rtorrent="scgi://127.0.0.1:5000")
    logs: list[str] = []
    fw = Static("wg", PORT, forward_unit.clients(settings, {}, "wg", log=logs.append),
                tmp_path, log=logs.append)

    def round_() -> dict:     # in the namespace: the client's calls start there
        fw.step()
        fw.sync.round()
        return json.loads((tmp_path / "forward.json").read_text())
    state = netns.run_in(NS, round_)
    # rTorrent says the port is set, but still listens on the old one...
    assert state["clients"] == [{"client": "rTorrent", "synced": True, "error": None,
                                 "restart": True}], (state, logs)
    assert 6890 in listening("rtorrent") and PORT not in listening("rtorrent")
    assert any("rTorrent" in line and "next start" in line for line in logs), logs
    assert netns.run_in(NS, round_)["clients"][0]["restart"] is True   # the same run
    # ... until it starts with the port (port-forwarding.md#rtorrent): the
    # same forwarder, at its next round, sees another run on the port.
    stop(first)
    wait_for("rTorrent stopped", lambda: not listening("rtorrent"))
    rtorrent(ns, tmp_path, f"{PORT}-{PORT}", 5000)
    wait_for("rTorrent listens on the port", lambda: PORT in listening("rtorrent"))
    state = netns.run_in(NS, round_)
    assert state["clients"] == [{"client": "rTorrent", "synced": True, "error": None,
                                 "restart": False}], (state, logs)


def test_real_deluge_rejects_a_wrong_password_as_a_rejected_login(ns, tmp_path):
    deluge(ns, tmp_path)
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / login_credential()).write_text("username=admin\npassword=not-the-password\n")
    settings = portconf.Settings(None, static=PORT, deluge="http://127.0.0.1:8112")
    logs: list[str] = []

    def round_() -> dict:
        made = forward_unit.clients(settings, forward_unit.read_logins(str(creds)), "wg",
                                    log=logs.append)
        fw = Static("wg", PORT, made, tmp_path, log=logs.append,
                    secrets=("not-the-password",))
        fw.step()
        fw.sync.round()
        return fw.state()
    state = netns.run_in(NS, round_)
    error = state["clients"][0]["error"]
    assert not state["clients"][0]["synced"] and "rejected the password" in error, state
    assert fw_retry_is_an_hour(logs)
    assert not any("not-the-password" in line for line in logs)


def fw_retry_is_an_hour(logs: list[str]) -> bool:
    return any("trying again in 3600 s" in line for line in logs)

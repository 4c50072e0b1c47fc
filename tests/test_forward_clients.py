"""`--deluge URL` and `--rtorrent URL` wired into port forwarding, each
client with its login (its own, else the one for all): what the unit
makes of its credentials, the clients kept on the port against the fakes
of test_clients_more.py, rTorrent's "from its next start" in status,
hostile answers logged as one printable line, and a downgrade refused
for what an older wgns would half read."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from wgns.admin.forward import format_text
from wgns.cli import app
from wgns.core import portconf
from wgns.core.paths import login_credential
from wgns.runtime import forward_unit
from wgns.runtime.deluge import Deluge
from wgns.runtime.forwarder import Static
from wgns.runtime.rtorrent import RTorrent

from .conftest import DATA, one_error
from .test_clients_more import FakeDeluge, FakeRTorrent, reply, serve


def credentials(tmp_path, logins: dict[str | None, str]) -> str:
    d = tmp_path / "creds"
    d.mkdir()
    for client, text in logins.items():
        (d / login_credential(client)).write_text(text)
    return str(d)


def test_the_unit_gives_each_client_its_own_login_else_the_one_for_all(tmp_path):
    creds = credentials(tmp_path, {None: "username=admin\npassword=all-secret\n",
                                   "deluge": "username=\npassword=deluge-secret\n"})
    logins = forward_unit.read_logins(creds)
    s = portconf.Settings(None, qbittorrent="http://127.0.0.1:8080", static=51413,
                          deluge="http://127.0.0.1:8112", rtorrent="scgi://127.0.0.1:5000")
    made = forward_unit.clients(s, logins, "wg", log=print)
    assert [c.what for c in made] == ["qBittorrent", "Deluge", "rTorrent"]
    qbt, deluge, rtorrent = made
    assert qbt.login == ("admin", "all-secret")   # type: ignore[attr-defined]
    assert isinstance(deluge, Deluge) and deluge.password == "deluge-secret"
    assert isinstance(rtorrent, RTorrent) and rtorrent.scgi == ("127.0.0.1", 5000)


def static_with(tmp_path, clients, secrets=()):
    now, logs = [0.0], []
    fw = Static("wg", 51413, clients, tmp_path, clock=lambda: now[0], wall=lambda: 1e9,
                sleep=lambda s: None, log=logs.append, secrets=secrets)
    fw.step()
    fw.sync.round()
    return fw, logs, json.loads((tmp_path / "forward.json").read_text())


def test_deluge_and_rtorrent_follow_the_port_and_status_says_rtorrent_must_restart(tmp_path):
    deluge, rtorrent = FakeDeluge("deluge-secret"), FakeRTorrent()
    s1, p1 = serve(deluge)
    s2, p2 = serve(rtorrent)
    with s1, s2:
        s = portconf.Settings(None, static=51413, deluge=f"http://127.0.0.1:{p1}",
                              rtorrent=f"scgi://127.0.0.1:{p2}")
        made = forward_unit.clients(s, {"deluge": ("", "deluge-secret")}, "wg", log=print)
        fw, logs, state = static_with(tmp_path, made, ("deluge-secret",))
    assert deluge.ports == [51413, 51413]
    assert (rtorrent.range, rtorrent.random) == ("51413-51413", 0)
    assert [(c["client"], c["synced"], c["restart"]) for c in state["clients"]] == [
        ("Deluge", True, False), ("rTorrent", True, True)]
    assert any("rTorrent" in line and "next start" in line for line in logs)
    st = {"method": "static", "port": 51413, "gateway": None, "renewed_age": None,
          "error": None, "warning": None, "clients": state["clients"]}
    text = "\n".join(format_text(st))
    assert "Deluge: in sync" in text
    assert "rTorrent: port set to 51413; it listens there from its next start" in text


def hostile_deluge(body: bytes):
    def handler(c):
        with c:
            c.recv(65536)
            reply(c, body)
    return handler


@pytest.mark.parametrize("body", [
    b"garbage\x1b[2J",
    b'{"result": null, "error": {"code": "x\\n\\u001b[31mPASS deluge-secret"}}',
    b'{"result": true, "error": null, "id": 1}' + b" " * 10,   # login ok, then the same
    b'{"result": [1e999, 5], "error": null}',
    b'{"result": [' + b"9" * 5000 + b', 1], "error": null}',
    b"[" * 100000,
])
def test_a_hostile_deluge_is_one_printable_line_in_the_log_never_a_crash(tmp_path, body):
    s, port = serve(hostile_deluge(body))
    with s:
        client = Deluge(f"http://127.0.0.1:{port}", ("", "deluge-secret"))
        fw, logs, state = static_with(tmp_path, [client], ("deluge-secret",))
    assert fw.sync.crashed is None and state["port"] == 51413
    assert state["clients"][0]["synced"] is False and state["clients"][0]["error"]
    for line in logs + [state["clients"][0]["error"]]:
        assert line.isprintable() and "deluge-secret" not in line, line


@pytest.mark.parametrize("answer", [
    b"\x00\xff garbage", b"<?xml version='1.0'?><methodResponse><params><param><value>"
    b"<string>1" + b"0" * 400 + b"-2</string></value></param></params></methodResponse>",
])
def test_a_hostile_rtorrent_is_one_printable_line_never_a_crash(tmp_path, answer):
    s, port = serve(FakeRTorrent(answer))
    with s:
        fw, logs, state = static_with(tmp_path, [RTorrent(f"scgi://127.0.0.1:{port}", None)])
    assert fw.sync.crashed is None and state["clients"][0]["synced"] is False
    assert all(line.isprintable() for line in logs) and logs


def test_a_downgrade_is_refused_while_a_tunnel_forwards_in_a_newer_way(tmp_path):
    root = tmp_path / "root"
    (root / "etc/systemd/system").mkdir(parents=True)
    runner = CliRunner()
    for args in (["install", "--conf", str(DATA / "protonvpn.conf")],
                 ["port-forward", "--static", "51413", "--rtorrent", "scgi://127.0.0.1:5000"]):
        assert runner.invoke(app, [*args, "--root", str(root)]).exit_code == 0
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    line = one_error(runner.invoke(app, ["migrate", "--downgrade", "--root", str(root)]))
    assert "--static" in line and "wgns before 0.2" in line
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before


class NotLive:
    """A client that takes a new port only from its next start (as
    rTorrent): SESSION says which run of it answers (None: it does not say)."""
    what, live = "rTorrent", False

    def __init__(self, session: str | None) -> None:
        self.setting, self.listening, self.run = 6890, 6890, session

    def port(self):
        return self.setting

    def set_port(self, port):
        self.setting = port

    def session(self):
        return self.run

    def restart(self, run):
        self.listening, self.run = self.setting, run


@pytest.mark.parametrize("session", ["101", None])
def test_restart_is_said_until_another_run_of_the_client_is_on_the_port(tmp_path, session):
    client = NotLive(session)
    fw, logs, state = static_with(tmp_path, [client])
    assert state["clients"][0]["restart"] is True and client.setting == 51413
    for run in (session, "202" if session else None):   # the same run, then another
        client.restart(run) if run != session else None
        fw.step()
        fw.sync.round()
        state = json.loads((tmp_path / "forward.json").read_text())
        # Without a session to tell runs apart, it stays said (never a false "in sync").
        assert state["clients"][0]["restart"] is (run == session or session is None), run

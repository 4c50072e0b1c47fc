"""`wgns port-forward --static PORT` (a port the provider reserved: AirVPN
and others) and `--credentials CLIENT=FILE` (a client's own login): the
record and its round trips, the files rendered from it (golden), the
command's refusals, the unit's static forwarder, status and check."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from wgns.admin.check import _forward_check
from wgns.admin.forward import format_text, split_credentials
from wgns.cli import app
from wgns.core import forward_state, paths, portconf
from wgns.core.config import parse_wgquick
from wgns.core.errors import ConfigError, WgnsError
from wgns.core.installed import load
from wgns.core.record import Forward, Record, from_json, shown, to_json
from wgns.runtime.forwarder import Static

from .conftest import DATA, one_error
from .test_forward import FakeClient
from .test_properties import SETTINGS
from .test_render import _system_wide_paths, check_golden, nsswitch, renders_back  # noqa: F401

TUNNEL = parse_wgquick((DATA / "protonvpn.conf").read_text(), "p.conf", "wg")


def record(forward: Forward | None) -> Record:
    return Record(tunnel=TUNNEL, python="/usr/bin/python3", helper="/x/wgns/helper.py",
                  forward=forward)


def logins(tmp_path, **files: str) -> dict[str, str]:
    out = {}
    for name, text in files.items():
        p = tmp_path / f"{name}.login"
        p.write_text(text)
        p.chmod(0o600)
        out[name] = str(p)
    return out


STATIC = Forward(method="static", port=51413, qbittorrent="http://127.0.0.1:8080",
                 deluge="http://127.0.0.1:8112", rtorrent="scgi://127.0.0.1:5000",
                 login=("admin", "all-secret"),
                 logins=(("deluge", ("", "deluge-secret")),))


# -- the record ------------------------------------------------------------------------


def test_a_static_forward_round_trips_through_record_json():
    r = record(STATIC)
    text = to_json(r)
    assert json.loads(text.split("\n", 1)[1])["format"] == 2
    assert from_json(text, TUNNEL, "record.json") == r
    assert from_json(text, TUNNEL, "record.json").forward.login_of("deluge") == \
        ("", "deluge-secret")
    assert r.forward.login_of("qbittorrent") == ("admin", "all-secret")


def test_a_nat_pmp_forward_is_still_format_1_without_the_new_keys():
    """Guard (passes before the change too, by design): a record using
    nothing new is written as before, so an older wgns still reads it."""
    f = Forward(gateway="10.2.0.1", qbittorrent="http://127.0.0.1:8080", login=("a", "b"))
    data = json.loads(to_json(record(f)).split("\n", 1)[1])
    assert data["format"] == 1
    assert set(data["forward"]) == {"method", "gateway", "qbittorrent", "transmission",
                                    "command", "login"}


def test_status_json_shows_every_login_hidden():
    data = shown(record(STATIC))
    assert data["forward"]["logins"] == {"deluge": {"username": "",
                                                    "password": "(hidden)"}}
    assert data["forward"]["method"] == "static" and data["forward"]["port"] == 51413
    assert "secret" not in json.dumps(data)


@pytest.mark.parametrize("change", [
    {"method": "static", "port": 0}, {"method": "static", "port": 65536},
    {"method": "static", "port": True}, {"method": "static", "port": 1e999},
    {"method": "static", "port": "51413"}, {"method": "static", "gateway": "10.2.0.1"},
    {"method": "natpmp", "gateway": None}, {"method": "natpmp", "gateway": "10.2.0.1"},
    {"method": "pcp"}, {"logins": {"vuze": ["a", "b"]}}, {"logins": {"deluge": "pw"}},
    {"logins": ["deluge"]}, {"format": True}])
def test_a_record_that_is_not_what_wgns_writes_is_refused(change):
    data = json.loads(to_json(record(STATIC)).split("\n", 1)[1])
    target = data if "format" in change else data["forward"]
    target.update(change)
    with pytest.raises(ConfigError) as e:
        from_json(json.dumps(data), TUNNEL, "record.json")
    assert "\n" not in str(e.value) and "secret" not in str(e.value)


# -- the files, from the record ---------------------------------------------------------


def test_golden_static_with_a_login_for_all_and_deluge_its_own(nsswitch, tmp_path):  # noqa: F811
    (nsswitch / "etc/systemd/system").mkdir(parents=True)
    f = logins(tmp_path, all="username=admin\npassword=all-secret\n",
               deluge="password=deluge-secret\n")
    for args in (["install", "--conf", str(DATA / "protonvpn.conf")],
                 ["port-forward", "--static", "51413", "--qbittorrent", "http://127.0.0.1:8080",
                  "--deluge", "http://127.0.0.1:8112", "--rtorrent", "scgi://127.0.0.1:5000",
                  "--credentials", f["all"], "--credentials", f"deluge={f['deluge']}"]):
        r = CliRunner().invoke(app, [*args, "--root", str(nsswitch)])
        assert r.exit_code == 0, r.output
    check_golden("forward-static", nsswitch)
    renders_back(nsswitch, "wg")
    unit = (nsswitch / "etc/systemd/system/wgns-wg-forward.service").read_text()
    assert "secret" not in unit and "51413" in unit


def test_turning_a_clients_own_login_off_removes_its_file(nsswitch, tmp_path):  # noqa: F811
    (nsswitch / "etc/systemd/system").mkdir(parents=True)
    f = logins(tmp_path, deluge="password=deluge-secret\n")
    runner = CliRunner()
    assert runner.invoke(app, ["install", "--conf", str(DATA / "protonvpn.conf"),
                               "--root", str(nsswitch)]).exit_code == 0
    for creds in (["--credentials", f"deluge={f['deluge']}"], []):
        r = runner.invoke(app, ["port-forward", "--deluge", "http://127.0.0.1:8112", *creds,
                                "--root", str(nsswitch)])
        assert r.exit_code == 0, r.output
        assert (nsswitch / "etc/wgns/wg/forward-deluge.login").exists() == bool(creds)
        renders_back(nsswitch, "wg")


# -- the command's refusals ------------------------------------------------------------


def bad_cases(f: dict[str, str]) -> list[tuple[list[str], str]]:
    """(options, what the one line must say)."""
    q = ["--qbittorrent", "http://127.0.0.1:8080"]
    port = "--static PORT must be a whole number from 1 to 65535"
    return [
        (["--static", "0"], port), (["--static", "65536"], port), (["--static", "1e999"], port),
        (["--static", "+80"], port), (["--static", "\u0665\u0661"], port),
        (["--static", ""], port),
        (["--static", "80", "--gateway", "10.2.0.1"], "--static and --gateway"),
        ([*q, "--credentials", f"deluge={f['deluge']}"], "give --deluge URL too"),
        (["--rtorrent", "scgi://127.0.0.1:5000", "--credentials", f"rtorrent={f['all']}"],
         "SCGI takes no login"),
        (["--rtorrent", "scgi://127.0.0.1:5000", "--credentials", f["all"]],
         "--credentials is for a client that takes a login"),
        ([*q, "--credentials", f["all"], "--credentials", f["all"]], "given twice"),
        (["--deluge", "http://127.0.0.1:8112", "--credentials", f"deluge={f['deluge']}",
          "--credentials", f"deluge={f['deluge']}"], "deluge=: given twice"),
        ([*q, "--credentials", "qbittorrent="], "give the path of a file"),
        ([*q, "--credentials", "password=all-secret"], "a login line was given where a file"),
        ([*q, "--credentials", "username=admin"], "a login line was given where a file"),
        ([*q, "--credentials", "all-secret"], "--credentials: no such file (what was given"),
        ([*q, "--credentials", "qbittorrent=all-secret"], "--credentials: no such file"),
        ([*q, "--credentials", f"qbittorrent={f['deluge']}"], "needs a 'username='"),
        (["--rtorrent", "scgi://127.0.0.1"], "give scgi://ADDRESS:PORT"),
        (["--rtorrent", "scgi://127.0.0.1:5000/RPC2"], "give scgi://ADDRESS:PORT"),
        (["--rtorrent", "scgi://127.0.0.1:5000\nExecStart=/bin/sh"], "is not a URL"),
        (["--deluge", "ftp://127.0.0.1:8112"], "--deluge"),
        (["--deluge", "scgi://127.0.0.1:8112"], "not an http:// or https:// URL"),
        (["--deluge", "http://10.9.9.9:8112"], "outside the tunnel's namespace"),
        (["--deluge", "http://u:all-secret@127.0.0.1:1"], "a login in the URL"),
    ]


def test_bad_input_is_one_line_naming_the_problem_and_changes_nothing(tmp_path):
    f = logins(tmp_path, all="username=admin\npassword=all-secret\n",
               deluge="password=deluge-secret\n")
    root = tmp_path / "root"
    (root / "etc/systemd/system").mkdir(parents=True)
    runner = CliRunner()
    for args in (["install", "--conf", str(DATA / "protonvpn.conf")],
                 ["port-forward", "--qbittorrent", "http://127.0.0.1:8080"]):
        assert runner.invoke(app, [*args, "--root", str(root)]).exit_code == 0
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    for args, says in bad_cases(f):
        r = runner.invoke(app, ["port-forward", *args, "--root", str(root)])
        if says.startswith("--static PORT"):     # typer's usage error (exit 2)
            assert r.exit_code == 2 and "Traceback" not in r.output, (args, r.output)
            assert says in " ".join(r.output.replace("│", " ").split()), (args, r.output)
        else:
            line = one_error(r, 1)
            assert says in line and "secret" not in line, (args, line)
        assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before, args


# -- a property: whatever --credentials is given ---------------------------------------


@settings(max_examples=300, **SETTINGS)
@given(st.lists(st.one_of(
    st.text(max_size=30),
    st.builds(lambda c, t: f"{c}={t}", st.sampled_from(portconf.CLIENTS), st.text(max_size=20)),
), max_size=6))
def test_any_credentials_split_into_one_for_all_and_one_per_client_or_one_line(given_):
    try:
        common, own = split_credentials(given_)
    except WgnsError as e:
        assert "\n" not in str(e)
        return
    assert set(own) <= set(portconf.CLIENTS) and all(own.values())
    plain = [v for v in given_ if v.partition("=")[0] not in portconf.CLIENTS
             or "=" not in v]
    assert plain == ([common] if common is not None else [])
    assert set(own) == {v.partition("=")[0] for v in given_ if v not in plain}
    assert all(f"{c}={path}" in given_ for c, path in own.items())


@settings(max_examples=300, **SETTINGS)
@given(st.one_of(st.integers(), st.integers(0, 70000)),
       st.one_of(st.none(), st.text(max_size=40),
                 st.builds("scgi://127.0.0.1:{}".format, st.integers(-1, 70000))))
def test_a_static_port_and_an_rtorrent_url_are_checked_then_round_trip(port, url):
    try:
        s = portconf.Settings(None, static=portconf.check_static(port),
                              rtorrent=portconf.check_url(url, "--rtorrent", scgi=True)
                              if url is not None else None)
    except WgnsError as e:
        assert "\n" not in str(e)
        assert not 1 <= port <= 65535 or url is not None
        return
    assert 1 <= port <= 65535
    assert portconf.parse(portconf.render(s, "# header"), "forward.conf") == s


# -- the unit: a static port -----------------------------------------------------------


def test_the_static_forwarder_keeps_the_clients_on_the_port_and_asks_no_gateway(tmp_path):
    now = [0.0]
    client, logs = FakeClient(), []
    fw = Static("wg", 51413, [client], tmp_path, clock=lambda: now[0], wall=lambda: 1e9,
                sleep=lambda s: None, log=logs.append)
    assert fw.step() == Static.CHECK_EVERY
    fw.sync.round()
    assert client.listen == 51413 and (tmp_path / "forwarded-port").read_text() == "51413\n"
    client.listen = 6881               # the client was put back on its old port
    now[0] += 45
    fw.step()
    fw.sync.round()
    assert client.listen == 51413 and client.calls == [51413, 51413]
    state = json.loads((tmp_path / "forward.json").read_text())
    assert state["method"] == "static" and state["gateway"] is None
    assert state["renewed"] is None and state["clients"][0]["synced"] is True
    fw.release()                        # nothing to give back, and no gateway to ask
    assert any("static port 51413" in line for line in logs)


class SD:
    def active_state(self, unit):
        return "active"


def test_status_and_check_say_static(tmp_path, monkeypatch):
    root = tmp_path / "root"
    (root / "etc/systemd/system").mkdir(parents=True)
    for args in (["install", "--conf", str(DATA / "protonvpn.conf")],
                 ["port-forward", "--static", "51413", "--qbittorrent", "http://127.0.0.1:8080"]):
        assert CliRunner().invoke(app, [*args, "--root", str(root)]).exit_code == 0
    run = tmp_path / "run"
    (run / "wg").mkdir(parents=True)
    (run / "wg/forward.json").write_text(json.dumps(
        {"port": 51413, "gateway": None, "renewed": None, "method": "static",
         "clients": [{"client": "qBittorrent", "synced": True, "error": None}]}))
    monkeypatch.setattr(paths, "RUN_DIR", str(run))
    st_ = forward_state.state(load(str(root), "wg"), SD())
    assert st_["method"] == "static" and st_["port"] == 51413
    text = "\n".join(format_text(st_))
    assert "51413" in text and "static" in text and "NAT-PMP" not in text
    check = _forward_check(load(str(root), "wg"), SD())
    assert check.ok and "static" in check.detail, check
    os.unlink(run / "wg/forward.json")
    assert "none yet (static port)" in "\n".join(
        format_text(forward_state.state(load(str(root), "wg"), SD())))

"""Private Internet Access without a network: `install --provider pia`
with PIA's API patched at its boundary (core/pia.py's three calls), the
files it writes (golden) and their round trip through the record, the
command's refusals, the record's hostile variants, the parsers of PIA's
answers under hypothesis, and the forwarder's PIA method (runtime/
pia_port.py) with fake calls and a fake clock. The same against the fake
API for real: tests/provider/test_pia_install.py, test_pia_port.py."""

from __future__ import annotations

import base64
import json
import os
import stat

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from wgns.admin.forward import format_text
from wgns.admin.store import python_path as REAL_PYTHON
from wgns.cli import app
from wgns.core import pia, x25519
from wgns.core.errors import ConfigError
from wgns.core.installed import load
from wgns.core.paths import helper_path as REAL_HELPER
from wgns.core.pia_http import PIA_CA, PiaError, Refused, context
from wgns.core.record import from_json, shown, to_json
from wgns.runtime.pia_port import BIND_EVERY, RETRY_FIRST, PiaPort

from .conftest import one_error
from .test_forward import FakeClient
from .test_properties import SETTINGS
from .test_render import _system_wide_paths, check_golden, nsswitch, renders_back  # noqa: F401

PASSWORD = "correct horse battery"
SERVER_KEY = "Pt7r+VTb1O41rnoK2YlztUwTcjDRUCucx3VVwHf5hmU="
REGIONS = [pia.Region("de-frankfurt", "DE Frankfurt", True,
                      (pia.Server("203.0.113.7", "frankfurt407"),)),
           pia.Region("swiss", "Switzerland", False, (pia.Server("203.0.113.9", "zurich409"),))]


@pytest.fixture
def api(monkeypatch):
    """PIA's API, patched where wgns would ask the network: what it was asked."""
    asked: list[tuple] = []

    def token(where, user, password):
        asked.append(("token", where.base, user))
        if password != PASSWORD:
            raise Refused("the PIA API (pia.test) refused the login (HTTP 401)")
        return "tok" * 10

    def add_key(server, ca, tok, pub):
        asked.append(("addKey", server.cn, ca))
        return pia.Registration(SERVER_KEY, server.ip, 1337, "10.13.128.1", "10.13.130.7",
                                ("10.0.0.243",))
    monkeypatch.setattr(pia, "token", token)
    monkeypatch.setattr(pia, "regions", lambda where: asked.append(("servers",)) or REGIONS)
    monkeypatch.setattr(pia, "add_key", add_key)
    monkeypatch.setattr(x25519, "generate", lambda: (b"\x11" * 32, b"\x22" * 32))
    return asked


def account(tmp_path, text=f"username=p1234567\npassword={PASSWORD}\n", mode=0o600):
    p = tmp_path / "pia.account"
    p.write_text(text)
    p.chmod(mode)
    return str(p)


def install(root, acct, *more):
    return CliRunner().invoke(app, ["install", "--provider", "pia", "--region", "de-frankfurt",
                                    "--account", acct, "--name", "pia", "--root", str(root),
                                    *more])


def test_golden_install_and_port_forward(api, nsswitch, tmp_path):  # noqa: F811
    (nsswitch / "etc/systemd/system").mkdir(parents=True)
    r = install(nsswitch, account(tmp_path))
    assert r.exit_code == 0, r.output
    assert ("addKey", "frankfurt407", PIA_CA) in api
    r = CliRunner().invoke(app, ["port-forward", "--name", "pia", "--qbittorrent",
                                 "http://127.0.0.1:8080", "--root", str(nsswitch)])
    assert r.exit_code == 0, r.output
    assert "PIA's port forwarding via 10.13.128.1" in r.output
    check_golden("pia", nsswitch)
    renders_back(nsswitch, "pia")
    record = load(str(nsswitch), "pia")
    assert record.forward.method == "pia" and record.forward.gateway == "10.13.128.1"
    assert record.provider.hostname == "frankfurt407" and record.provider.region == "de-frankfurt"
    for p in nsswitch.rglob("*"):
        if p.is_file() and p.name not in ("pia.account", "record.json"):
            assert PASSWORD not in p.read_text() and "toktok" not in p.read_text(), p
    assert stat.S_IMODE((nsswitch / "etc/wgns/pia/pia.account").stat().st_mode) == 0o600
    assert PASSWORD not in json.dumps(shown(record))
    assert "ca_pem" not in shown(record)["provider"]
    assert from_json(to_json(record), record.tunnel, "record.json") == record


def test_a_reinstall_from_a_file_of_a_pia_forwarding_tunnel_is_refused(api, nsswitch,  # noqa: F811
                                                                       tmp_path):
    (nsswitch / "etc/systemd/system").mkdir(parents=True)
    assert install(nsswitch, account(tmp_path)).exit_code == 0
    assert CliRunner().invoke(app, ["port-forward", "--name", "pia", "--root",
                                    str(nsswitch)]).exit_code == 0
    from .conftest import DATA
    r = CliRunner().invoke(app, ["install", "--conf", str(DATA / "protonvpn.conf"),
                                 "--name", "pia", "--root", str(nsswitch)])
    assert "port-forward --off --name pia" in one_error(r)
    r = CliRunner().invoke(app, ["port-forward", "--name", "pia", "--gateway", "10.2.0.1",
                                 "--root", str(nsswitch)])
    assert "leave --gateway out" in one_error(r)


@pytest.mark.parametrize("args, code, expect", [
    (["--provider", "nordvpn", "--region", "x", "--account", "A"], 2, "the provider wgns knows"),
    (["--provider", "pia", "--account", "A"], 2, "needs --region"),
    (["--provider", "pia", "--region", "x"], 2, "needs --account"),
    (["--region", "x"], 2, "--region goes with --provider pia"),
    (["--pia-ca", "x", "--conf", "x"], 2, "--pia-ca goes with --provider pia"),
    (["--provider", "pia", "--region", "x", "--account", "A", "--conf", "c"], 2,
     "--conf cannot be combined with --provider"),
    (["--provider", "pia", "--region", "x", "--account", "A", "--peer", "c"], 2,
     "--peer cannot be combined"),
    (["--provider", "pia", "--region", "atlantis", "--account", "A"], 1,
     "no such region with WireGuard servers (some that exist: de-frankfurt, swiss)"),
    (["--provider", "pia", "--region", "de-frankfurt", "--account", "A", "--pia-api",
      "http://pia.test"], 1, "is not an https:// URL"),
    (["--provider", "pia", "--region", "de-frankfurt", "--account", "A", "--pia-ca",
      "/etc/hostname"], 1, "not a PEM certificate"),
    (["--provider", "pia", "--region", "de-frankfurt", "--account",
      "password=correct horse battery"], 1, "a login line was given where a file goes"),
    # The password alone, typed where the file's path goes: never echoed.
    (["--provider", "pia", "--region", "de-frankfurt", "--account", PASSWORD], 1,
     "--account: no such file (what was given is not shown"),
])
def test_install_refusals(api, tmp_path, args, code, expect):
    root = tmp_path / "root"
    root.mkdir()
    acct = account(tmp_path)
    args = [acct if a == "A" else a for a in args]
    r = CliRunner().invoke(app, ["install", *args, "--root", str(root)])
    line = one_error(r, code)
    assert expect in line and PASSWORD not in line and "correct horse" not in line, line
    assert not list(root.rglob("*"))


@pytest.mark.parametrize("extra,expect", [
    (["--region", "de frankfurt"], "--region 'de frankfurt' is not a PIA region id"),
    (["--region", "../../x"], "is not a PIA region id"),
    (["--region", "swiss\nExecStart=/bin/sh"], "is not a PIA region id"),
])
def test_what_can_be_checked_is_before_the_login_is_sent(api, tmp_path, extra, expect):
    root = tmp_path / "root"
    root.mkdir()
    r = CliRunner().invoke(app, ["install", "--provider", "pia", "--account",
                                 account(tmp_path), *extra, "--root", str(root)])
    line = one_error(r, 1)
    assert expect in line, line
    assert api == [], "PIA was asked before the arguments were checked"
    assert not list(root.rglob("*"))


def test_the_account_file_is_checked(api, tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    for text, mode, expect in (
            (f"username=p1\npassword={PASSWORD}\n", 0o644, "may be read by others (mode 0644)"),
            (f"username=p1\npassword={PASSWORD}\n", 0o640, "may be read by others"),
            (f"user=p1\npassword={PASSWORD}\n", 0o600, "line 1 is not"),
            ("username=p1\npassword=\n", 0o600, "is empty"),
            ("username=p1\npassword=wrong\n", 0o600, "refused the login")):
        r = install(root, account(tmp_path, text, mode))
        line = one_error(r)
        assert expect in line and PASSWORD not in line, line
    p = account(tmp_path)
    os.chown(p, 4242, -1)
    assert "belongs to uid 4242" in one_error(install(root, p))
    assert not list(root.rglob("*"))


def test_the_shipped_authority_is_pias():
    text = open(PIA_CA).read()
    assert text.startswith("-----BEGIN CERTIFICATE-----")
    context(PIA_CA)   # loads
    with pytest.raises(PiaError, match="not a certificate authority"):
        context("/etc/hostname")


@pytest.mark.parametrize("change", [
    {"provider": "nordvpn"}, {"region": "../x"}, {"hostname": "a b"}, {"gateway": "nope"},
    {"server_ip": "10.0.0.1%eth0"}, {"api": "http://x"}, {"account": ["a"]},
    {"account": ["a", "b\nc"]}, {"ca_pem": "hello"}])
def test_a_hostile_provider_in_the_record_is_refused(api, nsswitch, tmp_path, change):  # noqa: F811
    (nsswitch / "etc/systemd/system").mkdir(parents=True)
    assert install(nsswitch, account(tmp_path)).exit_code == 0
    record = load(str(nsswitch), "pia")
    data = json.loads(to_json(record).split("\n", 1)[1])
    data["provider"].update(change)
    with pytest.raises(ConfigError) as e:
        from_json(json.dumps(data), record.tunnel, "record.json")
    assert "\n" not in str(e.value) and PASSWORD not in str(e.value)


# -- PIA's answers, parsed -------------------------------------------------------------


def payload(doc) -> str:
    return base64.b64encode(json.dumps(doc).encode()).decode()


@pytest.mark.parametrize("port", [0, -1, 65536, 1e999, "80", None, True, 80.0, [80]])
def test_a_payload_with_an_odd_port_is_refused_in_one_line(port):
    text = payload({"token": "t", "port": port, "expires_at": "2030-01-01T00:00:00Z"}) \
        .replace("Infinity", "1e999")
    with pytest.raises(PiaError) as e:
        pia.signature_of(text, "c2ln", "gw")
    assert "is not a port from 1 to 65535" in e.value.message and "\n" not in e.value.message


def test_expires_at_as_pia_writes_it():
    assert pia.expires_at("2026-12-07T10:00:00.123456789Z") == pytest.approx(1796637600.123)
    for bad in ("", "tomorrow", "2026-13-99T99:99:99Z", "2026-12-07T10:00:00", 5, None):
        assert pia.expires_at(bad) is None


@settings(**SETTINGS)
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300).map(
    lambda b: base64.b64encode(b).decode()), st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
    max_leaves=12).map(payload)), st.text(max_size=50))
def test_any_payload_is_a_signature_or_one_line_of_error(text, signature):
    try:
        sig = pia.signature_of(text, signature, "gw")
    except PiaError as e:
        assert "\n" not in e.message
    else:
        assert 1 <= sig.port <= 65535


@settings(**SETTINGS)
@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(
        st.sampled_from(["id", "name", "servers", "wg", "ip", "cn", "offline",
                         "port_forward", "x"]), c, max_size=5), max_leaves=20))
def test_any_region_is_a_region_or_left_out(item):
    r = pia._region(item)
    assert r is None or (pia.NAME.fullmatch(r.id) and r.servers
                         and all(pia.NAME.fullmatch(s.cn) for s in r.servers))


@pytest.mark.parametrize("url", ["http://x", "https://", "https://a@b", "https://x/?q",
                                 "https://x:0", "https://x:99999", "https://x\n", "ftp://x"])
def test_pia_api_urls_that_are_not_an_api_base(url):
    with pytest.raises(PiaError):
        pia.check_api(url)


# -- the forwarder's PIA method --------------------------------------------------------


class Calls:
    """PIA's three calls, scripted: the gateway's signed ports."""

    def __init__(self, ports=(47000,), expires=2e9):
        self.ports, self.expires = list(ports), expires
        self.asked: list[str] = []
        self.refuse_bind = 0
        self.fail: PiaError | None = None

    def token(self):
        self.asked.append("token")
        return "secret-token-" + "x" * 20

    def signature(self, tok):
        self.asked.append("getSignature")
        if self.fail:
            raise self.fail
        port = self.ports.pop(0) if len(self.ports) > 1 else self.ports[0]
        doc = {"token": tok, "port": port, "expires_at": "2033-05-18T03:33:20Z"}
        return pia.Signature(payload(doc), "c2lnbmF0dXJl", port, self.expires)

    def bind(self, sig):
        self.asked.append("bindPort")
        if self.refuse_bind:
            self.refuse_bind -= 1
            raise Refused("PIA gateway 10.13.128.1 (bindPort) refused port "
                          f"{sig.port}: payload expired")


class Clock:
    now = 0.0


def port(tmp_path, calls, clients=()):
    logs: list[str] = []
    clock = Clock()
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    out = tmp_path / "run"
    out.mkdir(exist_ok=True)
    fw = PiaPort("pia", "10.13.128.1", calls, list(clients), out, state,
                 clock=lambda: clock.now, wall=lambda: 1_700_000_000 + clock.now,
                 sleep=lambda s: None, log=logs.append, secrets=(PASSWORD,))
    return fw, logs, clock


def test_a_signed_port_is_bound_kept_and_survives_a_restart(tmp_path):
    calls = Calls()
    fw, logs, clock = port(tmp_path, calls)
    assert fw.step() == BIND_EVERY
    assert calls.asked == ["token", "getSignature", "bindPort"]
    assert fw.port == 47000 and (tmp_path / "run/forwarded-port").read_text() == "47000\n"
    kept = tmp_path / "state/pia-signature.json"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert json.loads(kept.read_text())["gateway"] == "10.13.128.1"
    state = json.loads((tmp_path / "run/forward.json").read_text())
    assert state["method"] == "pia" and state["port"] == 47000 and state["error"] is None
    clock.now += BIND_EVERY
    assert fw.step() == BIND_EVERY and calls.asked[3:] == ["bindPort"]
    again = Calls(ports=(51000,))    # a restart: the kept signature, the same port
    fw2, _, _ = port(tmp_path, again)
    fw2.step()
    assert again.asked == ["bindPort"] and fw2.port == 47000
    assert not any("secret-token" in line or "eyJ" in line for line in logs), logs


def test_a_refused_bind_gets_a_new_token_and_signature_with_back_off(tmp_path):
    calls = Calls(ports=(47000, 48000))
    fw, logs, clock = port(tmp_path, calls)
    fw.step()
    calls.refuse_bind = 1
    assert fw.step() == RETRY_FIRST
    assert "payload expired" in fw.error and not (tmp_path / "state/pia-signature.json").exists()
    assert fw.step() == BIND_EVERY
    assert calls.asked[-3:] == ["token", "getSignature", "bindPort"] and fw.port == 48000
    assert any("forwarded port 48000" in line and "was 47000" in line for line in logs)


def test_odd_ports_and_garbage_are_one_line_and_back_off(tmp_path):
    calls = Calls()
    calls.fail = PiaError("PIA gateway 10.13.128.1 (getSignature): the payload's port (inf) "
                          "is not a port from 1 to 65535")
    fw, logs, clock = port(tmp_path, calls)
    waits = [fw.step() for _ in range(8)]
    assert waits[:4] == [10.0, 20.0, 40.0, 80.0] and max(waits) == 600.0
    assert fw.port is None and "is not a port" in fw.error
    assert not (tmp_path / "run/forwarded-port").exists()
    assert len([line for line in logs if "is not a port" in line]) == 1   # said once
    calls.fail = None
    assert fw.step() == BIND_EVERY and fw.port == 47000 and fw.error is None


def test_an_expiring_signature_is_replaced_before_it_runs_out(tmp_path):
    calls = Calls(ports=(47000, 49000), expires=1_700_000_000 + 3600)
    fw, logs, _ = port(tmp_path, calls)
    fw.step()
    fw.step()
    assert calls.asked == ["token", "getSignature", "bindPort", "getSignature", "bindPort"]
    assert any("expires soon" in line for line in logs)


def test_a_kept_signature_that_is_garbage_or_another_gateways_is_not_used(tmp_path):
    (tmp_path / "state").mkdir()
    kept = tmp_path / "state/pia-signature.json"
    for text in ("{", json.dumps({"gateway": "10.9.9.9", "payload": payload({"port": 5}),
                                  "signature": "x"}),
                 json.dumps({"gateway": "10.13.128.1", "payload": payload({"port": 0}),
                             "signature": "x"})):
        kept.write_text(text)
        calls = Calls()
        fw, logs, _ = port(tmp_path, calls)
        fw.step()
        assert calls.asked == ["token", "getSignature", "bindPort"] and fw.port == 47000


def test_the_clients_follow_the_pia_port(tmp_path):
    client = FakeClient(6881)
    fw, _, _ = port(tmp_path, Calls(), [client])
    fw.sync.start()
    try:
        fw.step()
        import time
        deadline = time.monotonic() + 5
        while client.listen != 47000 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        fw.sync.stop()
    assert client.listen == 47000


def test_status_text_of_a_pia_port():
    st_ = {"method": "pia", "port": 47000, "renewed_age": 5, "gateway": "10.13.128.1",
           "external_address": None, "error": None, "clients": []}
    assert format_text(st_)[0] == "  forwarded port: 47000 (TCP+UDP), bound 5 s ago via " \
        "10.13.128.1"
    assert format_text({**st_, "port": None})[0] == \
        "  forwarded port: none yet (PIA via 10.13.128.1)"


def test_uninstall_removes_the_kept_signature(api, nsswitch, tmp_path):  # noqa: F811
    (nsswitch / "etc/systemd/system").mkdir(parents=True)
    assert install(nsswitch, account(tmp_path)).exit_code == 0
    kept = nsswitch / "var/lib/private/wgns/pia/pia-signature.json"
    kept.parent.mkdir(parents=True)
    kept.write_text("{}")
    (nsswitch / "var/lib/wgns").mkdir(parents=True)
    (nsswitch / "var/lib/wgns/pia").symlink_to("../private/wgns/pia")   # as systemd links it
    r = CliRunner().invoke(app, ["uninstall", "--name", "pia", "--root", str(nsswitch)])
    assert r.exit_code == 0, r.output
    assert not kept.parent.exists() and not (nsswitch / "etc/wgns/pia").exists()
    assert not os.path.lexists(nsswitch / "var/lib/wgns/pia")


def test_the_pia_units_verify_without_a_warning(api, tmp_path, monkeypatch):
    """systemd-analyze verify of the PIA tunnel's units, the forwarding
    unit with its credentials and state directory among them."""
    import shutil
    import subprocess

    from .harness.ci import tier_unavailable
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        tier_unavailable("systemd-analyze is not installed (Debian package systemd)")
    from wgns.admin import store
    from wgns.core import paths
    monkeypatch.setattr(store, "python_path", REAL_PYTHON)   # not the goldens' paths
    monkeypatch.setattr(paths, "helper_path", REAL_HELPER)
    root = tmp_path / "root"
    units = root / "etc/systemd/system"
    units.mkdir(parents=True)
    assert install(root, account(tmp_path)).exit_code == 0
    r = CliRunner().invoke(app, ["port-forward", "--name", "pia", "--transmission",
                                 "http://127.0.0.1:9091/transmission/rpc", "--root", str(root)])
    assert r.exit_code == 0, r.output
    env = dict(os.environ, SYSTEMD_UNIT_PATH=f"{units}:", SYSTEMD_LOG_LEVEL="notice")
    p = subprocess.run([analyze, "verify", "--man=no", "pia.service", "netns@pia.service",
                        "wgns-pia-forward.service"], env=env, capture_output=True, text=True)
    assert p.returncode == 0 and not (p.stdout + p.stderr).strip(), p.stdout + p.stderr


def test_status_and_check_of_a_pia_port(api, tmp_path, monkeypatch):
    from wgns.admin.check import _forward_check
    from wgns.core import forward_state, paths
    root = tmp_path / "root"
    (root / "etc/systemd/system").mkdir(parents=True)
    assert install(root, account(tmp_path)).exit_code == 0
    assert CliRunner().invoke(app, ["port-forward", "--name", "pia", "--root",
                                    str(root)]).exit_code == 0
    run = tmp_path / "run"
    (run / "pia").mkdir(parents=True)
    monkeypatch.setattr(paths, "RUN_DIR", str(run))

    class SD:
        def active_state(self, unit):
            return "active"
    import time
    for age, ok in ((600, True), (1100, True), (1300, False)):
        (run / "pia/forward.json").write_text(json.dumps(
            {"port": 47000, "gateway": "10.13.128.1", "renewed": time.time() - age,
             "method": "pia", "error": None, "clients": []}))
        st_ = forward_state.state(load(str(root), "pia"), SD())
        assert st_["method"] == "pia" and st_["port"] == 47000
        check = _forward_check(load(str(root), "pia"), SD())
        assert check.ok is ok, check
    assert "not renewed for over 20 minutes" in check.detail


@settings(**SETTINGS)
@given(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}", fullmatch=True),
       st.one_of(st.none(), st.from_regex(r"https://[a-z0-9.-]{1,30}(:[1-9][0-9]{0,3})?",
                                          fullmatch=True)))
def test_pia_settings_round_trip_through_forward_conf(name, api_base):
    from wgns.core import portconf
    s = portconf.Settings("10.13.128.1", pia=name, pia_api=api_base,
                          qbittorrent="http://127.0.0.1:8080")
    assert portconf.parse(portconf.render(s, "# header"), "f") == s


@pytest.mark.parametrize("text", [
    "pia=frankfurt407\nstatic=5\n", "gateway=10.0.0.1\npia=a b\n",
    "gateway=10.0.0.1\npia=x\npia_api=http://x\n", "gateway=10.0.0.1\npia_api=https://x\n",
    "gateway=10.0.0.1\npia=../x\n"])
def test_forward_conf_with_odd_pia_lines_is_refused(text):
    from wgns.core import portconf
    from wgns.core.errors import WgnsError
    with pytest.raises(WgnsError) as e:
        portconf.parse(text, "forward.conf")
    assert "\n" not in e.value.message


def test_status_text_names_the_pia_region_and_server(api, tmp_path):
    from wgns.admin.status import format_text as status_text
    root = tmp_path / "root"
    (root / "etc/systemd/system").mkdir(parents=True)
    assert install(root, account(tmp_path)).exit_code == 0
    st_ = {"name": "pia", "unit": "pia.service", "state": "active", "implementation": None,
           "namespace": None, "interface": None, "peers": [], "dns": [], "search": [],
           "confined": [], "exposed": [], "record": shown(load(str(root), "pia"))}
    text = status_text(st_)
    assert "  provider: PIA, region de-frankfurt, server frankfurt407 (203.0.113.7)" in text
    assert PASSWORD not in text


def test_a_name_that_clashes_is_refused_before_pia_is_asked(api, tmp_path):
    root = tmp_path / "root"
    (root / "usr/lib/systemd/system").mkdir(parents=True)
    (root / "usr/lib/systemd/system/pia.service").write_text("[Service]\nExecStart=/bin/true\n")
    line = one_error(install(root, account(tmp_path)))
    assert "/usr/lib/systemd/system/pia.service exists and is not wgns's" in line
    assert api == []    # no token asked, no key registered


@settings(**SETTINGS)
@given(st.text(max_size=80))
def test_any_pia_api_url_is_an_https_base_or_one_line_of_error(url):
    try:
        got = pia.check_api(url)
    except PiaError as e:
        assert "\n" not in e.message
    else:
        assert got.startswith("https://") and not got.endswith("/")

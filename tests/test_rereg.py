"""Registering again with PIA when it forgot the key (runtime/rereg.py),
with PIA's API patched at its boundary (core/pia.py's calls, as in
test_pia.py), the WireGuard device and systemd replaced: when the watcher
registers again, what it writes (what install would write), its back-off,
nothing written on any refusal or hostile answer, and never a secret in
its line. The same against the fake API and a real wireguard-go:
tests/provider/test_pia_reregister.py."""

from __future__ import annotations

import base64
import os

import pytest
from typer.testing import CliRunner

from wgns.cli import app
from wgns.core import pia, restore, wireguard, x25519
from wgns.core.installed import load
from wgns.core.pia_http import PiaError, Refused
from wgns.runtime import heal, rereg

from .test_pia import PASSWORD, SERVER_KEY, account, api, install  # noqa: F401
from .test_render import nsswitch, renders_back  # noqa: F401

NEW_KEY = "Hx0q3C5l7c1mG0n6Zg2l0cX8b1t0H0y8fXc9o0V0m0E="
NOW = 1_800_000_000.0


class FakeSystemd:
    def __init__(self, up_for: float = 100.0) -> None:
        self.up_for = up_for
        self.restarted: list[str] = []
        self.states = {"pia.service": "active", "qbittorrent.service": "active"}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def active_for(self, unit):
        return self.up_for

    def active_state(self, unit):
        return self.states.get(unit, "inactive")

    def jobs(self, unit):
        return []

    def restart_if_running(self, unit):
        self.restarted.append(unit)


def tree(root) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


@pytest.fixture
def tunnel(api, nsswitch, tmp_path, monkeypatch):  # noqa: F811
    """A PIA tunnel installed below a root, forwarding a port by PIA's
    method; its device with one peer that never had a handshake."""
    (nsswitch / "etc/systemd/system").mkdir(parents=True)
    assert install(nsswitch, account(tmp_path)).exit_code == 0
    r = CliRunner().invoke(app, ["port-forward", "--name", "pia", "--qbittorrent",
                                 "http://127.0.0.1:8080", "--root", str(nsswitch)])
    assert r.exit_code == 0, r.output
    monkeypatch.setattr(rereg, "ROOT", str(nsswitch))
    monkeypatch.setattr(restore, "RESTORE_DIR", str(tmp_path / "run"))
    peer = wireguard.PeerInfo(SERVER_KEY, "203.0.113.7:1337", None, keepalive=25)
    monkeypatch.setattr(wireguard, "device_info",
                        lambda name: wireguard.DeviceInfo("kernel", None, [peer]))
    # The second registration: another key, the region's second server.
    servers = (pia.Server("203.0.113.7", "frankfurt407"), pia.Server("203.0.113.8",
                                                                      "frankfurt408"))
    regions = [pia.Region("de-frankfurt", "DE Frankfurt", True, servers)]
    monkeypatch.setattr(pia, "regions", lambda where: api.append(("servers",)) or regions)

    def add_key(server, ca, tok, pub):
        api.append(("addKey", server.cn, ca, pub))
        if server.cn == "frankfurt407":
            raise PiaError("PIA server frankfurt407 (203.0.113.7, addKey) answered HTTP 503")
        return pia.Registration(NEW_KEY, server.ip, 1337, "10.13.129.1", "10.13.131.9",
                                ("10.0.0.242",))
    monkeypatch.setattr(pia, "add_key", add_key)
    monkeypatch.setattr(x25519, "generate", lambda: (b"\x33" * 32, b"\x44" * 32))
    return nsswitch, peer


def test_when_the_key_looks_refused():
    peer = wireguard.PeerInfo(SERVER_KEY, None, None, keepalive=25)
    assert rereg.refused(peer, 44, NOW) is None          # give it time first
    assert "no handshake in 46 s" in rereg.refused(peer, 46, NOW)
    peer.latest_handshake = int(NOW - 100)
    assert rereg.refused(peer, 3600, NOW) is None        # recent enough
    peer.latest_handshake = int(NOW - 181)
    assert "181 s ago although keepalive is on" in rereg.refused(peer, 3600, NOW)
    peer.keepalive = None                                # quiet without keepalive: no sign
    assert rereg.refused(peer, 3600, NOW) is None


def test_the_back_off_doubles_up_to_its_ceiling():
    assert [rereg.wait(n) for n in range(7)] == [0, 120, 240, 480, 960, 1800, 1800]
    assert rereg.wait(10 ** 6) == 1800


def test_a_refused_key_is_registered_again_and_written_as_install_would(tunnel, api):  # noqa: F811
    root, _ = tunnel
    before = load(str(root), "pia")
    sd = FakeSystemd()
    lines = rereg.look(sd, "pia", now=NOW + 0.7)
    assert len(lines) == 1 and lines[0].isprintable(), lines
    assert lines[0].startswith("pia: no handshake in 100 s since the link came up; "
                               "registering a new key with PIA (attempt 1): registered with "
                               "frankfurt408 (203.0.113.8): restarting pia.service"), lines
    assert sd.restarted == ["pia.service"]
    ca = str(root / "etc/wgns/pia/pia-ca.crt")   # the authority install wrote, pinned
    assert [a[:3] for a in api if a[0] == "addKey"][-2:] == [
        ("addKey", "frankfurt407", ca), ("addKey", "frankfurt408", ca)]
    after = load(str(root), "pia")
    assert after.tunnel.private_key.reveal() == base64.b64encode(b"\x33" * 32).decode()
    assert after.tunnel.peers[0].public_key == NEW_KEY
    assert str(after.tunnel.peers[0].endpoint) == "203.0.113.8:1337"
    assert str(after.tunnel.addresses[0]) == "10.13.131.9/32"
    assert (after.provider.hostname, after.provider.server_ip, after.provider.gateway) == (
        "frankfurt408", "203.0.113.8", "10.13.129.1")
    assert after.forward.gateway == "10.13.129.1"   # PIA's forwarding follows the server
    assert after.provider.account == before.provider.account
    assert after.confined == before.confined and after.python == before.python
    renders_back(root, "pia")   # every file is what install renders from that record
    assert "10.0.0.242" in (root / "etc/wgns/pia/resolv.conf").read_text()
    assert not [p for p in root.rglob("*wgns-tmp*")]
    for secret in (PASSWORD, before.tunnel.private_key.reveal(),
                   after.tunnel.private_key.reveal(), "toktok"):
        assert secret not in lines[0]
    # The next look finds a handshake since (in the same whole second, as
    # WireGuard counts): the back-off is forgotten.
    tunnel[1].latest_handshake = int(NOW + 0.9)
    assert rereg.look(sd, "pia", now=NOW + 60) == []
    assert rereg.attempts("pia") == (0, 0.0)


def test_the_restore_list_names_the_running_confined_units(tunnel, monkeypatch):
    root, _ = tunnel
    record = load(str(root), "pia").change(confined=("qbittorrent.service",))
    monkeypatch.setattr(rereg, "load", lambda r, n: record)
    written = {}
    import wgns.core.files
    monkeypatch.setattr(wgns.core.files, "write_all",
                        lambda r, plan, last: written.update(plan))
    line = rereg.look(FakeSystemd(), "pia", now=NOW)[0]
    assert "restarting pia.service and with it qbittorrent.service; next attempt" in line
    assert restore.read("pia") == ["qbittorrent.service"]
    assert "/etc/wgns/pia.conf" in written


def hostile(kind):
    def fail(*args, **kwargs):
        raise {"login": Refused("the PIA API (pia.test) refused the login (HTTP 401)"),
               "garbage": PiaError("the PIA server list (pia.test) answered something other "
                                   "than JSON"),
               "slow": PiaError("the PIA API (pia.test) did not answer within 10 s"),
               "redirect": PiaError("the PIA API (pia.test) answered with a redirect (HTTP "
                                    "302); wgns does not follow it")}[kind]
    return fail


@pytest.mark.parametrize("kind, where, expect", [
    ("login", "token", "refused the login (HTTP 401) (check the account"),
    ("garbage", "regions", "answered something other than JSON"),
    ("slow", "token", "did not answer within 10 s"),
    ("redirect", "token", "answered with a redirect"),
    ("gone", "regions", "no region de-frankfurt with WireGuard servers any more"),
    ("refused", "add_key", "refused the token"),
    ("busy", "add_key", "answered HTTP 503 (and 1 more of the region's servers)"),
])
def test_a_hostile_answer_is_one_line_nothing_written_and_a_back_off(tunnel, monkeypatch,
                                                                     kind, where, expect):
    root, _ = tunnel
    if kind == "gone":
        monkeypatch.setattr(pia, "regions", lambda where: [
            pia.Region("swiss", "CH", False, (pia.Server("203.0.113.9", "zurich409"),))])
    elif kind == "refused":
        monkeypatch.setattr(pia, "add_key", hostile("login") if False else (
            lambda *a: (_ for _ in ()).throw(Refused("PIA server frankfurt407 (203.0.113.7, "
                                                     "addKey) refused the token"))))
    elif kind == "busy":
        monkeypatch.setattr(pia, "add_key", lambda server, *a: (_ for _ in ()).throw(PiaError(
            f"PIA server {server.cn} ({server.ip}, addKey) answered HTTP 503")))
    else:
        monkeypatch.setattr(pia, where, hostile(kind))
    files = tree(root)
    sd = FakeSystemd()
    lines = rereg.look(sd, "pia", now=NOW)
    assert len(lines) == 1 and lines[0].isprintable() and expect in lines[0], lines
    assert "not registered" in lines[0] and "next attempt after 120 s" in lines[0]
    assert PASSWORD not in lines[0] and "toktok" not in lines[0]
    assert tree(root) == files and sd.restarted == []
    assert rereg.look(sd, "pia", now=NOW + 60) == []          # backing off: not asked
    lines = rereg.look(sd, "pia", now=NOW + 121)              # then once more
    assert len(lines) == 1 and "(attempt 2)" in lines[0] and "after 240 s" in lines[0]
    assert rereg.look(sd, "pia", now=NOW + 121 + 200) == []
    assert tree(root) == files and sd.restarted == []


def test_a_password_the_api_echoes_never_reaches_the_journal(tunnel, monkeypatch):
    root, _ = tunnel
    monkeypatch.setattr(pia, "token", lambda *a: (_ for _ in ()).throw(PiaError(
        f"the PIA API answered HTTP 500: {PASSWORD}\n\x1b[2J")))
    line, = rereg.look(FakeSystemd(), "pia", now=NOW)
    assert PASSWORD not in line and "\n" not in line and "\x1b" not in line and \
        "(hidden)" in line


def test_a_healthy_young_or_other_tunnel_is_never_registered_again(tunnel, api, tmp_path,  # noqa: F811
                                                                   monkeypatch):
    root, peer = tunnel
    asked = len(api)
    assert rereg.look(FakeSystemd(up_for=30), "pia", now=NOW) == []   # just came up
    peer.latest_handshake = int(NOW - 60)
    assert rereg.look(FakeSystemd(up_for=4000), "pia", now=NOW) == []
    peer.latest_handshake = int(NOW - 4000)
    peer.keepalive = None
    assert rereg.look(FakeSystemd(up_for=4000), "pia", now=NOW) == []
    assert len(api) == asked and not (tmp_path / "run/pia.register").exists()
    monkeypatch.setattr(rereg, "load", lambda r, n: load(str(root), "pia").change(
        provider=None))
    peer.keepalive, peer.latest_handshake = 25, None
    assert rereg.look(FakeSystemd(), "pia", now=NOW) == []    # not made through PIA
    assert len(api) == asked


def test_a_command_that_changed_the_record_meanwhile_wins(tunnel, monkeypatch):
    root, _ = tunnel
    real = pia.token

    def token(*args):   # while PIA is asked, the admin turns forwarding off
        r = CliRunner().invoke(app, ["port-forward", "--off", "--name", "pia", "--root",
                                     str(root)])
        assert r.exit_code == 0, r.output
        return real(*args)
    monkeypatch.setattr(pia, "token", token)
    files = tree(root)
    sd = FakeSystemd()
    line, = rereg.look(sd, "pia", now=NOW)
    assert "its record changed meanwhile" in line and sd.restarted == []
    assert tree(root) != files and load(str(root), "pia").forward is None
    assert load(str(root), "pia").provider.hostname == "frankfurt407"


def test_the_watchers_look_asks_for_it(tunnel, monkeypatch):
    """heal.look asks rereg at a healthy tunnel, and says it is moving."""
    root, _ = tunnel
    monkeypatch.setattr(heal, "link_problem", lambda name: None)
    monkeypatch.setattr(heal, "reresolve", lambda tunnel: [])
    monkeypatch.setattr(heal, "load_tunnel", lambda root, name: None)
    sd = FakeSystemd()
    import wgns.core.systemd
    monkeypatch.setattr(wgns.core.systemd, "Systemd", lambda: sd)
    lines, healthy = heal.look("pia", boot_check=False)
    assert healthy is None and len(lines) == 1 and "restarting pia.service" in lines[0]


def test_a_watcher_that_may_not_write_says_so_in_one_line(tunnel, monkeypatch):
    """A watcher of an earlier unit (no ReadWritePaths=/etc/wgns): staging
    the first file fails, nothing is replaced, nothing restarted."""
    import errno

    import wgns.core.files
    root, _ = tunnel
    files = tree(root)

    real = wgns.core.files.stage

    def read_only(dest, item):   # /etc below the root read-only; /run writable
        if str(dest).startswith(str(root)):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        return real(dest, item)
    monkeypatch.setattr(wgns.core.files, "stage", read_only)
    sd = FakeSystemd()
    line, = rereg.look(sd, "pia", now=NOW)
    assert "not registered: Read-only file system; next attempt after 120 s" in line
    assert tree(root) == files and sd.restarted == [] and not restore.read("pia")


def test_a_tunnel_installed_again_meanwhile_wins(tunnel, api, tmp_path, monkeypatch):  # noqa: F811
    """The record the same, the tunnel not (its file changed by hand)."""
    root, _ = tunnel
    real = pia.token

    def token(*args):
        conf = root / "etc/wgns/pia.conf"
        conf.write_text(conf.read_text().replace("Address = 10.13.130.7/32",
                                                 "Address = 10.13.130.8/32"))
        return real(*args)
    monkeypatch.setattr(pia, "token", token)
    files = tree(root)
    files["etc/wgns/pia.conf"] = files["etc/wgns/pia.conf"].replace(b"130.7/", b"130.8/")
    sd = FakeSystemd()
    line, = rereg.look(sd, "pia", now=NOW)
    assert "changed meanwhile" in line and sd.restarted == [] and tree(root) == files

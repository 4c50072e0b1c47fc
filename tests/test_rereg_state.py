"""The watcher's runtime state for registering again (rereg.py): a
/run/wgns/NAME.register that is forged, corrupt or from another clock
never breaks a look, never stops the attempts for good and never makes
them tight; the state goes with the tunnel at uninstall."""

from __future__ import annotations

import os

import pytest

from wgns.core import restore
from wgns.runtime import rereg

from .test_pia import account, api  # noqa: F401
from .test_render import nsswitch, renders_back  # noqa: F401
from .test_rereg import NOW, FakeSystemd, tunnel  # noqa: F401


def forge(tmp_path, text: str | bytes) -> None:
    (tmp_path / "run").mkdir(exist_ok=True)
    p = tmp_path / "run/pia.register"
    p.write_bytes(text if isinstance(text, bytes) else text.encode())


CORRUPT = ["1 inf", "1 nan", "3 -inf", "2 1e400", "-1000000 0", "0 5", "1 -5", "1 2 3",
           "9" * 5000 + " 1", b"\x00\xff\xfe", "1 " + "1" * 200, ""]


@pytest.mark.parametrize("text", CORRUPT)
def test_a_corrupt_register_file_never_breaks_the_look_of_a_healthy_tunnel(
        tunnel, tmp_path, text):  # noqa: F811
    _, peer = tunnel
    forge(tmp_path, text)
    peer.latest_handshake = int(NOW - 10)      # healthy: shaking hands
    assert rereg.look(FakeSystemd(up_for=4000), "pia", now=NOW) == []


@pytest.mark.parametrize("text", CORRUPT)
def test_a_corrupt_register_file_is_one_attempt_then_the_back_off(
        tunnel, tmp_path, text):  # noqa: F811
    forge(tmp_path, text)
    sd = FakeSystemd()
    line, = rereg.look(sd, "pia", now=NOW)
    assert "(attempt 1)" in line and "next attempt after 120 s" in line, line
    assert rereg.attempts("pia") == (1, NOW)
    assert rereg.look(sd, "pia", now=NOW + 3) == []     # no tight loop after it
    assert rereg.look(sd, "pia", now=NOW + 60) == []


def test_an_attempt_dated_in_the_future_holds_the_back_off_from_now_and_ends(
        tunnel, tmp_path):  # noqa: F811
    """The clock was ahead at the last attempt (no RTC, NTP set it back):
    neither a back-off of a year nor one that a handshake cannot end."""
    _, peer = tunnel
    forge(tmp_path, f"1 {NOW + 365 * 86400}\n")
    sd = FakeSystemd()
    assert rereg.look(sd, "pia", now=NOW) == []                # backing off, from now
    line, = rereg.look(sd, "pia", now=NOW + 121)
    assert "(attempt 2)" in line, line
    forge(tmp_path, f"1 {NOW + 365 * 86400}\n")
    assert rereg.look(sd, "pia", now=NOW) == []
    peer.latest_handshake = int(NOW + 5)                       # a handshake since: it works
    assert rereg.look(sd, "pia", now=NOW + 6) == []
    assert rereg.attempts("pia") == (0, 0.0)


def test_uninstall_forgets_the_attempts(tmp_path, monkeypatch):
    """A tunnel installed later under the name starts from zero, not from
    the back-off of the one before (uninstall's restore.clear_all)."""
    monkeypatch.setattr(restore, "RESTORE_DIR", str(tmp_path))
    rereg.set_attempts("pia", 6, NOW)
    assert rereg.attempts("pia") == (6, NOW)
    restore.clear_all("pia")
    assert rereg.attempts("pia") == (0, 0.0) and not os.listdir(tmp_path)


def register_now(monkeypatch, capsys, sd) -> tuple[int, str, str]:
    import wgns.core.systemd
    from wgns import helper
    monkeypatch.setattr(wgns.core.systemd, "Systemd", lambda: sd)
    rc = helper.main(["register", "pia"])
    out, err = capsys.readouterr()
    return rc, out, err


def test_helper_register_fails_when_nothing_was_registered(tunnel, monkeypatch,  # noqa: F811
                                                           capsys):
    """`helper.py register NAME` (a human, a check): exit 1 when PIA
    refused or nothing was written, with the line on stderr."""
    from wgns.core import pia
    from wgns.core.pia_http import Refused

    def refuse(*a):
        raise Refused("the PIA API (pia.test) refused the login (HTTP 401)")
    monkeypatch.setattr(pia, "token", refuse)
    sd = FakeSystemd()
    rc, out, err = register_now(monkeypatch, capsys, sd)
    assert rc == 1 and out == "" and "not registered: " in err and "refused the login" in err
    assert sd.restarted == []


def test_helper_register_succeeds_when_registered(tunnel, monkeypatch, capsys):  # noqa: F811
    sd = FakeSystemd()
    rc, out, err = register_now(monkeypatch, capsys, sd)
    assert rc == 0 and "registered with frankfurt408" in out and err == "", (out, err)
    assert sd.restarted == ["pia.service"]


@pytest.mark.parametrize("what", ["symlink", "file"])
def test_a_tunnel_directory_that_is_not_a_directory_never_fails_the_look(tunnel, what):  # noqa: F811
    """/etc/wgns/NAME a link (moved elsewhere by hand) or a file: the
    question is not asked (nothing would be written there anyway), and the
    watcher's look at the tunnel goes on (heal.look: no fault every 5 s)."""
    root, _ = tunnel
    d = root / "etc/wgns/pia"
    moved = root / "elsewhere"
    d.rename(moved)
    if what == "symlink":
        d.symlink_to(moved)
    else:
        d.write_text("x")
    assert rereg.look(FakeSystemd(), "pia", now=NOW) == []


class Killed(BaseException):
    """The watcher killed (SIGKILL, power loss) between two renames."""


def test_a_watcher_killed_between_two_renames_leaves_a_state_that_heals(tunnel, tmp_path,  # noqa: F811
                                                                         monkeypatch):
    """Killed after some files of the new registration were renamed into
    place: the tunnel's file (its key) is still the old one, so the key
    still looks refused and the next attempt writes every file; never a
    working new key beside a record (server, gateway) of the old one."""
    import wgns.core.files
    root, _ = tunnel
    conf = (root / "etc/wgns/pia.conf").read_bytes()
    real, renamed = os.replace, []

    def replace(src, dst):
        if "/etc/wgns" in str(dst):
            if renamed:
                raise Killed
            renamed.append(str(dst))
        real(src, dst)
    monkeypatch.setattr(wgns.core.files.os, "replace", replace)
    with pytest.raises(Killed):
        rereg.look(FakeSystemd(), "pia", now=NOW)
    assert (root / "etc/wgns/pia.conf").read_bytes() == conf, renamed
    monkeypatch.setattr(wgns.core.files.os, "replace", real)
    for p in root.rglob("*wgns-tmp*"):   # what the admin's writer clears
        p.unlink()
    line, = rereg.look(FakeSystemd(), "pia", now=NOW + 121)
    assert "(attempt 2): registered with frankfurt408" in line, line
    renders_back(root, "pia")


def test_a_watcher_stopped_while_it_renames_renames_every_file_first(tunnel, monkeypatch):  # noqa: F811
    """SIGTERM (systemctl stop, a restart of the watcher) between two
    renames: it is held until every file is in place, then delivered."""
    import signal

    import wgns.core.files
    root, _ = tunnel
    real = os.replace

    def replace(src, dst):
        if "/etc/wgns" in str(dst):
            os.kill(os.getpid(), signal.SIGTERM)
        real(src, dst)

    def die(signum, frame):
        raise Killed
    old = signal.signal(signal.SIGTERM, die)
    try:
        monkeypatch.setattr(wgns.core.files.os, "replace", replace)
        with pytest.raises(Killed):
            rereg.look(FakeSystemd(), "pia", now=NOW)
    finally:
        signal.signal(signal.SIGTERM, old)
    assert signal.getsignal(signal.SIGTERM) == old
    from wgns.core.installed import load
    assert load(str(root), "pia").provider.hostname == "frankfurt408"
    assert "Hx0q3C5l" in (root / "etc/wgns/pia.conf").read_text()
    renders_back(root, "pia")


def test_a_stopped_tunnel_gets_the_new_key_and_stays_stopped(tunnel, monkeypatch,  # noqa: F811
                                                             capsys, tmp_path):
    """Stopped by the admin (before or while PIA was asked): the files are
    written, nothing is restarted, no restore file, and the line does not
    say it restarts the tunnel."""
    sd = FakeSystemd()
    sd.states = {"pia.service": "inactive"}
    rc, out, err = register_now(monkeypatch, capsys, sd)
    assert rc == 0 and "registered with frankfurt408" in out, (out, err)
    assert "restarting" not in out and "pia.service is stopped" in out, out
    assert sd.restarted == [] and not (tmp_path / "run/pia.restore").exists()


def test_a_clock_set_forward_after_the_tunnel_came_up_is_not_a_refused_key():
    """A board without a real-time clock boots on yesterday's time, the
    tunnel shakes hands, then NTP sets the clock a day forward: the
    handshake looks a day old, but none can be older than the link. The
    key counts as refused only once the link has been up STALE_AFTER
    without a newer one (keepalive renews it every two minutes)."""
    from wgns.core import wireguard
    peer = wireguard.PeerInfo("k", None, int(NOW - 86400), keepalive=25)
    assert rereg.refused(peer, 60, NOW) is None
    assert rereg.refused(peer, 170, NOW) is None
    assert "although keepalive is on" in rereg.refused(peer, 200, NOW)


def test_a_rename_that_fails_leaves_no_staged_copy_of_the_key(tunnel, monkeypatch):  # noqa: F811
    """A rename refused half way (EIO, a file made immutable): the line
    says why, and no staged file (one holds the new private key) is left
    behind in /etc/wgns."""
    import errno

    import wgns.core.files
    root, _ = tunnel
    real, renamed = os.replace, []

    def replace(src, dst):
        if "/etc/wgns" in str(dst):
            if renamed:
                raise OSError(errno.EPERM, os.strerror(errno.EPERM))
            renamed.append(dst)
        real(src, dst)
    monkeypatch.setattr(wgns.core.files.os, "replace", replace)
    sd = FakeSystemd()
    line, = rereg.look(sd, "pia", now=NOW)
    assert "not registered: Operation not permitted" in line and sd.restarted == []
    assert not list(root.rglob("*wgns-tmp*"))


def test_a_slow_pia_keeps_no_other_tunnel_waiting(tunnel, monkeypatch):  # noqa: F811
    """PIA asked in a thread of its own: a look waits for it a moment at
    most (each call may take 10 s, five of them in an attempt), so the
    watcher's one loop goes on looking at every other tunnel; a later look
    writes what came back, and no second attempt starts meanwhile."""
    import threading
    import time

    import wgns.core.systemd
    from wgns.core import pia
    from wgns.runtime import heal
    go, real = threading.Event(), pia.token

    def slow(*args):
        go.wait(30)
        return real(*args)
    monkeypatch.setattr(pia, "token", slow)
    sd = FakeSystemd()
    began = time.monotonic()
    assert rereg.look(sd, "pia", now=NOW) == []
    assert time.monotonic() - began < 5 and rereg.asking("pia")
    assert rereg.look(sd, "pia", now=NOW + 200) == [] and rereg.attempts("pia")[0] == 1
    monkeypatch.setattr(heal, "link_problem", lambda name: None)   # heal: look again soon
    monkeypatch.setattr(heal, "reresolve", lambda tunnel: [])
    monkeypatch.setattr(heal, "load_tunnel", lambda root, name: None)
    monkeypatch.setattr(wgns.core.systemd, "Systemd", lambda: sd)
    assert heal.look("pia", boot_check=False) == ([], None)
    go.set()
    deadline = time.monotonic() + 10
    lines: list[str] = []
    while not lines and time.monotonic() < deadline:
        time.sleep(0.05)
        lines = rereg.look(sd, "pia", now=NOW + 203)
    line, = lines
    assert "(attempt 1): registered with frankfurt408" in line and sd.restarted == [
        "pia.service"] and not rereg.asking("pia")

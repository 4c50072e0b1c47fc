"""Private Internet Access under a hostile reviewer's inputs (review4): an
API that trickles its TLS handshake past the deadline, a --pia-ca file
with Windows line ends, and the rest of what install accepts loading back.
Everything on loopback; no namespace, nothing outside a temporary root."""

from __future__ import annotations

import socket
import ssl
import threading
import time

import pytest
from typer.testing import CliRunner

from wgns.cli import app
from wgns.core import pia_http
from wgns.core.installed import load
from wgns.core.pia_http import PIA_CA, PiaError

from .conftest import one_error
from .harness.pki import Authority
from .test_pia import account, api, install  # noqa: F401
from .test_render import nsswitch  # noqa: F401


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    """An authority and a certificate for 127.0.0.1, made with openssl."""
    d = tmp_path_factory.mktemp("pki")
    ca = Authority(d, "ca", "review4 CA")
    return ca.cert, ca.issue("server", ["127.0.0.1"])


class Trickle:
    """A TLS server on loopback that sends its handshake in PIECE-byte
    pieces a PAUSE apart, then its answer a few bytes at a time, each piece
    well within the client's per-read timeout: only a deadline for the whole
    exchange ends it. What a network in the middle can do to a connection
    without breaking TLS."""

    ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 160\r\n\r\n{}" + b" " * 158

    def __init__(self, issued, piece: int = 256, pause: float = 0.05,
                 answer_pause: float = 0.1) -> None:
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(str(issued.cert), str(issued.key))
        self.piece, self.pause, self.answer_pause = piece, pause, answer_pause
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.stop = threading.Event()
        threading.Thread(target=self.serve, daemon=True).start()

    def _flush(self, conn: socket.socket, out: ssl.MemoryBIO, piece: int,
               pause: float) -> None:
        pending = out.read()
        for i in range(0, len(pending), piece):
            if self.stop.is_set():
                raise OSError("stopped")
            conn.sendall(pending[i:i + piece])
            time.sleep(pause)

    def serve(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = self.ctx.wrap_bio(inc, out, server_side=True)
        conn.settimeout(0.05)
        got = b""
        try:
            while b"\r\n\r\n" not in got and not self.stop.is_set():
                try:
                    data = conn.recv(65536)
                    if not data:
                        return
                    inc.write(data)
                except socket.timeout:
                    pass
                try:
                    tls.do_handshake()
                    got += tls.read(65536)
                except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                    pass
                self._flush(conn, out, self.piece, self.pause)
            for i in range(0, len(self.ANSWER), 4):
                tls.write(self.ANSWER[i:i + 4])
                self._flush(conn, out, 1 << 16, self.answer_pause)
        except (OSError, ssl.SSLError):
            return
        finally:
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.listener.close()


def test_an_exchange_that_trickles_ends_at_the_deadline(tls, monkeypatch):
    """The whole exchange has one deadline, whatever phase the timer fires
    in. Here it fires during the TLS handshake (the connection was slow to
    come up: a slow name lookup or SYN-ACK, stood in for by a pause before
    the real connect), and the answer then trickles in, each piece within
    the per-read timeout. On main the timer found no socket to shut at that
    moment, and the exchange ran on until the last byte (4 s here; as long
    as the other end likes in general), holding install or the forwarding
    unit past the deadline."""
    ca, issued = tls
    connect = socket.create_connection

    def slow(*args, **kwargs):
        time.sleep(0.35)
        return connect(*args, **kwargs)
    monkeypatch.setattr(pia_http.socket, "create_connection", slow)
    server = Trickle(issued)
    try:
        start = time.monotonic()
        with pytest.raises(PiaError) as e:
            pia_http.exchange("127.0.0.1", server.port, "127.0.0.1",
                              pia_http.context(str(ca)), "GET", "/", "the test API",
                              timeout=0.5)
        took = time.monotonic() - start
    finally:
        server.close()
    assert e.value.message == "the test API did not answer within 0.5 s"
    assert took < 1.2, took


def test_a_handshake_that_trickles_ends_at_the_deadline(tls):
    ca, issued = tls
    server = Trickle(issued, piece=64, pause=0.1)
    try:
        start = time.monotonic()
        with pytest.raises(PiaError) as e:
            pia_http.exchange("127.0.0.1", server.port, "127.0.0.1",
                              pia_http.context(str(ca)), "GET", "/", "the test API",
                              timeout=0.5)
        took = time.monotonic() - start
    finally:
        server.close()
    assert e.value.message == "the test API did not answer within 0.5 s"
    assert took < 1.2, took


def test_the_trickle_server_answers_when_given_time(tls):
    """The server above is sound: with time enough, the exchange succeeds."""
    ca, issued = tls
    server = Trickle(issued, piece=4096, pause=0.0, answer_pause=0.0)
    try:
        assert pia_http.exchange("127.0.0.1", server.port, "127.0.0.1",
                                 pia_http.context(str(ca)), "GET", "/", "the test API",
                                 timeout=5.0) == Trickle.ANSWER.split(b"\r\n\r\n")[1]
    finally:
        server.close()


def test_a_certificate_of_another_authority_is_still_refused(tls, tmp_path):
    """The handshake, now begun after the socket is the connection's, still
    checks the authority and the name."""
    ca, issued = tls
    rogue = Authority(tmp_path, "rogue", "review4 CA")
    for trusted, name, expect in ((rogue.cert, "127.0.0.1", "not from the expected authority"),
                                  (ca, "frankfurt407", "not for frankfurt407")):
        server = Trickle(issued, piece=4096, pause=0.0, answer_pause=0.0)
        try:
            with pytest.raises(PiaError) as e:
                pia_http.exchange("127.0.0.1", server.port, name,
                                  pia_http.context(str(trusted)), "GET", "/", "the test API",
                                  timeout=5.0)
        finally:
            server.close()
        assert expect in e.value.message and "\n" not in e.value.message


def test_an_authority_with_windows_line_ends_loads_back(api, nsswitch, tmp_path):  # noqa: F811
    """A --pia-ca file saved with CRLF line ends (as a certificate fetched
    on Windows is) was taken by install, and its \\r then made record.json
    unreadable: every later command, uninstall too, failed on 'the
    provider's ca_pem is not a string'. The line ends are now LF."""
    (nsswitch / "etc/systemd/system").mkdir(parents=True)
    ca = tmp_path / "ca.crt"
    ca.write_bytes(open(PIA_CA, "rb").read().replace(b"\n", b"\r\n"))
    r = install(nsswitch, account(tmp_path), "--pia-ca", str(ca))
    assert r.exit_code == 0, r.output
    assert b"\r" not in (nsswitch / "etc/wgns/pia/pia-ca.crt").read_bytes()
    assert load(str(nsswitch), "pia").provider.ca_pem == open(PIA_CA).read()
    r = CliRunner().invoke(app, ["uninstall", "--name", "pia", "--root", str(nsswitch)])
    assert r.exit_code == 0, r.output
    assert not (nsswitch / "etc/wgns/pia").exists()


@pytest.mark.parametrize("bad", [b"\r", b"\t", b"\x0c"])
def test_an_authority_with_a_stray_control_character_is_refused(api, tmp_path, bad):  # noqa: F811
    root = tmp_path / "root"
    root.mkdir()
    ca = tmp_path / "ca.crt"
    ca.write_bytes(open(PIA_CA, "rb").read().replace(b"\n", bad * 2 + b"\n", 1))
    assert "not a PEM certificate" in one_error(install(root, account(tmp_path),
                                                        "--pia-ca", str(ca)))
    assert not list(root.rglob("*"))


def test_an_authority_path_with_a_control_character_is_refused(api, tmp_path):  # noqa: F811
    """Its path is kept in the record (ca_source), which refuses a control
    character on the way back: install refuses it first, in one line."""
    root = tmp_path / "root"
    root.mkdir()
    d = tmp_path / "a\tb"
    d.mkdir()
    (d / "ca.crt").write_bytes(open(PIA_CA, "rb").read())
    line = one_error(install(root, account(tmp_path), "--pia-ca", str(d / "ca.crt")))
    assert "--pia-ca" in line and "control character" in line, line
    assert not list(root.rglob("*")) and api == []


def test_a_state_directory_that_cannot_keep_the_signature_still_forwards(tmp_path):
    """A signature that cannot be kept (a full or read-only /var/lib, a
    state directory gone) is used all the same, and said once: on main the
    OSError threw the fresh signature away, so every retry asked PIA for a
    new one (a new port each time) and no port was ever bound; and a
    refused bind then ended the unit with a traceback (the kept file's
    unlink raised outside any handler)."""
    from wgns.runtime.pia_port import BIND_EVERY, RETRY_FIRST, PiaPort

    from .test_pia import Calls, Clock
    not_a_dir = tmp_path / "state"
    not_a_dir.write_text("a file where the state directory goes\n")
    out = tmp_path / "run"
    out.mkdir()
    calls, clock, logs = Calls(ports=(47000, 48000, 49000)), Clock(), []
    fw = PiaPort("pia", "10.13.128.1", calls, [], out, not_a_dir, clock=lambda: clock.now,
                 wall=lambda: 1_700_000_000 + clock.now, sleep=lambda s: None,
                 log=logs.append, secrets=())
    assert fw.step() == BIND_EVERY and fw.port == 47000
    assert fw.step() == BIND_EVERY and fw.port == 47000
    assert calls.asked == ["token", "getSignature", "bindPort", "bindPort"]
    assert len([line for line in logs if "cannot keep the signature" in line]) == 1, logs
    calls.refuse_bind = 1
    assert fw.step() == RETRY_FIRST and "payload expired" in fw.error
    assert fw.step() == BIND_EVERY and fw.port == 48000


def test_uninstall_of_the_last_pia_tunnel_leaves_no_state_directory(api, nsswitch,  # noqa: F811
                                                                    tmp_path):
    """systemd makes /var/lib/wgns (and, for a dynamic user,
    /var/lib/private/wgns) for the forwarding unit's StateDirectory=wgns/NAME:
    uninstall took NAME away and left the two directories behind, empty.
    They go once empty; another tunnel's state keeps them."""
    (nsswitch / "etc/systemd/system").mkdir(parents=True)
    assert install(nsswitch, account(tmp_path)).exit_code == 0
    other = nsswitch / "var/lib/private/wgns/other"
    for name in ("pia", "other"):
        kept = nsswitch / f"var/lib/private/wgns/{name}/pia-signature.json"
        kept.parent.mkdir(parents=True)
        kept.write_text("{}")
        (nsswitch / "var/lib/wgns").mkdir(parents=True, exist_ok=True)
        (nsswitch / f"var/lib/wgns/{name}").symlink_to(f"../private/wgns/{name}")
    r = CliRunner().invoke(app, ["uninstall", "--name", "pia", "--root", str(nsswitch)])
    assert r.exit_code == 0, r.output
    assert (other / "pia-signature.json").exists()   # not this tunnel's: untouched
    assert not (nsswitch / "var/lib/private/wgns/pia").exists()
    (nsswitch / "var/lib/wgns/other").unlink()
    (other / "pia-signature.json").unlink()
    other.rmdir()
    assert install(nsswitch, account(tmp_path)).exit_code == 0
    r = CliRunner().invoke(app, ["uninstall", "--name", "pia", "--root", str(nsswitch)])
    assert r.exit_code == 0, r.output
    assert not (nsswitch / "var/lib/wgns").exists()
    assert not (nsswitch / "var/lib/private/wgns").exists()
    assert (nsswitch / "var/lib/private").is_dir()   # systemd's, not wgns's


@pytest.mark.parametrize("url", ["https://p1234567:hunter2@pia.test",
                                 "https://p1234567:hunter2@pia.test:8443/api",
                                 "https://hunter2@pia.test", "http://p1:hunter2@pia.test",
                                 "p1:hunter2@pia.test"])
def test_a_login_in_the_pia_api_url_is_refused_without_echoing_it(api, tmp_path, url):  # noqa: F811
    """The refusal of --pia-api echoed the URL it refused, a login in it
    too: the password on the terminal (and in whatever logs it), as
    check_url never does for a client's URL."""
    root = tmp_path / "root"
    root.mkdir()
    line = one_error(install(root, account(tmp_path), "--pia-api", url))
    assert "hunter2" not in line and "--pia-api" in line, line
    assert not list(root.rglob("*")) and api == []


def test_the_longest_account_install_takes_is_one_the_forwarding_unit_reads(
        api, nsswitch, tmp_path, monkeypatch):  # noqa: F811
    """--account takes a file of up to 4096 bytes; wgns's copy of it
    (pia.account, with its header line) was read by the forwarding unit
    with the same 4096-byte cap: a long password that install took made
    the unit fail at every start ('larger than 4096 bytes'). The same for
    a client's login (--credentials, forward.login)."""
    from wgns.core import portconf
    from wgns.runtime import forward_unit
    (nsswitch / "etc/systemd/system").mkdir(parents=True)
    password = "p" * 4000
    acct = account(tmp_path, f"username=p1234567\npassword={password}\n")
    monkeypatch.setattr("tests.test_pia.PASSWORD", password)   # the fake API's login
    assert install(nsswitch, acct).exit_code == 0
    login = tmp_path / "qbittorrent.login"
    login.write_text(f"username=admin\npassword={'q' * 4000}\n")
    login.chmod(0o600)
    r = CliRunner().invoke(app, ["port-forward", "--name", "pia", "--root", str(nsswitch),
                                 "--qbittorrent", "http://127.0.0.1:8080",
                                 "--credentials", str(login)])
    assert r.exit_code == 0, r.output
    creds = tmp_path / "creds"
    creds.mkdir()
    etc = nsswitch / "etc/wgns/pia"
    for src, cred in (("pia.account", "pia-account"), ("pia-ca.crt", "pia-ca"),
                      ("forward.conf", "settings"), ("forward.login", "login")):
        (creds / cred).write_bytes((etc / src).read_bytes())
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    (tmp_path / "state").mkdir()
    settings = portconf.parse((creds / "settings").read_text(), "forward settings")
    fw = forward_unit._pia("pia", settings, str(creds), [], tmp_path, ())
    assert fw.calls.account == ("p1234567", password)
    assert forward_unit.read_logins(str(creds)) == {None: ("admin", "q" * 4000)}


def test_migrate_downgrade_refuses_a_pia_tunnel(api, nsswitch, tmp_path):  # noqa: F811
    """wgns before 0.2 knows no provider: downgrade removed the record (the
    only place that says the tunnel is PIA's) and left pia.account, the
    password, behind; after the upgrade back, the tunnel was an ordinary
    one and uninstall left the password file on disk for good. Downgrade
    now refuses such a tunnel, in one line, changing nothing."""
    (nsswitch / "etc/systemd/system").mkdir(parents=True)
    assert install(nsswitch, account(tmp_path)).exit_code == 0
    before = {p: p.read_bytes() for p in nsswitch.rglob("*") if p.is_file()}
    line = one_error(CliRunner().invoke(app, ["migrate", "--downgrade", "--root",
                                              str(nsswitch)]))
    assert "tunnel pia" in line and "PIA" in line and "uninstall" in line, line
    assert {p: p.read_bytes() for p in nsswitch.rglob("*") if p.is_file()} == before
    r = CliRunner().invoke(app, ["uninstall", "--name", "pia", "--root", str(nsswitch)])
    assert r.exit_code == 0, r.output
    assert not list((nsswitch / "etc/wgns").rglob("*"))

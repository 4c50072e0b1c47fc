"""Deluge (deluge-web's JSON-RPC) and rTorrent (XML-RPC over SCGI or HTTP),
each against a fake that answers as the real one does, hostile answers
included. The real ones, confined, are the forward scenario's."""

from __future__ import annotations

import json
import socket
import threading
import xmlrpc.client

import pytest

from wgns.runtime.clients import ClientError, LoginRejected
from wgns.runtime.deluge import Deluge
from wgns.runtime.rtorrent import RTorrent, scgi_request


def serve(handler):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)

    def loop():
        while True:
            try:
                c, _ = s.accept()
            except OSError:
                return
            threading.Thread(target=handler, args=(c,), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()
    return s, s.getsockname()[1]


def read_http(c) -> tuple[str, bytes]:
    data = c.recv(65536)
    while b"\r\n\r\n" not in data:
        data += c.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(ln.split(b":", 1)[1]) for ln in head.split(b"\r\n")
                   if ln.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        body += c.recv(65536)
    return head.decode(), body


def reply(c, body: bytes, extra: str = "") -> None:
    c.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body)


class FakeDeluge:
    """deluge-web 2.x: a session cookie from auth.login, a daemon to connect."""

    def __init__(self, password: str) -> None:
        self.password, self.ports, self.connected, self.calls = password, [6881, 6891], False, []

    def __call__(self, c) -> None:
        with c:
            head, body = read_http(c)
            req = json.loads(body)
            method, params = req["method"], req["params"]
            self.calls.append(method)
            authed = "_session_id=s3" in head
            extra = ""
            if method == "auth.login":
                result, error = params == [self.password], None
                extra = "Set-Cookie: _session_id=s3; Path=/json\r\n" if result else ""
            elif not authed:
                result, error = None, {"message": "Not authenticated", "code": 1}
            elif method == "web.connected":
                result, error = self.connected, None
            elif method == "web.get_hosts":
                result, error = [["h1", "127.0.0.1", 58846, "Online"]], None
            elif method == "web.connect":
                self.connected, result, error = params == ["h1"], [], None
            elif not self.connected:
                result, error = None, {"message": "not connected", "code": 2}
            elif method == "core.get_config_value":
                result, error = self.ports, None
            elif method == "core.set_config":
                self.ports, result, error = params[0]["listen_ports"], None, None
            else:
                result, error = None, {"message": "unknown", "code": 2}
            reply(c, json.dumps({"result": result, "error": error, "id": req["id"]}).encode(),
                  extra)


def test_deluge_logs_in_connects_to_its_daemon_and_takes_the_port():
    fake = FakeDeluge("web pass")
    s, port = serve(fake)
    with s:
        d = Deluge(f"http://127.0.0.1:{port}", ("", "web pass"))
        assert d.port() == 6881
        d.set_port(51413)
        assert fake.ports == [51413, 51413] and d.port() == 51413
        assert fake.calls[:4] == ["auth.login", "web.connected", "web.get_hosts", "web.connect"]


def test_deluge_wrong_password_is_a_rejected_login():
    s, port = serve(FakeDeluge("right"))
    with s, pytest.raises(LoginRejected):
        Deluge(f"http://127.0.0.1:{port}", ("", "wrong")).port()


def test_deluge_without_a_password_says_what_to_give():
    s, port = serve(FakeDeluge("right"))
    with s, pytest.raises(ClientError, match="password="):
        Deluge(f"http://127.0.0.1:{port}", None).port()


class FakeRTorrent:
    """rTorrent's SCGI: a netstring of headers, an XML-RPC call; it answers
    with a Status line, then XML."""

    def __init__(self, answer: bytes | None = None) -> None:
        self.range, self.random, self.answer = "6890-6999", 1, answer

    def __call__(self, c) -> None:
        with c:
            data = c.recv(65536)
            length, _, rest = data.partition(b":")
            while len(rest) < int(length) + 1:
                rest += c.recv(65536)
            headers, body = rest[:int(length)], rest[int(length) + 1:]
            want = int(headers.split(b"\0")[1])
            while len(body) < want:
                body += c.recv(65536)
            params, method = xmlrpc.client.loads(body.decode())
            if self.answer is not None:
                out = self.answer
            elif method == "network.port_range":
                out = xmlrpc.client.dumps((self.range,), methodresponse=True).encode()
            elif method == "network.port_range.set":
                self.range = params[1]
                out = xmlrpc.client.dumps((0,), methodresponse=True).encode()
            elif method == "network.port_random.set":
                self.random = params[1]
                out = xmlrpc.client.dumps((0,), methodresponse=True).encode()
            else:
                out = xmlrpc.client.dumps(xmlrpc.client.Fault(-506, "no such method"),
                                          methodresponse=True).encode()
            c.sendall(b"Status: 200 OK\r\nContent-Type: text/xml\r\n\r\n" + out)


def test_rtorrent_over_scgi_reads_and_sets_the_port_range():
    fake = FakeRTorrent()
    s, port = serve(fake)
    with s:
        r = RTorrent(f"scgi://127.0.0.1:{port}", None)
        assert r.port() == 6890 and RTorrent.live is False
        r.set_port(51413)
        assert (fake.range, fake.random) == ("51413-51413", 0) and r.port() == 51413


@pytest.mark.parametrize("answer", [
    b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'aaaa'>]><methodResponse/>",   # entities
    b"not xml at all",
    xmlrpc.client.dumps(xmlrpc.client.Fault(1, "boom\nforged"), methodresponse=True).encode(),
    xmlrpc.client.dumps(("\u0663\u0664",), methodresponse=True).encode(),   # Arabic-Indic digits
    xmlrpc.client.dumps(("99999-1",), methodresponse=True).encode(),
])
def test_rtorrent_hostile_answers_are_a_client_error(answer):
    s, port = serve(FakeRTorrent(answer))
    with s, pytest.raises(ClientError):
        RTorrent(f"scgi://127.0.0.1:{port}", None).port()


def test_scgi_request_is_a_netstring_with_the_length_first():
    req = scgi_request(b"<x/>")
    length, _, rest = req.partition(b":")
    assert rest[int(length)] == ord(",") and rest[:15] == b"CONTENT_LENGTH\0"
    assert rest[int(length) + 1:] == b"<x/>"

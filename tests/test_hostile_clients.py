"""Hostile review (after 0.2.0): a Deluge or rTorrent (in the tunnel's
namespace, so as hostile as whatever runs there) whose answer made the
forwarder's client thread crash, which ends the forwarding unit: its
answers must be a logged line and a retry, never a crash."""

from __future__ import annotations

import json

import pytest

from wgns.runtime.deluge import Deluge
from wgns.runtime.rtorrent import RTorrent

from .test_clients_more import FakeRTorrent, read_http, reply, serve
from .test_forward_clients import static_with


def deluge_with_hosts(hosts):
    """deluge-web that logs in, is not connected, and knows HOSTS."""
    def handler(c):
        with c:
            _, body = read_http(c)
            req = json.loads(body)
            result, error = {"auth.login": True, "web.connected": False,
                             "web.get_hosts": hosts}.get(req["method"]), None
            if req["method"] not in ("auth.login", "web.connected", "web.get_hosts"):
                error = {"message": "not connected", "code": 2}
            reply(c, json.dumps({"result": result, "error": error, "id": req["id"]}).encode())
    return handler


@pytest.mark.parametrize("hosts", [[[]], [{}], [""], "h1", {"0": ["h1"]}])
def test_a_deluge_whose_daemon_list_is_odd_is_a_logged_line_not_a_crash(tmp_path, hosts):
    s, port = serve(deluge_with_hosts(hosts))
    with s:
        client = Deluge(f"http://127.0.0.1:{port}", ("", "deluge-secret"))
        fw, logs, state = static_with(tmp_path, [client], ("deluge-secret",))
    assert fw.sync.crashed is None and state["port"] == 51413
    assert state["clients"][0]["synced"] is False and state["clients"][0]["error"]


def response(value: bytes) -> bytes:
    return (b"<?xml version='1.0'?><methodResponse><params><param><value>" + value
            + b"</value></param></params></methodResponse>")


@pytest.mark.parametrize("value", [b"<bigdecimal>x</bigdecimal>", b"<bigdecimal>1e</bigdecimal>",
                                   b"<double>1e999999</double>", b"<base64>!</base64>"])
def test_a_hostile_rtorrent_value_is_a_logged_line_not_a_crash(tmp_path, value):
    s, port = serve(FakeRTorrent(response(value)))
    with s:
        fw, logs, state = static_with(tmp_path, [RTorrent(f"scgi://127.0.0.1:{port}", None)])
    assert fw.sync.crashed is None and state["clients"][0]["synced"] is False
    assert all(line.isprintable() for line in logs) and logs

"""Telling rTorrent its listening port, over its XML-RPC: on SCGI
(`scgi://HOST:PORT`, rTorrent's own `network.scgi.open_port`) or on HTTP
(a web server in front of it, e.g. `http://127.0.0.1:8000/RPC2`):
`network.port_range` to read it, `network.port_range.set` ("P-P") and
`network.port_random.set` (0) to set it. rTorrent opens its listening
port once, when it starts: a new port takes effect at its next start
(`live` is False; status says so until `system.pid` shows another run of
it on the port). Unit side, as clients.py.

The answers come from a process in the tunnel's namespace and are parsed
as XML-RPC only without a document type (no entity can expand)."""

from __future__ import annotations

import re
import socket
import time
import urllib.parse
import xmlrpc.client
from typing import Any
from xml.parsers.expat import ExpatError

from .clients import TIMEOUT, ClientError, _Http

MAX_ANSWER = 1 << 20


def scgi_request(body: bytes, uri: str = "/RPC2") -> bytes:
    """An SCGI request: a netstring of headers (CONTENT_LENGTH first), then the body."""
    headers = b"".join(k + b"\0" + v + b"\0" for k, v in (
        (b"CONTENT_LENGTH", str(len(body)).encode()), (b"SCGI", b"1"),
        (b"REQUEST_METHOD", b"POST"), (b"REQUEST_URI", uri.encode())))
    return str(len(headers)).encode() + b":" + headers + b"," + body


def parse(data: bytes, what: str) -> Any:
    """The one value of an XML-RPC answer; a fault or anything else is a ClientError."""
    if b"<!" in data:
        raise ClientError(f"{what}: an XML answer with a document type, not parsed")
    try:
        params, _ = xmlrpc.client.loads(data.decode(errors="replace"))
    except xmlrpc.client.Fault as e:
        raise ClientError(f"{what}: XML-RPC fault {e.faultCode}") from None
    except (xmlrpc.client.ResponseError, ExpatError, ValueError, TypeError, IndexError,
            ArithmeticError, RecursionError):   # ArithmeticError: <bigdecimal>x</bigdecimal>
        raise ClientError(f"{what}: the answer is not XML-RPC") from None
    if len(params) != 1:
        raise ClientError(f"{what}: the answer is not one value")
    return params[0]


class RTorrent(_Http):
    live = False   # it listens on a new port only after a restart

    def __init__(self, url: str, login: tuple[str, str] | None) -> None:
        super().__init__("rTorrent", url)
        parts = urllib.parse.urlsplit(url)
        self.scgi = (parts.hostname or "", parts.port or 5000) if parts.scheme == "scgi" else None
        self.login = login

    def _scgi(self, body: bytes) -> bytes:
        assert self.scgi is not None
        deadline = time.monotonic() + TIMEOUT
        try:
            with socket.create_connection(self.scgi, timeout=TIMEOUT) as s:
                s.sendall(scgi_request(body))
                data = b""
                while len(data) <= MAX_ANSWER:
                    s.settimeout(max(0.01, deadline - time.monotonic()))
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
        except socket.timeout:
            raise ClientError(f"rTorrent at {self.url} did not answer within {TIMEOUT} s") \
                from None
        except OSError as e:
            raise ClientError(f"rTorrent at {self.url} cannot be reached "
                              f"({e.strerror or e})") from None
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep or not head.startswith(b"Status: 200"):
            raise ClientError(f"rTorrent at {self.url}: not an SCGI answer")
        return rest

    def _rpc(self, method: str, *params: Any) -> Any:
        body = xmlrpc.client.dumps(params, method).encode()
        if self.scgi is not None:
            data = self._scgi(body)
        else:
            headers = {"Content-Type": "text/xml"}
            if self.login is not None:
                import base64
                pair = f"{self.login[0]}:{self.login[1]}".encode()
                headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
            status, _, data = self.call(self.url, body, headers)
            if status != 200:
                raise ClientError(f"rTorrent at {self.url}: {method} answered HTTP {status}")
        return parse(data, f"rTorrent at {self.url}: {method}")

    def port(self) -> int:
        value = self._rpc("network.port_range", "")
        m = re.fullmatch(r"([0-9]{1,5})(?:-[0-9]{1,5})?", value if isinstance(value, str) else "")
        if not m or not 0 < int(m.group(1)) < 65536:
            raise ClientError(f"rTorrent at {self.url}: network.port_range is not a range")
        return int(m.group(1))

    def session(self) -> str | None:
        """Which run of rTorrent answers (its pid), to tell that it started
        again since it was told a port; None when it does not say."""
        try:
            pid = self._rpc("system.pid", "")
        except ClientError:
            return None
        return str(pid) if type(pid) is int and 0 < pid < 1 << 22 else None

    def set_port(self, port: int) -> None:
        self._rpc("network.port_random.set", "", 0)
        self._rpc("network.port_range.set", "", f"{port}-{port}")

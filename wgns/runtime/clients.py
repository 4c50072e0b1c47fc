"""Telling a torrent client its new listening port: qBittorrent's Web API,
Transmission's RPC (the user's own command: hook.py). Unit side (the port
forwarding unit runs these inside the tunnel's namespace). Stdlib HTTP, no
proxy from the environment, a login only from the credentials file: a
password is sent to the client and nowhere else, never logged."""

from __future__ import annotations

import base64
import contextlib
import http.client
import http.cookiejar
import json
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from ..core.errors import WgnsError

TIMEOUT = 10


class ClientError(WgnsError):
    pass


class LoginRejected(ClientError):
    """Asked again only after an hour: clients ban an address after a few
    failed logins, and with it the admin's own browser on the same one."""


def _json(data: bytes) -> Any:
    """The JSON in a client's answer, or None (nested too deep included)."""
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        return None


def _port(value: Any) -> int:
    if type(value) is not int or not 0 <= value <= 65535:
        raise ValueError("not a port")
    return value


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer (HTTP 3xx), never followed: urllib would send
    the Authorization header (the password) on to wherever it points."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class _Track:
    """Hands each connection's socket to its _Http, which shuts it when the
    whole exchange outlasts TIMEOUT (urllib's timeout holds per read: a
    client trickling its answer would hold the renewals up for ever)."""

    owner: _Http

    def do_open(self, http_class: Any, req: Any, **kwargs: Any) -> Any:
        owner = self.owner

        def connection(host: str, **kw: Any) -> Any:
            conn = http_class(host, **kw)
            connect = conn.connect

            def tracked() -> None:
                connect()
                owner.sockets.append(conn.sock)
                if owner.expired:
                    owner.expire()
            conn.connect = tracked
            return conn
        return super().do_open(connection, req, **kwargs)  # type: ignore[misc]


class _TrackHttp(_Track, urllib.request.HTTPHandler):
    pass


class _TrackHttps(_Track, urllib.request.HTTPSHandler):
    pass


class _Http:
    def __init__(self, what: str, url: str) -> None:
        self.what, self.url = what, url.rstrip("/")
        self.jar = http.cookiejar.CookieJar()
        self.sockets: list[socket.socket] = []
        self.expired = False
        plain, tls = _TrackHttp(), _TrackHttps()
        plain.owner = tls.owner = self
        # No ProxyHandler from the environment: the API is inside the namespace.
        self.opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPCookieProcessor(self.jar),
            _NoRedirect(), plain, tls)

    def expire(self) -> None:
        self.expired = True
        for sock in self.sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def call(self, url: str, body: bytes | None, headers: dict[str, str]) -> tuple[int, Any, bytes]:
        self.sockets, self.expired = [], False
        timer = threading.Timer(TIMEOUT, self.expire)
        timer.daemon = True
        timer.start()
        try:
            answer = self._call(url, body, headers)
        finally:
            timer.cancel()
        if self.expired:
            raise ClientError(f"{self.what} at {self.url} did not answer within {TIMEOUT} s")
        return answer

    def _call(self, url: str, body: bytes | None,
              headers: dict[str, str]) -> tuple[int, Any, bytes]:
        req = urllib.request.Request(url, data=body, headers=headers,
                                     method="POST" if body is not None else "GET")
        try:
            with self.opener.open(req, timeout=TIMEOUT) as resp:
                return resp.status, resp.headers, resp.read(1 << 20)
        except urllib.error.HTTPError as e:
            with e, contextlib.suppress(OSError, http.client.HTTPException):
                return e.code, e.headers, e.read(1 << 16)
            return e.code, e.headers, b""    # an error whose text broke off
        except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
            if self.expired:
                return 0, {}, b""
            if isinstance(e, http.client.HTTPException):
                raise ClientError(f"{self.what} at {self.url} answered something other "
                                  f"than HTTP ({type(e).__name__})") from None
            reason = getattr(e, "reason", e)
            raise ClientError(f"{self.what} at {self.url} cannot be reached "
                              f"({getattr(reason, 'strerror', None) or reason})") from None


class QBittorrent(_Http):
    """Web API v2: /api/v2/app/preferences (listen_port), setPreferences,
    and /api/v2/auth/login first when a login is given."""

    def __init__(self, url: str, login: tuple[str, str] | None) -> None:
        super().__init__("qBittorrent", url)
        self.login = login
        # qBittorrent refuses a Referer/Origin from another host; send its own.
        self.headers = {"Referer": self.url}

    def _login(self) -> None:
        if self.login is None:
            raise ClientError(f"qBittorrent at {self.url} wants a login: give "
                              "--credentials FILE, or let it skip authentication "
                              "for localhost")
        form = urllib.parse.urlencode({"username": self.login[0],
                                       "password": self.login[1]}).encode()
        status, _, body = self.call(f"{self.url}/api/v2/auth/login", form, self.headers)
        # 4.x and 5.0-5.1: 200 "Ok." (200 "Fails." for a wrong login);
        # 5.2 and newer: 204 without a body (401 for a wrong login).
        if not (status == 200 and body.strip() == b"Ok." or status == 204):
            raise LoginRejected(f"qBittorrent at {self.url} rejected the login from the "
                              f"credentials file (HTTP {status})")

    def _api(self, path: str, form: dict[str, str] | None = None) -> bytes:
        body = urllib.parse.urlencode(form).encode() if form is not None else None
        for attempt in (1, 2):
            status, _, data = self.call(f"{self.url}/api/v2/{path}", body, self.headers)
            if status == 403 and attempt == 1:
                self._login()
                continue
            if status not in (200, 204):   # 5.2 and newer: 204 for an answer without data
                raise ClientError(f"qBittorrent at {self.url}: {path} answered HTTP {status}")
            return data
        raise AssertionError("unreachable")

    def port(self) -> int:
        try:
            return _port(_json(self._api("app/preferences"))["listen_port"])
        except (ValueError, KeyError, TypeError):
            raise ClientError(f"qBittorrent at {self.url}: preferences without "
                              "listen_port") from None

    def set_port(self, port: int) -> None:
        self._api("app/setPreferences", {"json": json.dumps({"listen_port": port})})


class Transmission(_Http):
    """RPC: session-get / session-set peer-port, with the
    X-Transmission-Session-Id handshake (HTTP 409) and Basic auth."""

    def __init__(self, url: str, login: tuple[str, str] | None) -> None:
        super().__init__("Transmission", url)
        self.login = login
        self.session = ""

    def _rpc(self, method: str, arguments: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps({"method": method, "arguments": arguments}).encode()
        for _ in range(3):
            headers = {"Content-Type": "application/json",
                       "X-Transmission-Session-Id": self.session}
            if self.login is not None:
                pair = f"{self.login[0]}:{self.login[1]}".encode()
                headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
            status, resp_headers, data = self.call(self.url, body, headers)
            if status == 409 and resp_headers.get("X-Transmission-Session-Id"):
                self.session = resp_headers["X-Transmission-Session-Id"]
                continue
            if status == 401:
                if self.login:
                    raise LoginRejected(f"Transmission at {self.url} rejected the login "
                                        "from the credentials file")
                raise ClientError(f"Transmission at {self.url} wants a login: give "
                                  "--credentials FILE")
            if status != 200:
                raise ClientError(f"Transmission at {self.url}: {method} answered HTTP {status}")
            reply = _json(data)
            if not isinstance(reply, dict) or reply.get("result") != "success":
                result = reply.get("result") if isinstance(reply, dict) else "no JSON"
                raise ClientError(f"Transmission at {self.url}: {method} failed "
                                  f"({str(result)[:80]})")
            return reply.get("arguments") or {}
        raise ClientError(f"Transmission at {self.url} keeps asking for a new session id")

    def port(self) -> int:
        try:
            return _port(self._rpc("session-get", {"fields": ["peer-port"]})["peer-port"])
        except (KeyError, TypeError, ValueError):
            raise ClientError(f"Transmission at {self.url}: session without "
                              "peer-port") from None

    def set_port(self, port: int) -> None:
        self._rpc("session-set", {"peer-port": port})

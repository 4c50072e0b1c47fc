"""Telling a torrent client its new listening port: qBittorrent's Web API,
Transmission's RPC, or a command of the user's. Unit side (the port
forwarding unit runs these inside the tunnel's namespace). Stdlib HTTP, no
proxy from the environment, a login only from the credentials file: a
password is sent to the client and nowhere else, never logged."""

from __future__ import annotations

import base64
import contextlib
import http.client
import http.cookiejar
import json
import os
import select
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from .errors import WgnsError

TIMEOUT = 10
EXEC_TIMEOUT = 60
OUTPUT_KEPT = 8192     # of an --exec command's output, for the last 5 lines


class ClientError(WgnsError):
    pass


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
        if status != 200 or body.strip() != b"Ok.":
            raise ClientError(f"qBittorrent at {self.url} rejected the login from the "
                              f"credentials file (HTTP {status})")

    def _api(self, path: str, form: dict[str, str] | None = None) -> bytes:
        body = urllib.parse.urlencode(form).encode() if form is not None else None
        for attempt in (1, 2):
            status, _, data = self.call(f"{self.url}/api/v2/{path}", body, self.headers)
            if status == 403 and attempt == 1:
                self._login()
                continue
            if status != 200:
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
                raise ClientError(f"Transmission at {self.url} " + (
                    "rejected the login from the credentials file" if self.login else
                    "wants a login: give --credentials FILE"))
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


class Command:
    """The user's command, through /bin/sh, with the port in WGNS_PORT and
    the tunnel in WGNS_TUNNEL. Called when the port is new; it has no port
    of its own to compare with."""

    what = "--exec command"

    def __init__(self, command: str, tunnel: str) -> None:
        self.command, self.tunnel = command, tunnel

    def port(self) -> int | None:
        return None

    def set_port(self, port: int) -> None:
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               "WGNS_PORT": str(port), "WGNS_TUNNEL": self.tunnel, "LANG": "C.UTF-8"}
        try:
            p = subprocess.Popen(["/bin/sh", "-c", self.command], env=env, cwd="/",
                                 stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as e:
            raise ClientError(f"the --exec command could not start ({e.strerror})") from None
        try:
            with p, p.stdout:  # type: ignore[union-attr]
                try:
                    tail = _wait(p, time.monotonic() + EXEC_TIMEOUT)
                except BaseException:   # past its time, or the unit stops: all it started ends
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(p.pid, signal.SIGKILL)
                    raise
        except TimeoutError:
            raise ClientError(f"the --exec command ran longer than {EXEC_TIMEOUT} s") from None
        for line in tail.decode(errors="replace").splitlines()[-5:]:
            print(f"--exec: {line[:200]}", flush=True)
        if p.returncode != 0:
            raise ClientError(f"the --exec command exited with status {p.returncode}")


def _wait(p: subprocess.Popen[bytes], deadline: float) -> bytes:
    """The last bytes the command printed, once it exited (not once the pipe
    closes: what it started in the background may hold that open), or
    TimeoutError past the deadline."""
    fd, tail = p.stdout.fileno(), b""  # type: ignore[union-attr]
    while p.poll() is None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        if fd < 0:                 # output closed: wait for the exit alone
            try:
                p.wait(left)
            except subprocess.TimeoutExpired:
                pass
        elif select.select([fd], [], [], min(left, 1.0))[0]:
            chunk = os.read(fd, 65536)
            fd = fd if chunk else -1
            tail = (tail + chunk)[-OUTPUT_KEPT:]
    for _ in range(16):           # what it printed before it exited
        if fd < 0 or not select.select([fd], [], [], 0)[0]:
            break
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        tail = (tail + chunk)[-OUTPUT_KEPT:]
    return tail

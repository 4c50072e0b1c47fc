"""HTTPS for Private Internet Access's API (pia.py): every answer hostile
until checked. TLS trusts one certificate authority (PIA's own, or the one
--pia-ca gives), with the system's beside it only for PIA's web API; a
server is asked at its address with its PIA name as the TLS name (what
curl --connect-to does in PIA's scripts). The whole exchange has one
deadline (a server that trickles its answer ends too), the answer a size
cap, a redirect is never followed, and no message holds what was sent
(the password, the token): only who was asked and what went wrong.
Shared by both sides: install asks from the host, the forwarding unit
through the tunnel."""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
from pathlib import Path

from .errors import WgnsError

TIMEOUT = 10.0
MAX_ANSWER = 4 << 20      # the real server list is about 200 KiB
PIA_CA = str(Path(__file__).resolve().parent / "pia-ca.rsa.4096.crt")


class PiaError(WgnsError):
    """The API refused, answered something else, or did not answer."""


class Refused(PiaError):
    """HTTP 401 or 403: the login or the token was refused."""


def context(ca: str, system: bool = False) -> ssl.SSLContext:
    """TLS that trusts the authority in file CA (and with SYSTEM the
    system's authorities too), names checked, TLS 1.2 at least."""
    try:
        ctx = ssl.create_default_context() if system else ssl.SSLContext(
            ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(cafile=ca)
    except (OSError, ssl.SSLError, ValueError) as e:
        reason = getattr(e, "strerror", None) or type(e).__name__
        raise PiaError(f"{ca}: not a certificate authority wgns can use ({reason})") from None
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


class _Pinned(http.client.HTTPSConnection):
    """HTTPS to ADDRESS, the certificate checked against NAME. The socket is
    the connection's before its handshake, so that the deadline (EXPIRED)
    can end the handshake too; past the deadline it is not begun."""

    def __init__(self, address: str, port: int, name: str, ctx: ssl.SSLContext,
                 timeout: float, expired: threading.Event) -> None:
        super().__init__(address, port, timeout=timeout, context=ctx)
        self.tls_name, self.ctx, self.expired = name, ctx, expired

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        try:
            self.sock = self.ctx.wrap_socket(sock, server_hostname=self.tls_name,
                                             do_handshake_on_connect=False)
            if self.expired.is_set():   # the timer fired before there was a socket to shut
                raise socket.timeout("timed out")
            self.sock.do_handshake()
        except BaseException:
            sock.close()
            raise


def exchange(address: str, port: int, name: str, ctx: ssl.SSLContext, method: str,
             path: str, what: str, body: bytes | None = None,
             headers: dict[str, str] | None = None, timeout: float | None = None) -> bytes:
    """One request to NAME at ADDRESS:PORT; the body of an HTTP 200 answer.
    Anything else is a PiaError naming WHAT (Refused for 401 and 403)."""
    limit = TIMEOUT if timeout is None else timeout
    expired = threading.Event()
    conn = _Pinned(address, port, name, ctx, limit, expired)

    def expire() -> None:
        expired.set()
        sock = conn.sock
        if sock is not None:
            try:   # the plain socket's shutdown: TLS's own would race the handshake
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass

    timer = threading.Timer(limit, expire)
    timer.daemon = True
    timer.start()
    try:
        conn.request(method, path, body=body, headers={"User-Agent": "wgns", **(headers or {})})
        resp = conn.getresponse()
        data = resp.read(MAX_ANSWER + 1)
        if expired.is_set():
            raise OSError("timed out")
    except ssl.SSLCertVerificationError as e:
        raise PiaError(f"{what}: its certificate is not from the expected authority or "
                       f"not for {name} ({e.verify_message})") from None
    except (OSError, http.client.HTTPException, ValueError) as e:
        if expired.is_set() or isinstance(e, socket.timeout):
            raise PiaError(f"{what} did not answer within {limit:g} s") from None
        reason = getattr(e, "strerror", None) or type(e).__name__
        raise PiaError(f"{what} cannot be reached ({reason})") from None
    finally:
        timer.cancel()
        conn.close()
    if resp.status in (401, 403):
        raise Refused(f"{what} refused the login (HTTP {resp.status})")
    if 300 <= resp.status < 400:
        raise PiaError(f"{what} answered with a redirect (HTTP {resp.status}); "
                       "wgns does not follow it")
    if resp.status != 200:
        raise PiaError(f"{what} answered HTTP {resp.status}")
    if len(data) > MAX_ANSWER:
        raise PiaError(f"{what} answered more than {MAX_ANSWER} bytes")
    return data

"""Guest side: the fake provider's PIA-like API, Private Internet Access's
WireGuard flow as its public manual-connections scripts use it, over HTTPS
with the fake provider's own certificate authority (pki.py). pia.py starts
one process per role, each in its namespace:

  api     POST /api/client/v2/token (form fields username and password,
          urlencoded or multipart) -> {"token": ...}, a wrong login 401;
          GET /vpninfo/servers/v6 -> the regions as one line of JSON, a
          blank line, a signature line
  SERVER  a pool server's: GET /addKey?pt=TOKEN&pubkey=KEY on its public
          address, port 1337: KEY registered with its WireGuard for real;
          through the tunnel on its gateway (server_vip), port 19999,
          GET /getSignature?token= -> a payload (base64 JSON: token, port,
          expires_at) and its signature; GET /bindPort?payload=&signature=
          -> the port forwarded for real from the public address to the
          caller (pia_forward.py) until a renewal is missed

Tokens and signatures are HMACs with the config's secret, so each process
checks the others'. Hostile modes come from the modes file that pia.py
rewrites (pia_routes.py reads it at every request). Stdlib only: any
python3 from 3.9.

    python3 pia_api.py CONFIG.json api|SERVER-NAME
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pia_routes as routes  # noqa: E402
from pia_forward import PortForwarder  # noqa: E402

IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)  # bind the gateway before the tunnel is up


def log(msg: str) -> None:
    print(f"pia[{os.getpid()}]: {msg}", file=sys.stderr, flush=True)


class Handler(BaseHTTPRequestHandler):
    server: TLSServer
    server_version = "nginx"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the query holds tokens; dispatch logs what happened."""

    def do_GET(self) -> None:
        self.dispatch("GET")

    def do_POST(self) -> None:
        self.dispatch("POST")

    def dispatch(self, method: str) -> None:
        path, _, query = self.path.partition("?")
        route = self.server.routes.get((method, path))
        if route is None:
            self.answer(404, {"status": "ERROR", "message": "not found"})
            return
        name, fn = route
        ctx = routes.Request(self.server.app, name, self.client_address[0],
                             {k: v[0] for k, v in parse_qs(query).items()}, self)
        hostile = routes.hostile(ctx)
        status, body, headers = hostile if hostile else fn(ctx)
        self.server.app.count(name)
        log(f"{name} from {ctx.client}: {status} {routes.summary(body)}")
        self.answer(status, body, headers)

    def answer(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = body if isinstance(body, bytes) else (
            body.encode() if isinstance(body, str) else json.dumps(body, indent=4).encode())
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client gave up (a slow answer's)
            pass


class TLSServer(ThreadingHTTPServer):
    """HTTPS, the handshake in each connection's own thread; the context
    (the provider's certificate or the rogue one) chosen per connection."""
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], app: routes.App, who: str,
                 names: list[str]) -> None:
        self.app, self.who = app, who
        self.routes = {r[0]: (r[1], r[2]) for r in routes.ROUTES if r[1] in names}
        super().__init__(addr, Handler)

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
        super().server_bind()

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(15)
        try:
            tls = self.app.context(self.who).wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as e:  # a client that refuses our certificate
            log(f"TLS with {client_address[0]} failed: {e}")
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)  # type: ignore[arg-type]
        finally:
            tls.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log(f"request from {client_address[0]} failed: {sys.exc_info()[1]}")


def contexts(node: dict) -> dict[bool, ssl.SSLContext]:
    """The node's TLS context by whether the rogue certificate is served."""
    out = {}
    for rogue, prefix in ((False, ""), (True, "rogue_")):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(node[f"{prefix}cert"], node[f"{prefix}key"])
        out[rogue] = ctx
    return out


def serve(servers: list[TLSServer], ready: Path, stop: Callable[[], None]) -> None:
    for srv in servers:
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    ready.write_text(f"{os.getpid()}\n")
    log("ready")
    while not done.wait(0.5):
        pass
    for srv in servers:
        srv.shutdown()
        srv.server_close()
    stop()
    ready.unlink(missing_ok=True)
    log("stopped")


def main(argv: list[str]) -> int:
    config, role = Path(argv[0]), argv[1]
    cfg = json.loads(config.read_text())
    node = cfg["api"] if role == "api" else cfg["servers"][role]
    app = routes.App(cfg, role, contexts(node), log)
    if role == "api":
        servers = [TLSServer((node["listen"], node["port"]), app, role,
                             ["token", "servers"])]
    else:
        app.forwarder = PortForwarder(node["public"], log, app.save)
        servers = [TLSServer((node["public"], 1337), app, role, ["addKey"]),
                   TLSServer((node["vip"], 19999), app, role, ["getSignature", "bindPort"])]
    app.save()
    serve(servers, Path(node["state"]) / f"pia-{role}.ready",
          app.forwarder.close if app.forwarder else (lambda: None))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

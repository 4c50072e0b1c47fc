"""What wgns-NAME-forward.service runs inside the tunnel's namespace: keep
a NAT-PMP mapping (UDP and TCP, one port) alive at the provider's gateway,
publish the port, and keep the torrent client listening on it.

Published in $RUNTIME_DIRECTORY (/run/wgns/NAME, gone when the unit stops):
`forwarded-port` (the number and a newline, only while the mapping is
alive) and `forward.json` (the state `wgns status` shows). Failures of the
gateway or of a client are logged and retried, never fatal.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any, Callable

from ..core.errors import WgnsError
from ..core.files import write_atomic
from ..core.text import one_line, redact
from . import natpmp
from .forward_sync import Client, ClientSync
from .natpmp import GatewayError, NoMapping
from .natpmp_io import Transport

REFUSED_WAIT = 30.0      # a gateway that says no is asked again after 30 s


class NoAnswer(WgnsError):
    pass


class Forwarder:
    def __init__(self, name: str, gateway: str, clients: list[Client], out: Path,
                 transport: Any = None, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep,
                 log: Callable[[str], None] = lambda s: print(s + "\n", end="", flush=True),
                 secrets: tuple[str, ...] = ()) -> None:
        self.name, self.gateway, self.clients, self.out = name, gateway, clients, out
        self.transport = transport or Transport(gateway)
        self.clock, self.wall, self.sleep = clock, wall, sleep
        self.secrets = secrets
        # Every line logged holds what a gateway or a client said: one
        # printable line, without the client's password, written in one
        # piece (the clients' thread logs too: print's separate newline
        # could land after the other thread's line).
        self.log = lambda text: log(self.clean(text))
        self.epoch = natpmp.Epoch()
        self.silent = f"gateway {gateway} does not answer NAT-PMP"
        self.port: int | None = None
        self.expires = 0.0             # our clock: when the mapping runs out
        self.renewed: float | None = None
        self.external_address: str | None = None
        self.error: str | None = None
        self.warning: str | None = None
        self.publishing = threading.Lock()   # the clients' thread publishes too
        # The clients, told and asked in a thread of their own: a client
        # never holds a renewal up (forward_sync.py).
        self.sync = ClientSync(clients, clock, self.log, self.publish)

    def clean(self, text: str) -> str:
        return one_line(redact(text, self.secrets))

    # -- the gateway ---------------------------------------------------------
    def _ask(self, packet: bytes, parse: Callable[[bytes], Any], most: int = natpmp.TRIES) -> Any:
        for tries, timeout in enumerate(natpmp.retry_timeouts()[:most], 1):
            start = self.clock()
            reply = self.transport.exchange(packet, timeout)
            if reply is not None:
                try:
                    return parse(reply)
                except natpmp.BadReply:
                    # Ignored (the RFC); the try still takes its time: garbage
                    # sent at once must not turn the retries into a busy loop.
                    self.sleep(max(0.0, start + timeout - self.clock()))
            if tries >= 3 and most == natpmp.TRIES:   # 1.75 s without an answer: say so
                self._gateway_silent(tries)
        raise NoAnswer(f"{self.silent} ({most} tries)")

    def _gateway_silent(self, tries: int) -> None:
        quiet = (self.error or "").startswith(self.silent)   # logged once per outage
        self._set_error(f"{self.silent} (no reply to {tries} tries)", log=not quiet)

    def _map(self, protocol: str, internal: int, external: int) -> natpmp.Mapping:
        m: natpmp.Mapping = self._ask(
            natpmp.map_request(protocol, internal, external),
            lambda r: natpmp.parse_map(r, protocol, self.gateway, internal))
        if self.epoch.reset(m.epoch, self.clock()) and self.renewed is not None:
            self.log(f"gateway {self.gateway} restarted (its epoch went back): "
                     "it lost its mappings; mapping again")
        return m

    def _drop(self, protocol: str, internal: int) -> None:
        """Delete a mapping (lifetime 0); its answer maps nothing."""
        try:
            self._ask(natpmp.map_request(protocol, internal, 0, 0),
                      lambda r: natpmp.parse_map(r, protocol, self.gateway, internal,
                                                 deleting=True),
                      most=3)
        except (NoAnswer, GatewayError):
            pass

    def map_once(self) -> float:
        """Map (or renew) UDP and TCP on one port; returns the seconds until
        the next renewal."""
        want = self.port or 0
        udp = self._map("udp", want or 1, want)
        if udp.external != udp.internal:
            # Gateways forward to the internal port (the RFC) or to the same
            # port (ProtonVPN): ask once more with both the same.
            first = udp
            udp = self._map("udp", first.external, first.external)
            if udp.external != first.external:
                # An RFC gateway (miniupnpd) keeps that port for the first
                # mapping: give both back, then ask for it again.
                self._drop("udp", first.internal)
                self._drop("udp", udp.internal)
                udp = self._map("udp", first.external, first.external)
        tcp = self._map("tcp", udp.external, udp.external)
        self.warning = None
        if tcp.external != udp.external:
            self.warning = (f"the gateway gave TCP port {tcp.external} but UDP port "
                            f"{udp.external}; the client listens on {udp.external}")
            self.log(self.warning)
        if self.external_address is None or udp.external != self.port:
            try:   # nice to show, never worth delaying the renewals: 1.75 s at most
                _, self.external_address = self._ask(
                    natpmp.address_request(),
                    lambda r: natpmp.parse_address(r, self.gateway), most=3)
            except (NoAnswer, GatewayError):
                self.external_address = None
        granted = min(udp.lifetime, tcp.lifetime)
        now = self.clock()
        if udp.external != self.port:
            self.log(f"forwarded port {udp.external} (TCP+UDP) from gateway {self.gateway}"
                     + (f", was {self.port}" if self.port else ""))
        self.port, self.expires, self.renewed = udp.external, now + granted, self.wall()
        self.error = None
        return natpmp.renew_after(granted)

    def _set_error(self, error: str, log: bool = True) -> None:
        if log and error != self.error:
            self.log(error)
        self.error = error
        if self.port is not None and self.clock() >= self.expires:
            self.log(f"port {self.port} is no longer forwarded (its mapping ran out)")
            self.port = None
        self.publish()

    def release(self) -> None:
        """On stop: give the port back (lifetime 0), one packet each, no
        waiting: if the tunnel is already gone, the mapping runs out."""
        if self.port is None:
            return
        for protocol in ("udp", "tcp"):
            try:
                self.transport.send(natpmp.map_request(protocol, self.port, 0, 0))
            except OSError:
                pass
        self.log(f"released port {self.port}")

    # -- what status reads ---------------------------------------------------
    def state(self) -> dict[str, Any]:
        def text(value: str | None) -> str | None:
            return None if value is None else self.clean(value)
        return {"port": self.port, "gateway": self.gateway,
                "external_address": self.external_address,
                "renewed": self.renewed, "error": text(self.error),
                "warning": text(self.warning),
                "clients": [{"client": what, "synced": synced, "error": text(error),
                             "restart": restart}
                            for what, synced, error, restart in self.sync.view(self.port)]}

    def publish(self) -> None:
        with self.publishing:
            port, port_file = self.port, self.out / "forwarded-port"
            if port is None:
                port_file.unlink(missing_ok=True)
            elif not port_file.exists() or port_file.read_text() != f"{port}\n":
                write_atomic(port_file, f"{port}\n")
            write_atomic(self.out / "forward.json", json.dumps(self.state()) + "\n")

    # -- the loop ------------------------------------------------------------
    def step(self) -> float:
        """One round: map or renew, and tell the clients' thread the port
        (it asks them again at each renewal). Returns how long to wait
        before the next round."""
        try:
            wait = self.map_once()
        except (GatewayError, NoMapping) as e:
            if self.port is not None:    # refused: whatever was mapped is gone
                self.log(f"port {self.port} is no longer forwarded")
                self.port = None
            self._set_error(str(e))
            wait = REFUSED_WAIT
        except NoAnswer as e:
            self._set_error(str(e), log=False)   # said when the silence began
            wait = 0.0           # the tries took minutes already: start over
        else:
            self.publish()
            self.sync.follow(self.port, verify=True)
            return wait
        self.sync.follow(self.port, verify=False)     # the port may have gone
        return wait

    def run(self) -> None:
        """Renew on time, whatever the clients do (their thread runs beside)."""
        self.sync.start()
        try:
            next_map = self.clock()
            while self.sync.crashed is None:
                now = self.clock()
                if now >= next_map:
                    next_map = now + self.step()
                else:
                    self.sleep(max(0.05, min(next_map - now, 1.0)))
            raise self.sync.crashed
        finally:
            self.sync.stop()


class Static(Forwarder):
    """A port the provider reserved for the account (method "static"): no
    gateway protocol. The port is published as long as the unit runs and
    the clients are asked again every CHECK_EVERY seconds, as at a renewal."""

    CHECK_EVERY = 45.0

    def __init__(self, name: str, port: int, clients: list[Client], out: Path,
                 **kwargs: Any) -> None:
        super().__init__(name, "", clients, out, transport=_NoGateway(), **kwargs)
        self.static = port

    def step(self) -> float:
        if self.port is None:
            self.log(f"static port {self.static}, as reserved at the provider")
        self.port = self.static
        self.publish()
        self.sync.follow(self.port, verify=True)
        return self.CHECK_EVERY

    def release(self) -> None:
        """Nothing to give back: the provider keeps the port reserved."""

    def state(self) -> dict[str, Any]:
        return {**super().state(), "gateway": None, "method": "static"}


class _NoGateway:
    """A static port asks no gateway anything."""

    def exchange(self, packet: bytes, timeout: float) -> bytes | None:
        raise AssertionError("a static port asks no gateway")

    def send(self, packet: bytes) -> None:
        raise AssertionError("a static port asks no gateway")

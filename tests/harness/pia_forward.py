"""Guest side: the port forwarding behind the fake PIA API's bindPort
(pia_api.py): OUTSIDE:PORT, TCP and UDP, relayed to the client's tunnel
address, same port, as PIA forwards; a binding lapses when no bindPort
renewed it within its window. Threads, as the HTTPS servers that bind
ports are threaded. Stdlib only: any python3 from 3.9.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from typing import Callable

try:
    from .forwarding import pump
except ImportError:  # run as a script beside it
    from forwarding import pump  # type: ignore[no-redef]

UDP_IDLE = 60.0  # seconds before a quiet outside sender's relay socket closes


class Binding:
    """OUTSIDE:PORT forwarded to CLIENT:PORT until DEADLINE (monotonic)."""

    def __init__(self, outside: str, port: int, client: str, deadline: float) -> None:
        self.outside, self.port, self.client, self.deadline = outside, port, client, deadline
        self.closed = threading.Event()
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.tcp.bind((outside, port))
            self.tcp.listen(16)
            self.udp.bind((outside, port))
        except OSError:
            self.tcp.close()
            self.udp.close()
            raise
        self.peers: dict[tuple[str, int], tuple[socket.socket, float]] = {}
        for target in (self._accept, self._relay):
            threading.Thread(target=target, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                conn, _ = self.tcp.accept()
            except OSError:
                return
            threading.Thread(target=self._bridge, args=(conn, self.client), daemon=True).start()

    def _bridge(self, conn: socket.socket, client: str) -> None:
        try:
            up = socket.create_connection((client, self.port), timeout=5)
        except OSError:
            conn.close()
            return
        up.settimeout(None)
        back = threading.Thread(target=pump, args=(up, conn), daemon=True)
        back.start()
        pump(conn, up)
        back.join()
        conn.close()
        up.close()

    def _relay(self) -> None:
        """Datagrams from outside on to the client from one socket per
        sender, and the client's answers back from OUTSIDE:PORT."""
        while not self.closed.is_set():
            socks = [self.udp] + [s for s, _ in self.peers.values()]
            try:
                ready, _, _ = select.select(socks, [], [], 0.2)
            except (OSError, ValueError):  # closed meanwhile
                return
            for s in ready:
                try:
                    if s is self.udp:
                        data, sender = self.udp.recvfrom(65535)
                        self._to_client(sender, data)
                    else:
                        sender = next(k for k, (p, _) in self.peers.items() if p is s)
                        self.udp.sendto(s.recv(65535), sender)
                        self.peers[sender] = (s, time.monotonic())
                except (OSError, StopIteration):
                    continue
            now = time.monotonic()
            for sender, (s, last) in list(self.peers.items()):
                if now - last > UDP_IDLE:
                    s.close()
                    del self.peers[sender]

    def _to_client(self, sender: tuple[str, int], data: bytes) -> None:
        if sender not in self.peers:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.connect((self.client, self.port))
            self.peers[sender] = (s, time.monotonic())
        s, _ = self.peers[sender]
        self.peers[sender] = (s, time.monotonic())
        s.send(data)

    def close(self) -> None:
        self.closed.set()
        for s in (self.tcp, self.udp):
            try:
                s.shutdown(socket.SHUT_RDWR)  # wakes the thread in accept()
            except OSError:
                pass
            s.close()
        for s, _ in self.peers.values():
            s.close()


class PortForwarder:
    """The bindings of one server (its public address OUTSIDE)."""

    def __init__(self, outside: str, log: Callable[[str], None],
                 changed: Callable[[], None]) -> None:
        self.outside, self.log, self.changed = outside, log, changed
        self.bindings: dict[int, Binding] = {}
        self.lock = threading.Lock()
        threading.Thread(target=self._expire, daemon=True).start()

    def bind(self, port: int, client: str, window: float) -> None:
        """Forward PORT to CLIENT for WINDOW seconds from now (a renewal when
        it is bound already). OSError if the port cannot be opened."""
        deadline = time.monotonic() + window
        with self.lock:
            b = self.bindings.get(port)
            if b is not None and b.client == client:
                b.deadline = deadline
                return
            if b is not None:
                b.close()
            self.bindings[port] = Binding(self.outside, port, client, deadline)
        self.log(f"port {port} forwarded to {client} for {window:g} s")
        self.changed()

    def _expire(self) -> None:
        while True:
            time.sleep(0.2)
            now, gone = time.monotonic(), []
            with self.lock:
                for port, b in list(self.bindings.items()):
                    if b.deadline <= now:
                        b.close()
                        del self.bindings[port]
                        gone.append(port)
            for port in gone:
                self.log(f"port {port} lapsed (no bindPort in time)")
            if gone:
                self.changed()

    def state(self) -> list[dict]:
        now, wall = time.monotonic(), time.time()
        with self.lock:
            return [{"port": b.port, "client": b.client,
                     "expires": round(wall + b.deadline - now, 3)}
                    for b in self.bindings.values()]

    def close(self) -> None:
        with self.lock:
            for b in self.bindings.values():
                b.close()
            self.bindings.clear()

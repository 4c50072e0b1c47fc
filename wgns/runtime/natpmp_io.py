"""The forwarder's way of touching the gateway: a UDP socket to its
NAT-PMP port. (Its runtime files go through core.files.write_atomic.)"""

from __future__ import annotations

import socket
import time

from . import natpmp


class Transport:
    """A UDP socket connected to the gateway's port 5351: the kernel drops
    datagrams from anyone else, as the RFC asks."""

    def __init__(self, gateway: str) -> None:
        self.gateway = gateway
        self.sock: socket.socket | None = None

    def exchange(self, packet: bytes, timeout: float) -> bytes | None:
        deadline = time.monotonic() + timeout
        try:
            if self.sock is None:
                self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                self.sock.connect((self.gateway, natpmp.PORT))
            self.sock.send(packet)
            self.sock.settimeout(timeout)
            return self.sock.recv(64)
        except socket.timeout:
            return None
        except OSError:   # ICMP unreachable, no route (the link is down): a lost try
            if self.sock is not None:
                self.sock.close()
                self.sock = None
            time.sleep(max(0.0, deadline - time.monotonic()))
            return None

    def send(self, packet: bytes) -> None:
        if self.sock is not None:
            self.sock.send(packet)

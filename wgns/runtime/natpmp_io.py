"""The forwarder's two ways of touching the world: a UDP socket to the
gateway's NAT-PMP port, and atomic files in its runtime directory."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

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


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)

"""Reading a tunnel's WireGuard device, whichever implementation runs it:
the kernel's (wgns's own netlink reader) or wireguard-go (its UAPI socket).
Configuring one is the units' side: runtime/wgconf.py.

Both configure the device from a `Tunnel` whose endpoints are already
resolved, and both read the device back into `DeviceInfo`. Keys travel only
inside netlink messages or over the root-only UAPI socket.
"""

from __future__ import annotations

import base64
import binascii
import os
import socket
from dataclasses import dataclass, field

from .errors import TunnelError

UAPI_DIR = "/var/run/wireguard"
KERNEL = "kernel"
USERSPACE = "userspace"


@dataclass
class PeerInfo:
    public_key: str
    endpoint: str | None = None
    latest_handshake: int | None = None  # unix time, None: never
    rx_bytes: int = 0
    tx_bytes: int = 0
    allowed_ips: list[str] = field(default_factory=list)
    keepalive: int | None = None


@dataclass
class DeviceInfo:
    implementation: str
    listen_port: int | None
    peers: list[PeerInfo]


def uapi_path(name: str) -> str:
    return f"{UAPI_DIR}/{name}.sock"


def _hex(b64: str) -> str:
    return binascii.a2b_base64(b64).hex()


def _b64(hexkey: str) -> str:
    return base64.b64encode(bytes.fromhex(hexkey)).decode()


def _sockaddr(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def kernel_info(name: str) -> DeviceInfo | None:
    """The kernel device NAME in the calling thread's namespace, read with
    wgns's own netlink reader (no pyroute2: the watcher stays small);
    None when there is none."""
    from . import netlink
    found = netlink.wireguard_device(name)
    if found is None:
        return None
    port, peers = found
    return DeviceInfo(KERNEL, port, [PeerInfo(
        public_key=base64.b64encode(p.public_key).decode(), endpoint=p.endpoint,
        latest_handshake=p.latest_handshake, rx_bytes=p.rx_bytes, tx_bytes=p.tx_bytes,
        allowed_ips=p.allowed_ips, keepalive=p.keepalive) for p in peers])


def _uapi(name: str, request: str) -> list[tuple[str, str]]:
    """Send one UAPI request; return the reply's key=value pairs in order."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(uapi_path(name))
        s.sendall(request.encode())
        buf = b""
        while not buf.endswith(b"\n\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    pairs = []
    for line in buf.decode().splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            pairs.append((k, v))
    err = dict(pairs).get("errno", "0")
    if err != "0":
        raise TunnelError(f"wireguard-go refused the configuration (errno {err})")
    return pairs


def userspace_info(name: str) -> DeviceInfo:
    peers: list[PeerInfo] = []
    listen_port = None
    for k, v in _uapi(name, "get=1\n\n"):
        if k == "listen_port":
            listen_port = int(v) or None
        elif k == "public_key":
            peers.append(PeerInfo(public_key=_b64(v)))
        elif not peers:
            continue  # device-level keys, the private key among them
        elif k == "endpoint":
            peers[-1].endpoint = v
        elif k == "last_handshake_time_sec":
            peers[-1].latest_handshake = int(v) or None
        elif k == "rx_bytes":
            peers[-1].rx_bytes = int(v)
        elif k == "tx_bytes":
            peers[-1].tx_bytes = int(v)
        elif k == "allowed_ip":
            peers[-1].allowed_ips.append(v)
        elif k == "persistent_keepalive_interval":
            peers[-1].keepalive = int(v) or None
    return DeviceInfo(USERSPACE, listen_port, peers)


def device_info(name: str) -> DeviceInfo | None:
    """The device of tunnel NAME, whichever implementation runs it; None
    when there is none. Call from the host namespace."""
    from . import netns
    if os.path.exists(uapi_path(name)):
        try:
            return userspace_info(name)
        except (ConnectionRefusedError, FileNotFoundError):
            pass  # a stale socket (a dead wireguard-go): the kernel may run NAME
        except OSError:
            return None
    if not netns.exists(name):
        return None
    try:
        return netns.run_in(name, lambda: kernel_info(name))
    except OSError:  # the namespace went away meanwhile
        return None



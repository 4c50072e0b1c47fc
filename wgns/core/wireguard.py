"""The two WireGuard implementations: the kernel's, configured over generic
netlink with pyroute2, and wireguard-go, configured over its UAPI socket.

Both configure the device from a `Tunnel` whose endpoints are already
resolved, and both read the device back into `DeviceInfo`. Keys travel only
inside netlink messages or over the root-only UAPI socket.
"""

from __future__ import annotations

import base64
import binascii
import errno
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from .config import Peer, Tunnel
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


# --- kernel -----------------------------------------------------------------

def kernel_create(name: str) -> bool:
    """Create a kernel WireGuard link in the current namespace; False when
    the kernel has no WireGuard (so the caller falls back to userspace)."""
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    with IPRoute() as ipr:
        try:
            ipr.link("add", ifname=name, kind="wireguard")
        except NetlinkError as e:
            if e.code in (errno.EOPNOTSUPP, errno.ENOENT, errno.EINVAL):
                return False
            raise
    return True


def _kernel_peer(peer: Peer, endpoint: tuple[str, int] | None) -> dict[str, Any]:
    # Always the whole list with replace_allowed_ips: pyroute2 >= 0.9.3
    # appends without the flag, and 0.7 ignores it and always replaces (so
    # a peer update without the list would leave the peer with none).
    spec: dict[str, Any] = {
        "public_key": peer.public_key,
        "allowed_ips": [str(n) for n in peer.allowed_ips],
        "replace_allowed_ips": True,
    }
    if endpoint is not None:
        spec["endpoint_addr"], spec["endpoint_port"] = endpoint
    if peer.preshared_key is not None:
        spec["preshared_key"] = peer.preshared_key.reveal()
    if peer.keepalive:
        spec["persistent_keepalive"] = peer.keepalive
    return spec


def kernel_configure(tunnel: Tunnel, endpoints: dict[str, tuple[str, int]]) -> None:
    from pyroute2 import WireGuard

    with WireGuard() as wg:
        wg.set(tunnel.name, private_key=tunnel.private_key.reveal(),
               listen_port=tunnel.listen_port)
        for peer in tunnel.peers:
            wg.set(tunnel.name, peer=_kernel_peer(peer, endpoints.get(peer.public_key)))


def kernel_set_endpoint(name: str, peer: Peer, endpoint: tuple[str, int]) -> None:
    """Point a peer at a new endpoint in place (run inside its namespace)."""
    from pyroute2 import WireGuard

    with WireGuard() as wg:
        wg.set(name, peer=_kernel_peer(peer, endpoint))


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


# --- userspace (wireguard-go) ------------------------------------------------

# Written when the kernel answered that it has no WireGuard: the next
# bring-up in this boot starts wireguard-go at once (/run is gone at reboot,
# and a module loaded since shows in /sys/module).
NO_KERNEL_MARK = "/run/wgns/no-kernel-wireguard"


def kernel_known_missing() -> bool:
    return os.path.exists(NO_KERNEL_MARK) and not os.path.exists("/sys/module/wireguard")


def remember_kernel_missing() -> None:
    try:
        os.makedirs(os.path.dirname(NO_KERNEL_MARK), mode=0o755, exist_ok=True)
        with open(NO_KERNEL_MARK, "w"):
            pass
    except OSError:
        pass  # only a shortcut for the next bring-up


def userspace_create(name: str, timeout: float = 10,
                     meanwhile: Callable[[], object] = lambda: None) -> None:
    """Start wireguard-go for NAME in the current namespace and wait for its
    UAPI socket. It daemonizes and stays in the calling unit's cgroup.
    MEANWHILE runs while it comes up (the bring-up imports pyroute2 then)."""
    exe = shutil.which("wireguard-go")
    if exe is None:
        raise TunnelError(
            "the kernel has no WireGuard and wireguard-go is not installed",
            hint="install the wireguard-go package, or load the wireguard module")
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
           "LOG_LEVEL": "error"}
    # wireguard-go forks its daemon before returning; that child keeps our
    # stdout and stderr (the journal), so they are inherited, never piped.
    proc = subprocess.Popen([exe, name], env=env, stdin=subprocess.DEVNULL)
    try:
        meanwhile()
    finally:
        rc = proc.wait()
    if rc != 0:
        raise TunnelError(f"wireguard-go {name} exited with status {rc}")
    deadline = time.monotonic() + timeout
    while not os.path.exists(uapi_path(name)):
        if time.monotonic() > deadline:
            raise TunnelError(f"wireguard-go did not open {uapi_path(name)}")
        time.sleep(0.005)


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


def userspace_configure(tunnel: Tunnel, endpoints: dict[str, tuple[str, int]]) -> None:
    lines = ["set=1", f"private_key={_hex(tunnel.private_key.reveal())}"]
    if tunnel.listen_port is not None:
        lines.append(f"listen_port={tunnel.listen_port}")
    lines.append("replace_peers=true")
    for peer in tunnel.peers:
        lines.append(f"public_key={_hex(peer.public_key)}")
        if peer.preshared_key is not None:
            lines.append(f"preshared_key={_hex(peer.preshared_key.reveal())}")
        if peer.public_key in endpoints:
            lines.append(f"endpoint={_sockaddr(*endpoints[peer.public_key])}")
        if peer.keepalive:
            lines.append(f"persistent_keepalive_interval={peer.keepalive}")
        lines.append("replace_allowed_ips=true")
        lines += [f"allowed_ip={n}" for n in peer.allowed_ips]
    _uapi(tunnel.name, "\n".join(lines) + "\n\n")


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


def userspace_set_endpoint(name: str, peer: Peer, endpoint: tuple[str, int]) -> None:
    _uapi(name, f"set=1\npublic_key={_hex(peer.public_key)}\nupdate_only=true\n"
                f"endpoint={_sockaddr(*endpoint)}\n\n")


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


def set_endpoint(name: str, device: DeviceInfo, peer: Peer, endpoint: tuple[str, int]) -> None:
    from . import netns
    if device.implementation == USERSPACE:
        userspace_set_endpoint(name, peer, endpoint)
    else:
        netns.run_in(name, lambda: kernel_set_endpoint(name, peer, endpoint))

"""Making and configuring a tunnel's WireGuard device (the units' side):
the kernel's over generic netlink with pyroute2, wireguard-go over its
UAPI socket. Keys travel only inside netlink messages or over the
root-only UAPI socket. Reading a device back: core/wireguard.py."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import time
from typing import Any

from ..core.config import Peer, Tunnel
from ..core.errors import TunnelError
from ..core.paths import RUN_DIR
from ..core.wireguard import USERSPACE, DeviceInfo, _hex, _sockaddr, _uapi, uapi_path


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


# Written when the kernel answered that it has no WireGuard: the next
# bring-up in this boot starts wireguard-go at once (/run is gone at reboot,
# and a module loaded since shows in /sys/module).
NO_KERNEL_MARK = f"{RUN_DIR}/no-kernel-wireguard"


def kernel_known_missing() -> bool:
    return os.path.exists(NO_KERNEL_MARK) and not os.path.exists("/sys/module/wireguard")


def remember_kernel_missing() -> None:
    try:
        os.makedirs(os.path.dirname(NO_KERNEL_MARK), mode=0o755, exist_ok=True)
        with open(NO_KERNEL_MARK, "w"):
            pass
    except OSError:
        pass  # only a shortcut for the next bring-up


def userspace_create(name: str, timeout: float = 10) -> None:
    """Start wireguard-go for NAME in the current namespace and wait for its
    UAPI socket. It daemonizes and stays in the calling unit's cgroup."""
    exe = shutil.which("wireguard-go")
    if exe is None:
        raise TunnelError(
            "the kernel has no WireGuard and wireguard-go is not installed",
            hint="install the wireguard-go package, or load the wireguard module")
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
           "LOG_LEVEL": "error"}
    # wireguard-go forks its daemon before returning; that child keeps our
    # stdout and stderr (the journal), so they are inherited, never piped.
    rc = subprocess.Popen([exe, name], env=env, stdin=subprocess.DEVNULL).wait()
    if rc != 0:
        raise TunnelError(f"wireguard-go {name} exited with status {rc}")
    deadline = time.monotonic() + timeout
    while not os.path.exists(uapi_path(name)):
        if time.monotonic() > deadline:
            raise TunnelError(f"wireguard-go did not open {uapi_path(name)}")
        time.sleep(0.005)


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


def userspace_set_endpoint(name: str, peer: Peer, endpoint: tuple[str, int]) -> None:
    _uapi(name, f"set=1\npublic_key={_hex(peer.public_key)}\nupdate_only=true\n"
                f"endpoint={_sockaddr(*endpoint)}\n\n")


def set_endpoint(name: str, device: DeviceInfo, peer: Peer, endpoint: tuple[str, int]) -> None:
    from ..core import netns
    if device.implementation == USERSPACE:
        userspace_set_endpoint(name, peer, endpoint)
    else:
        netns.run_in(name, lambda: kernel_set_endpoint(name, peer, endpoint))

"""What the tunnel unit runs (`helper.py link up|down NAME`).

up: read /etc/wgns/NAME.conf, resolve the endpoints in the host namespace
(retrying while the network comes up), create the WireGuard link here in the
host namespace (kernel first, wireguard-go when the kernel has none),
configure keys and peers, set the MTU, move the link into namespace NAME,
then add addresses, bring it up and route the peers' AllowedIPs through it.
A failure half way undoes what was done. down: remove the link (and its
wireguard-go) from the namespace. Both are idempotent.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time

from ..core import netns, restore
from ..core import wireguard as wgread
from ..core.config import Tunnel
from ..core.errors import TunnelError, WgnsError
from ..core.installed import load_tunnel
from . import rtnl
from . import wgconf as wireguard

RESOLVE_FOR = 60.0  # seconds of retrying before the unit fails (and restarts)


def load(name: str, root: str = "/") -> Tunnel:
    """The tunnel, from /etc/wgns/NAME.conf."""
    return load_tunnel(root, name)


def resolve(tunnel: Tunnel, wait: float = RESOLVE_FOR) -> dict[str, tuple[str, int]]:
    """Resolve every peer's endpoint here, in the host namespace."""
    out: dict[str, tuple[str, int]] = {}
    deadline = time.monotonic() + wait
    delay = 0.25
    for peer in tunnel.peers:
        ep = peer.endpoint
        if ep is None:
            continue
        while True:
            try:
                info = socket.getaddrinfo(ep.host, ep.port, type=socket.SOCK_DGRAM)
                out[peer.public_key] = (str(info[0][4][0]), ep.port)
                break
            except socket.gaierror as e:
                if time.monotonic() + delay > deadline:
                    raise TunnelError(
                        f"cannot resolve endpoint {ep.host}: {e.strerror}") from None
                print(f"{tunnel.name}: waiting for {ep.host} to resolve ({e.strerror})",
                      file=sys.stderr, flush=True)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
    return out


def _delete_link(name: str) -> bool:
    idx = rtnl.index(name)
    if idx is not None:
        rtnl.delete_link(idx)
    return idx is not None


def _configure_inside(tunnel: Tunnel) -> None:
    lo = rtnl.index("lo")
    if lo is not None:
        rtnl.set_link(lo, up=True)
    idx = _index(tunnel.name)
    for a in tunnel.addresses:
        rtnl.add_address(idx, a)
    rtnl.set_link(idx, up=True)
    for net in tunnel.route_prefixes():
        rtnl.add_route(net, idx)


def _index(name: str) -> int:
    idx = rtnl.index(name)
    if idx is None:
        raise TunnelError(f"the link {name} is gone (deleted while it was being set up?)")
    return idx


def _in_unit(pid: str, unit: str) -> bool:
    """The process runs in UNIT's cgroup: wgns started it (wireguard-go
    daemonizes, and stays in the cgroup of the tunnel unit that ran it)."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            return any(line.rstrip("\n").endswith(f"/{unit}") for line in f)
    except OSError:
        return False


def wireguard_go_pid(name: str) -> int | None:
    """The wireguard-go serving NAME that wgns started: the process holding
    its UAPI listening socket (found as `ss -xlp` does: the socket's inode
    in /proc/net/unix, then the process with that socket open), named
    wireguard-go, in the tunnel unit's cgroup. A user's own wireguard-go
    (wg-quick up NAME) is never touched."""
    path = wgread.uapi_path(name)
    inodes = set()
    with open("/proc/net/unix") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 8 and parts[7] == path:
                inodes.add(f"socket:[{parts[6]}]")
    if not inodes:
        return None
    for proc in os.listdir("/proc"):
        if not proc.isdigit():
            continue
        try:
            with open(f"/proc/{proc}/comm") as f:
                if f.read().strip() != "wireguard-go":
                    continue
            if not _in_unit(proc, f"{name}.service"):
                continue
            for fd in os.listdir(f"/proc/{proc}/fd"):
                if os.readlink(f"/proc/{proc}/fd/{fd}") in inodes:
                    return int(proc)
        except OSError:
            continue  # gone meanwhile, or not ours to read
    return None


def _stop_wireguard_go(name: str) -> None:
    """End the wireguard-go serving NAME (its TUN link goes with it)."""
    pid = wireguard_go_pid(name)
    if pid is None:
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(250):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)


def up(name: str) -> str:
    tunnel = load(name)
    if not netns.exists(name):
        raise TunnelError(
            f"network namespace {name} does not exist",
            hint=f"it is made by netns@{name}.service; the watcher restarts that "
            "within 20 s")
    endpoints = resolve(tunnel)
    down(name)  # a stale link from an earlier run would make 'add' fail
    if netns.has_link(name):
        raise TunnelError(
            f"an interface named {name} already exists in the host namespace",
            hint=f"remove it ('ip link del {name}') or install under another --name")
    impl = wgread.KERNEL
    try:
        if wireguard.kernel_known_missing():
            # Known this boot: no kernel link to try (nor pyroute2 to import).
            impl = wgread.USERSPACE
            wireguard.userspace_create(name)
        elif not wireguard.kernel_create(name):
            impl = wgread.USERSPACE
            wireguard.remember_kernel_missing()
            wireguard.userspace_create(name)
        if impl == wgread.KERNEL:
            wireguard.kernel_configure(tunnel, endpoints)
        else:
            wireguard.userspace_configure(tunnel, endpoints)
        idx = _index(name)
        if tunnel.mtu:
            rtnl.set_link(idx, mtu=tunnel.mtu)
        fd = os.open(netns.path(name), os.O_RDONLY)
        try:
            rtnl.set_link(idx, netns_fd=fd)
        finally:
            os.close(fd)
        netns.run_in(name, lambda: _configure_inside(tunnel))
    except BaseException:
        _undo(name)
        raise
    eps = ", ".join(f"{h}:{p}" for h, p in endpoints.values())
    return (f"{name}: up ({impl} WireGuard), "
            f"{', '.join(str(a) for a in tunnel.addresses)}, endpoint {eps}")


def _undo(name: str) -> None:
    """Best effort after a failed `up`: the link wherever it is, and its
    wireguard-go. Errors here must not hide the original one."""
    errors: tuple[type[BaseException], ...] = (OSError, WgnsError)
    pyroute2 = sys.modules.get("pyroute2.netlink.exceptions")   # the kernel path's
    if pyroute2 is not None:
        errors += (pyroute2.NetlinkError,)
    for step in (lambda: down(name), lambda: _delete_link(name)):
        try:
            step()
        except errors as e:
            print(f"{name}: cleanup after failure: {e}", file=sys.stderr)


def stop(name: str) -> None:
    """ExecStop of the tunnel unit: the link goes down whatever else fails."""
    try:
        _forget_restore_unless_restarting(name)
    finally:
        down(name)


def down(name: str) -> None:
    # wireguard-go first: its TUN link goes with it, and then this needs no
    # netlink (nor pyroute2's import time) at all.
    _stop_wireguard_go(name)
    if netns.exists(name) and netns.run_in(name, lambda: netns.has_link(name)):
        netns.run_in(name, lambda: _delete_link(name))


def _forget_restore_unless_restarting(name: str) -> None:
    """An admin's stop clears the watcher's restore list: after a stop,
    nothing comes back by itself. A restart (the watcher's, or one that
    propagates from the namespace unit) keeps it."""
    if not os.path.exists(restore.path(name)):
        return  # the usual case: no D-Bus needed
    from ..core.systemd import Systemd
    with Systemd() as sd:
        if "restart" not in sd.jobs(f"{name}.service"):
            restore.forget(name)


def restore_confined(name: str) -> None:
    """Start the confined units the watcher saw running before it restarted
    this tunnel (see heal.py): only those confined to this tunnel now, and
    queued, not waited for, as they are ordered after this very unit."""
    units = restore.read(name)
    if not units:
        return
    from ..core.systemd import Systemd
    from .heal import start_confined
    with Systemd() as sd:
        lines = start_confined(sd, name, units, "running before the watcher's restart")
    restore.forget(name)
    for line in lines:
        print(line, flush=True)

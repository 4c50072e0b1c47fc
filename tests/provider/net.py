"""Helpers for the host tests of the fake provider itself (this folder): a
throwaway network namespace that stands in for a guest's root namespace,
and a WireGuard client in it (wireguard-go, as wgns's own
link would be on a kernel without WireGuard). Every name has the test
run's pid in it; everything made is taken away again, also after a setup
that failed half way. Nothing leaves the namespaces the tests make.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from ..harness.ci import can_make_links, tier_unavailable
from ..harness.netnode import kill_namespace, sh

PID = os.getpid()
TOOLS = {"wg": "wireguard-tools", "wireguard-go": "wireguard-go", "dnsmasq": "dnsmasq-base",
         "nft": "nftables", "openssl": "openssl"}


def require() -> None:
    """Root, links, /dev/net/tun and the provider's tools, or skip (fail under CI)."""
    ok, why = can_make_links()
    if not ok:
        tier_unavailable(why)
    missing = [pkg for tool, pkg in TOOLS.items()
               if shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin") is None]
    if missing:
        tier_unavailable(f"missing Debian packages: {' '.join(missing)} (tests/setup-host)")
    if not os.path.exists("/dev/net/tun"):
        tier_unavailable("/dev/net/tun is missing: wireguard-go cannot run")


class Root:
    """Namespace NAME standing in for a guest's root namespace."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.procs: list[subprocess.Popen] = []
        sh("ip", "netns", "add", name)
        try:
            sh("ip", "-n", name, "link", "set", "lo", "up")
        except BaseException:
            kill_namespace(name)
            raise

    def py(self, code: str, *args: object, timeout: float = 30) -> str:
        """Python CODE run in this namespace: what it printed (it must succeed)."""
        p = subprocess.run(["ip", "netns", "exec", self.name, sys.executable, "-c", code,
                            *map(str, args)], capture_output=True, text=True, timeout=timeout)
        assert p.returncode == 0, p.stderr
        return p.stdout.strip()

    def script(self, path: Path, *args: object, timeout: float = 30) -> str:
        """The Python script PATH run in this namespace: what it printed."""
        p = subprocess.run(["ip", "netns", "exec", self.name, sys.executable, str(path),
                            *map(str, args)], capture_output=True, text=True, timeout=timeout)
        assert p.returncode == 0, p.stderr
        return p.stdout.strip()

    def spawn(self, code: str, *args: object) -> subprocess.Popen:
        p = subprocess.Popen(["ip", "netns", "exec", self.name, sys.executable, "-c", code,
                              *map(str, args)])
        self.procs.append(p)
        return p

    def close(self) -> None:
        for p in self.procs:
            p.kill()
            p.wait()
        kill_namespace(self.name)


class WgClient:
    """A WireGuard link NAME in ROOT with one peer at a time, as a tunnel's."""

    def __init__(self, root: Root, name: str, state: Path) -> None:
        self.root, self.name, self.state = root, name, state
        self.key = state / f"{name}.key"
        env = dict(os.environ, LOG_LEVEL="error")
        subprocess.run(["ip", "netns", "exec", root.name, "wireguard-go", name], env=env,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def ip(self, *args: str) -> None:
        sh("ip", "-n", self.root.name, *args)

    def up(self, priv: str, addrs: list[str], routes: list[str], mtu: int = 1420) -> None:
        fd = os.open(self.key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(priv + "\n")
        sh("ip", "netns", "exec", self.root.name, "wg", "set", self.name, "private-key",
           str(self.key))
        for addr in addrs:
            self.ip("addr", "add", addr, "dev", self.name, *(["nodad"] if ":" in addr else []))
        self.ip("link", "set", self.name, "mtu", str(mtu), "up")
        for route in routes:
            self.ip("route", "add", route, "dev", self.name)

    def use(self, pub: str, endpoint: str, allowed: str = "0.0.0.0/0",
            keepalive: int = 0) -> None:
        """PUB at ENDPOINT the one peer (as a failover moves the link)."""
        for old in sh("ip", "netns", "exec", self.root.name, "wg", "show", self.name,
                      "peers").stdout.split():
            sh("ip", "netns", "exec", self.root.name, "wg", "set", self.name, "peer", old,
               "remove")
        sh("ip", "netns", "exec", self.root.name, "wg", "set", self.name, "peer", pub,
           "endpoint", endpoint, "allowed-ips", allowed,
           "persistent-keepalive", str(keepalive) if keepalive else "off")

    def mtu(self, mtu: int) -> None:
        self.ip("link", "set", self.name, "mtu", str(mtu))

    def close(self) -> None:
        sh("ip", "-n", self.root.name, "link", "del", self.name, check=False)
        sock = f"/var/run/wireguard/{self.name}.sock"
        deadline = time.monotonic() + 5
        while os.path.exists(sock) and time.monotonic() < deadline:
            time.sleep(0.05)


FETCH = """
import sys, urllib.request
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=float(sys.argv[2])).read().decode())
except OSError as e:
    print("error:", e)
"""


def fetch(root: Root, url: str, timeout: float = 3) -> str:
    return root.py(FETCH, url, timeout)


def eventually(what: str, cond, timeout: float = 15) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)

"""Guest side: one node of the fake provider's network: a network namespace
of its own, joined to the "root" namespace by a veth pair.

In a guest the root is the guest's own network namespace, where wgns runs
(the host, from wgns's point of view). The host tests pass a namespace of
their own that stands in for it (`root`), so nothing they do touches the
machine's. Node K of tag T is namespace T+K; its public address is
10.251.I.2 (fdfb:I::2) and the root's side of the link 10.251.I.1
(fdfb:I::1), on link T+K+"h" in the root (the single provider of
provider.py is 10.251.0.0/24: I starts at 1). Every veth end sends no
segmentation-offloaded bursts (gso_max_segs 1): what crosses a link is one
packet at a time, as on a wire, for captures and for the MTU hop to see
each packet's real size. Stdlib only.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path


def sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, text=True, capture_output=True)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {p.returncode}): {p.stderr.strip()}")
    return p


def python() -> str:
    """The interpreter this harness runs on: the processes it starts use it."""
    return sys.executable or "python3"


def in_ns(ns: str | None, *cmd: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *cmd] if ns else list(cmd)


def kill_namespace(ns: str) -> None:
    """End every process left in network namespace NS (SIGTERM first, so a
    wireguard-go removes its socket; SIGKILL after 2 s), then delete NS."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = sh("ip", "netns", "pids", ns, check=False).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), sig)
            except (OSError, ValueError):
                pass
        deadline = time.monotonic() + 2
        while pids and time.monotonic() < deadline and sh(
                "ip", "netns", "pids", ns, check=False).stdout.split():
            time.sleep(0.05)
    sh("ip", "netns", "del", ns, check=False)


class Node:
    """Namespace TAG+KEY with a veth to the root; addresses from INDEX."""

    def __init__(self, tag: str, key: str, index: int, root: str | None = None) -> None:
        self.ns, self.host_if, self.root = f"{tag}{key}", f"{tag}{key}h", root
        self.index = index
        self.host4, self.public4 = f"10.251.{index}.1", f"10.251.{index}.2"
        self.host6, self.public6 = f"fdfb:{index:x}::1", f"fdfb:{index:x}::2"
        self.procs: list[subprocess.Popen] = []

    def ip_root(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return sh("ip", *(["-n", self.root] if self.root else []), *args, check=check)

    def run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        """CMD in this node's namespace."""
        return sh("ip", "netns", "exec", self.ns, *cmd, check=check)

    def spawn(self, cmd: list[str], log: Path | None = None,
              env: dict[str, str] | None = None) -> subprocess.Popen:
        """A long-running CMD in this node's namespace, stopped by teardown."""
        out = open(log, "a") if log else subprocess.DEVNULL
        try:
            p = subprocess.Popen(["ip", "netns", "exec", self.ns, *cmd], stdout=out,
                                 stderr=out, env=env)
        finally:
            if log:
                out.close()  # type: ignore[union-attr]
        self.procs.append(p)
        return p

    def root_run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        """CMD in the root namespace (the guest's, or the one standing in for it)."""
        return sh(*in_ns(self.root, *cmd), check=check)

    def link_up(self) -> None:
        """The namespace and its link to the root, addressed and up."""
        sh("ip", "netns", "add", self.ns)
        self.run("ip", "link", "set", "lo", "up")
        self.ip_root("link", "add", self.host_if, "gso_max_segs", "1", "type", "veth",
                     "peer", "name", "pub", "netns", self.ns, "gso_max_segs", "1")
        self.ip_root("addr", "add", f"{self.host4}/24", "dev", self.host_if)
        self.ip_root("addr", "add", f"{self.host6}/64", "dev", self.host_if, "nodad")
        self.ip_root("link", "set", self.host_if, "up")
        self.address_public()

    def address_public(self) -> None:
        """The public addresses on this node's end of its link ("pub"), up."""
        self.run("ip", "addr", "add", f"{self.public4}/24", "dev", "pub")
        self.run("ip", "addr", "add", f"{self.public6}/64", "dev", "pub", "nodad")
        self.run("ip", "link", "set", "pub", "up")

    def stop_procs(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self.procs = []

    def teardown(self) -> None:
        """Everything this node made, gone; also after a half-done setup."""
        self.stop_procs()
        kill_namespace(self.ns)
        self.ip_root("link", "del", self.host_if, check=False)


def wait_for(what: str, cond, timeout: float = 10, proc: subprocess.Popen | None = None,
             log: Path | None = None) -> None:
    """Wait until cond() holds; fail with what (and the log's tail) if PROC
    ends or TIMEOUT passes first."""
    deadline = time.monotonic() + timeout
    while not cond():
        if (proc is not None and proc.poll() is not None) or time.monotonic() > deadline:
            tail = log.read_text()[-2000:] if log and log.exists() else ""
            raise RuntimeError(f"{what} did not come up\n{tail}")
        time.sleep(0.05)


def reset(tag: str, root: str | None = None) -> None:
    """Take away the namespaces and root links of tag TAG's nodes that a
    scenario which broke off left behind (ROOT: the namespace standing in
    for the guest's, None in a guest)."""
    node = re.compile(rf"{re.escape(tag)}(\d+|\d+hop|api)")
    for line in sh("ip", "netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if node.fullmatch(name):
            kill_namespace(name)
    ip = ["ip", *(["-n", root] if root else [])]
    for line in sh(*ip, "-o", "link", "show", check=False).stdout.splitlines():
        name = line.split(":")[1].strip().split("@")[0] if ":" in line else ""
        if name.endswith("h") and node.fullmatch(name[:-1]):
            sh(*ip, "link", "del", name, check=False)


def set_hosts(path: Path, marker: str, entries: list[tuple[str, str]]) -> None:
    """Replace the lines marked MARKER in the hosts file PATH with ENTRIES
    (address, name); none: just remove them."""
    keep = [ln for ln in path.read_text().splitlines() if not ln.endswith(f"# {marker}")]
    path.write_text("\n".join(keep + [f"{a} {n}  # {marker}" for a, n in entries]) + "\n")

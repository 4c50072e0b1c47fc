"""Guest side: a path with a smaller MTU between the root and one pool
server (issue 21's MTU case), and a download's throughput through it.

`Hop(server, 1400).insert()` puts a switch between the server and the rest
of the provider's network: namespace TAG+N+"hop" bridges the root's link
(which keeps its name, addresses and MAC, so captures and neighbours go on)
and a new link to the server whose MTU is 1400. Like many real paths, the
hop drops what does not fit silently, fragments included (nftables in the
bridge): no ICMP "fragmentation needed" comes back, so path-MTU discovery
cannot learn the limit, and a tunnel with WireGuard's default MTU of 1420
stalls on large transfers. With a 1400 path and IPv4 outside, the largest
tunnel MTU that works is 1328, not 1340: the server's WireGuard (MTU 1420)
pads what it sends to a multiple of 16 bytes, so a 1340-byte packet leaves
it as 1344 + 60. `remove()` puts the server back on its own link.

`big_file` puts a large file on a server's web page; `download` fetches a
URL from inside a namespace (a tunnel's, as a confined service would) and
says how much arrived in how long. Stdlib only.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING

try:
    from .netnode import in_ns, kill_namespace, python, sh, wait_for
except ImportError:  # a guest runs the harness's modules side by side
    from netnode import in_ns, kill_namespace, python, sh, wait_for  # type: ignore[no-redef]

if TYPE_CHECKING:
    from .pool import Server

RULES = """table bridge wgns_mtu {{
  chain forward {{
    type filter hook forward priority 0; policy accept;
    ether type ip ip frag-off & 0x3fff != 0 counter drop
    ether type ip6 exthdr frag exists counter drop
    meta length > {mtu} counter drop
  }}
}}
"""


def mac_of(ns: str, link: str) -> str:
    out = sh("ip", "-n", ns, "-o", "link", "show", link).stdout
    m = re.search(r"link/ether ([0-9a-f:]{17})", out)
    if not m:
        raise RuntimeError(f"{link} in {ns} has no MAC address: {out.strip()}")
    return m.group(1)


class Hop:
    """A switch with an MTU-limited link in front of SERVER (a pool.Server)."""

    def __init__(self, server: Server, mtu: int = 1400) -> None:
        self.server, self.mtu = server, mtu
        self.ns = f"{server.ns}hop"
        self.mac = ""  # the server's link's MAC, which the root's neighbours know

    def ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return sh("ip", "-n", self.ns, *args, check=check)

    def inserted(self) -> bool:
        return os.path.exists(f"/run/netns/{self.ns}")

    def insert(self) -> None:
        """The hop in place (idempotent); after a failure, nothing changed."""
        if self.inserted():
            return
        s = self.server
        self.mac = mac_of(s.ns, "pub")
        sh("ip", "netns", "add", self.ns)
        try:
            # The hop forwards frames and has no address of its own.
            sh("ip", "netns", "exec", self.ns, "sh", "-c",
               "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; "
               "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6")
            s.run("ip", "link", "set", "pub", "netns", self.ns)
            self.ip("link", "set", "pub", "name", "tohost")
            self.ip("link", "set", "tohost", "address", f"02:00:00:fb:{s.index % 256:02x}:01")
            m = str(self.mtu)
            self.ip("link", "add", "tosrv", "mtu", m, "gso_max_segs", "1", "type", "veth",
                    "peer", "name", "pub", "netns", s.ns, "mtu", m, "gso_max_segs", "1",
                    "address", self.mac)
            s.address_public()
            self.ip("link", "add", "br0", "type", "bridge")
            for port in ("tohost", "tosrv"):
                self.ip("link", "set", port, "master", "br0")
            for link in ("tohost", "tosrv", "br0", "lo"):
                self.ip("link", "set", link, "up")
            rules = s.state / "mtu.nft"
            rules.write_text(RULES.format(mtu=self.mtu))
            sh("ip", "netns", "exec", self.ns, "nft", "-f", str(rules))
            # The new link takes a moment before frames cross the bridge.
            code = "import socket, sys; socket.create_connection((sys.argv[1], 80), 0.5).close()"
            wait_for(f"the path to {s.name} through the hop", lambda: s.root_run(
                python(), "-c", code, s.public4, check=False).returncode == 0)
        except BaseException:
            self.remove()
            raise

    def drops(self) -> int:
        """Packets the hop dropped so far: too large, or fragments."""
        out = sh("ip", "netns", "exec", self.ns, "nft", "list", "table", "bridge",
                 "wgns_mtu").stdout
        return sum(int(n) for n in re.findall(r"counter packets (\d+)", out))

    def remove(self) -> None:
        """The server on its own link again, the hop gone (idempotent)."""
        if not self.inserted():
            return
        s = self.server
        self.ip("link", "del", "tosrv", check=False)  # and the server's end with it
        for name in ("tohost", "pub"):  # the root's link's other end: back to the server
            if self.ip("link", "show", name, check=False).returncode == 0:
                self.ip("link", "set", name, "nomaster", check=False)
                self.ip("link", "set", name, "down")
                if name != "pub":
                    self.ip("link", "set", name, "name", "pub")
                if self.mac:
                    self.ip("link", "set", "pub", "address", self.mac)
                self.ip("link", "set", "pub", "netns", s.ns)
                s.address_public()
                break
        kill_namespace(self.ns)


def big_file(server: Server, size: int = 32 << 20) -> str:
    """A file of SIZE bytes on SERVER's web page; its path there."""
    path = server.state / "www" / "big.bin"
    with open(path, "wb") as f:
        f.truncate(size)
    return "/big.bin"


DOWNLOAD = """
import json, sys, time, urllib.request
url, limit, stall = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
t, got, err = time.monotonic(), 0, ""
try:
    with urllib.request.urlopen(url, timeout=stall) as r:
        while True:
            chunk = r.read(65536)
            if not chunk:
                break
            got += len(chunk)
            if time.monotonic() - t > limit:
                err = "not done in %s s" % limit
                break
except (OSError, ValueError) as e:  # a stalled read times out (socket.timeout)
    err = "%s: %s" % (type(e).__name__, e)
print(json.dumps({"bytes": got, "seconds": time.monotonic() - t, "error": err}))
"""


@dataclass
class Download:
    bytes: int
    seconds: float
    error: str

    @property
    def mbit_s(self) -> float:
        return self.bytes * 8 / 1e6 / self.seconds if self.seconds > 0 else 0.0


def download(url: str, netns: str | None = None, limit: float = 60,
             stall: float = 5) -> Download:
    """Fetch URL from inside NETNS (None: here), for at most LIMIT seconds;
    a transfer that stalls gives up STALL seconds after its last byte."""
    p = subprocess.run(in_ns(netns, python(), "-c", DOWNLOAD, url, str(limit), str(stall)),
                       capture_output=True, text=True, timeout=limit + stall + 30)
    try:
        doc = json.loads(p.stdout)
    except ValueError:
        return Download(0, 0.0, f"exit {p.returncode}: {p.stderr.strip()[-300:]}")
    return Download(int(doc["bytes"]), float(doc["seconds"]), str(doc["error"]))

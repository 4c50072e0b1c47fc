"""Guest side: a client of the fake provider's pool (pool.py) as one
server sees it, and its wg-quick file as the provider's download has it.
Stdlib only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .pool import Server


@dataclass
class Client:
    """One client key's view of one server: what its wg-quick file says."""
    server: Server
    priv: str
    pub: str
    addrs: list[str]
    dns: list[str] = field(default_factory=list)
    psk: str = ""

    def conf(self, endpoint: str = "address", dns: str = "gateway",
             allowed_ips: str = "0.0.0.0/0, ::/0", mtu: int | None = None,
             keepalive: int | None = 25) -> str:
        """The server's wg-quick file for this client, as a provider's
        download has it. endpoint: "address" (10.251.N.2:51820) or "name"
        (the host name); dns: "gateway" (the style's DNS), "own" (this
        server's own DNS address) or "none"."""
        s = self.server
        host = s.public4 if endpoint == "address" else s.hostname
        servers = {"gateway": self.dns, "own": [s.own_dns], "none": []}[dns]
        lines = [f"# {s.name}: a server of the fake provider's pool", "[Interface]",
                 f"PrivateKey = {self.priv}", f"Address = {', '.join(self.addrs)}"]
        lines += [f"DNS = {', '.join(servers)}"] if servers else []
        lines += [f"MTU = {mtu}"] if mtu else []
        lines += ["", "[Peer]", f"PublicKey = {s.pub}"]
        lines += [f"PresharedKey = {self.psk}"] if self.psk else []
        lines += [f"AllowedIPs = {allowed_ips}", f"Endpoint = {host}:{s.port}"]
        lines += [f"PersistentKeepalive = {keepalive}"] if keepalive else []
        return "\n".join(lines) + "\n"


def write_confs(directory: Path, clients: list[Client], **conf: object) -> list[Path]:
    """Each client's wg-quick file as DIRECTORY/SERVER.conf (0600), as a
    provider's download would be; conf: Client.conf's options."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for c in clients:
        path = directory / f"{c.server.name}.conf"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(c.conf(**conf))  # type: ignore[arg-type]
        paths.append(path)
    return paths

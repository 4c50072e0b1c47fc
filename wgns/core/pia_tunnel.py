"""A tunnel made through Private Internet Access's API (over core/pia.py),
the part both sides need: `wgns install --provider pia` (admin/pia.py)
makes the first one, the watcher (runtime/rereg.py) makes a new one when
PIA forgot the key. The region picked from the server list, a fresh key
registered with the first of its servers that takes it, and from addKey's
answer the tunnel and the provider's part of its record. Nothing here
writes a file or logs; a key never appears in a message."""

from __future__ import annotations

import base64
import ipaddress

from . import pia, x25519
from .config import Peer, Secret, Tunnel
from .errors import WgnsError
from .pia_http import PiaError, Refused
from .provider import Pia
from .values import parse_endpoint, parse_interface_address, parse_network

KEEPALIVE = 25   # as PIA's scripts write it
TRIED = 3        # servers of the region asked, at most
REGION_HINT = "the ids are those of PIA's server list, e.g. de-frankfurt, swiss, us_california"


def shown_region(region: str) -> str:
    """REGION as an error message may show it (printable, cut short)."""
    return "".join(c for c in region[:40] if c.isprintable())


def pick(regions: list[pia.Region], region: str) -> pia.Region:
    """REGION of the list, or an error naming a few that exist."""
    for r in regions:
        if r.id == region:
            return r
    known = sorted(r.id for r in regions)
    close = [r for r in known if r.split("_")[0] == region.split("_")[0]] or known
    raise WgnsError(f"--region {shown_region(region)!r}: PIA has no such region with "
                    "WireGuard servers"
                    + (f" (some that exist: {', '.join(close[:6])})" if known else ""),
                    hint=REGION_HINT)


def register(region: pia.Region, ca: str, tok: str) -> tuple[bytes, pia.Server,
                                                               pia.Registration]:
    """A fresh key registered with the first of REGION's servers that takes
    it: (private key, the server, addKey's answer)."""
    errors: list[str] = []
    for server in region.servers[:TRIED]:
        private, public = x25519.generate()
        try:
            return private, server, pia.add_key(server, ca, tok,
                                                base64.b64encode(public).decode())
        except Refused:
            raise
        except PiaError as e:
            errors.append(e.message)
    raise PiaError(errors[-1] + (f" (and {len(errors) - 1} more of the region's servers)"
                                 if len(errors) > 1 else ""))


def made(name: str, private: bytes, reg: pia.Registration, mtu: int | None) -> Tunnel:
    """The tunnel addKey's answer gives, with PRIVATE as its key."""
    return Tunnel(
        name=name, private_key=Secret(base64.b64encode(private).decode()),
        addresses=(parse_interface_address(f"{reg.peer_ip}/32", "peer_ip"),),
        peers=(Peer(public_key=reg.server_key,
                    allowed_ips=tuple(parse_network(n, "AllowedIPs")
                                      for n in ("0.0.0.0/0", "::/0")),
                    endpoint=parse_endpoint(f"{reg.server_ip}:{reg.server_port}", "endpoint"),
                    keepalive=KEEPALIVE),),
        dns=tuple(ipaddress.IPv4Address(d) for d in reg.dns), mtu=mtu,
        warnings=() if reg.dns else ("PIA gave no DNS server: confined services will not "
                                     "resolve names",))


def provider_of(region: pia.Region, server: pia.Server, reg: pia.Registration,
                api: str | None, ca_source: str | None, ca_pem: str,
                account: tuple[str, str]) -> Pia:
    """The provider's part of the record for that registration."""
    return Pia(region=region.id, hostname=server.cn, server_ip=reg.server_ip,
               gateway=reg.gateway, api=api, ca_source=ca_source, ca_pem=ca_pem,
               account=account)

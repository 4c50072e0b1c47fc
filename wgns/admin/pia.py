"""`wgns install --provider pia`: a tunnel made through Private Internet
Access's API (core/pia.py) instead of from a wg-quick file. The account
read and checked, a token, the server list, the region's WireGuard server,
a fresh key registered with it (addKey); from the answer an ordinary
tunnel and the provider's part of its record. Everything is asked before
anything is written: a refusal or a hostile answer writes nothing. These
requests leave the host outside any tunnel: they are what makes one."""

from __future__ import annotations

import base64
import ipaddress
import os

from ..core import pia, x25519
from ..core.config import Peer, Secret, Tunnel, check_name
from ..core.errors import WgnsError
from ..core.pia_http import PIA_CA, PiaError, Refused
from ..core.portconf import CONTROL
from ..core.provider import Pia, read_account, read_ca
from ..core.values import parse_endpoint, parse_interface_address, parse_network

KEEPALIVE = 25   # as PIA's scripts write it


def pick(regions: list[pia.Region], region: str) -> pia.Region:
    """REGION of the list, or an error naming a few that exist."""
    for r in regions:
        if r.id == region:
            return r
    known = sorted(r.id for r in regions)
    close = [r for r in known if r.split("_")[0] == region.split("_")[0]] or known
    shown = "".join(c for c in region[:40] if c.isprintable())
    raise WgnsError(f"--region {shown!r}: PIA has no such region with WireGuard servers"
                    + (f" (some that exist: {', '.join(close[:6])})" if known else ""),
                    hint="the ids are those of PIA's server list, e.g. de-frankfurt, "
                    "swiss, us_california")


def register(region: pia.Region, ca: str, tok: str) -> tuple[bytes, pia.Server,
                                                               pia.Registration]:
    """A fresh key registered with the first of REGION's servers that takes
    it: (private key, the server, addKey's answer)."""
    errors: list[str] = []
    for server in region.servers[:3]:
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


def tunnel(name: str, region: str, account: str, api: str | None, ca: str | None,
           mtu: int | None = None) -> tuple[Tunnel, Pia]:
    """The tunnel and its provider record, from PIA's API."""
    check_name(name)
    api = pia.check_api(api) if api is not None else None
    if ca is not None and CONTROL.search(ca):   # the record keeps its path
        raise WgnsError("--pia-ca: the path holds a control character",
                        hint="rename the file or give another path")
    ca_path = ca if ca is not None else PIA_CA
    ca_pem = read_ca(ca_path)
    login = read_account(account)
    where = pia.Api(api, ca_path)
    try:
        tok = pia.token(where, *login)
    except Refused as e:
        raise WgnsError(f"{e.message}: check the username and password in --account "
                        f"{account}") from None
    chosen = pick(pia.regions(where), region)
    private, server, reg = register(chosen, ca_path, tok)
    if mtu is not None and not 1280 <= mtu <= 65535:
        raise WgnsError(f"--mtu {mtu} must be from 1280 to 65535")
    t = Tunnel(
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
    return t, Pia(region=chosen.id, hostname=server.cn, server_ip=reg.server_ip,
                  gateway=reg.gateway, api=api,
                  ca_source=os.path.abspath(ca) if ca is not None else None, ca_pem=ca_pem,
                  account=login)

"""`wgns install --provider pia`: a tunnel made through Private Internet
Access's API (core/pia.py) instead of from a wg-quick file. The account
read and checked, a token, the server list, the region's WireGuard server,
a fresh key registered with it (addKey); from the answer an ordinary
tunnel and the provider's part of its record. Everything is asked before
anything is written: a refusal or a hostile answer writes nothing. These
requests leave the host outside any tunnel: they are what makes one."""

from __future__ import annotations

import os

from ..core import pia
from ..core.config import Tunnel, check_name
from ..core.errors import WgnsError
from ..core.pia_http import PIA_CA, Refused
from ..core.pia_tunnel import REGION_HINT, made, pick, provider_of, register, shown_region
from ..core.portconf import CONTROL
from ..core.provider import Pia, read_account, read_ca


def tunnel(name: str, region: str, account: str, api: str | None, ca: str | None,
           mtu: int | None = None) -> tuple[Tunnel, Pia]:
    """The tunnel and its provider record, from PIA's API."""
    check_name(name)
    # What can be checked here is, before the login leaves the host.
    if not pia.NAME.fullmatch(region):
        raise WgnsError(f"--region {shown_region(region)!r} is not a PIA region id",
                        hint=REGION_HINT)
    if mtu is not None and not 1280 <= mtu <= 65535:
        raise WgnsError(f"--mtu {mtu} must be from 1280 to 65535")
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
    t = made(name, private, reg, mtu)
    return t, provider_of(chosen, server, reg, api,
                          os.path.abspath(ca) if ca is not None else None, ca_pem, login)

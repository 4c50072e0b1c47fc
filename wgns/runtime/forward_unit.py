"""The port forwarding unit's entry (`helper.py forward NAME`): its
settings and logins from the credentials systemd hands it
(LoadCredential=), the clients made from them, and the forwarder that
keeps the port: NAT-PMP at a gateway (forwarder.Forwarder) or a port the
provider reserved (forwarder.Static). Output goes to its runtime
directory."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Callable

from ..core import portconf
from ..core.errors import WgnsError
from ..core.paths import login_credential
from ..core.safeio import read_text
from .forward_sync import Client
from .forwarder import Forwarder, Static


def read_logins(creds: str) -> dict[str | None, tuple[str, str]]:
    """{None: every client's login, CLIENT: its own}, for those given."""
    out: dict[str | None, tuple[str, str]] = {}
    for client in (None, *portconf.CLIENTS):
        path = f"{creds}/{login_credential(client)}"
        if os.path.exists(path):
            out[client] = portconf.parse_login(read_text(path, portconf.MAX_COPY_BYTES),
                                               f"forward {login_credential(client)}")
    return out


def clients(settings: portconf.Settings, logins: dict[str | None, tuple[str, str]],
            name: str, log: Callable[[str], None]) -> list[Client]:
    """Each client of SETTINGS with its login (its own, else the one for all)."""
    from .clients import QBittorrent, Transmission
    from .deluge import Deluge
    from .hook import Command
    from .rtorrent import RTorrent
    kinds: dict[str, Callable[[str, tuple[str, str] | None], Client]] = {
        "qbittorrent": QBittorrent, "transmission": Transmission, "deluge": Deluge,
             "rtorrent": RTorrent}
    out: list[Client] = [kinds[c](url, logins.get(c, logins.get(None)))
                         for c, url in settings.clients()]
    if settings.command:
        out.append(Command(settings.command, name, log=log))
    return out


def _pia(name: str, settings: portconf.Settings, creds: str, made: list[Client], out: Path,
         secrets: tuple[str, ...]) -> Forwarder:
    """PIA's method: the account and authority from the credentials, the
    signed port kept in the state directory."""
    from ..core.pia import Api
    from .pia_port import Calls, PiaPort
    assert settings.gateway is not None and settings.pia is not None
    account = portconf.parse_login(read_text(f"{creds}/pia-account", portconf.MAX_COPY_BYTES),
                                   "the PIA account")
    state = os.environ.get("STATE_DIRECTORY", f"/var/lib/wgns/{name}").split(":")[0]
    calls = Calls(account, Api(settings.pia_api, f"{creds}/pia-ca"), settings.gateway,
                  settings.pia)
    return PiaPort(name, settings.gateway, calls, made, out, Path(state),
                   secrets=(*secrets, account[1]))


def main(name: str) -> None:
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    if not creds:
        raise WgnsError("no $CREDENTIALS_DIRECTORY: run this from its unit, "
                        f"wgns-{name}-forward.service")
    settings = portconf.parse(read_text(f"{creds}/settings", 65536), "forward settings")
    logins = read_logins(creds)
    out = Path(os.environ.get("RUNTIME_DIRECTORY", f"/run/wgns/{name}").split(":")[0])
    secrets = tuple(sorted({password for _, password in logins.values() if password}))
    made = clients(settings, logins, name, log=lambda s: fw.log(s))
    fw: Forwarder
    if settings.static is not None:
        fw = Static(name, settings.static, made, out, secrets=secrets)
    elif settings.pia is not None:
        fw = _pia(name, settings, creds, made, out, secrets)
    else:
        assert settings.gateway is not None
        fw = Forwarder(name, settings.gateway, made, out, secrets=secrets)

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    try:
        fw.run()
    finally:
        fw.release()

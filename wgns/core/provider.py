"""The provider a tunnel was made through (`wgns install --provider pia`),
as its record keeps it: what port forwarding and a new registration need
later. The account (username and password) is kept in record.json (0600,
as a client's login) and rendered into /etc/wgns/NAME/pia.account (0600),
which the forwarding unit gets as a credential; never in a unit's text,
an argument, the environment or a message."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError, WgnsError
from .names import check_address
from .pia import NAME, check_api
from .portconf import CONTROL, login_path_error, parse_login
from .safeio import read_text

PROVIDERS = ("pia",)
MAX_ACCOUNT_BYTES = 4096
MAX_CA_BYTES = 64 * 1024


@dataclass(frozen=True)
class Pia:
    """A PIA tunnel: its REGION and server (HOSTNAME, the TLS name of its
    certificate, at SERVER_IP, GATEWAY inside the tunnel), the API base
    (None: PIA's own), the authority (CA_PEM, as read from CA_SOURCE) and
    the account."""
    region: str
    hostname: str
    server_ip: str
    gateway: str
    api: str | None
    ca_source: str | None           # the --pia-ca given (None: PIA's, as wgns ships it)
    ca_pem: str = field(repr=False)
    account: tuple[str, str] = field(repr=False)


def read_account(path: str) -> tuple[str, str]:
    """--account FILE: 'username=' and 'password=' lines in a regular file
    of the user running wgns that no one else may read."""
    key = path.partition("=")[0].strip().lower()
    if "=" in path and key in ("username", "password", "user", "pass") \
            and not os.path.lexists(path):
        raise WgnsError("--account: a login line was given where a file goes (not shown)",
                        hint="put username= and password= lines in a 0600 file and give "
                        "its path")
    try:
        st = os.stat(path)
    except OSError as e:
        raise login_path_error("--account", path, e) from None
    if stat.S_ISREG(st.st_mode) and st.st_uid != os.geteuid():
        raise WgnsError(f"--account {path} belongs to uid {st.st_uid}, not to the user "
                        "running wgns", hint=f"chown root {path}")
    if stat.S_ISREG(st.st_mode) and st.st_mode & 0o077:
        raise WgnsError(f"--account {path} may be read by others "
                        f"(mode {stat.S_IMODE(st.st_mode):04o})", hint=f"chmod 600 {path}")
    user, password = parse_login(read_text(path, MAX_ACCOUNT_BYTES), f"--account {path}")
    if not user or not password:
        raise WgnsError(f"--account {path}: the username or the password is empty")
    return user, password


def read_ca(path: str) -> str:
    """--pia-ca FILE (or the CA wgns ships): one or more PEM certificates,
    with LF line ends (the record takes no other control character)."""
    text = read_text(path, MAX_CA_BYTES, encoding="ascii").replace("\r\n", "\n")
    if "-----BEGIN CERTIFICATE-----" not in text \
            or any(not (c.isprintable() or c == "\n") for c in text):
        raise WgnsError(f"--pia-ca {path}: not a PEM certificate")
    return text


def to_json(p: Pia) -> dict[str, Any]:
    return {"provider": "pia", "region": p.region, "hostname": p.hostname,
            "server_ip": p.server_ip, "gateway": p.gateway, "api": p.api,
            "ca_source": p.ca_source, "ca_pem": p.ca_pem, "account": list(p.account)}


def shown(p: Pia) -> dict[str, Any]:
    """As status --json shows it: no password, no certificate text."""
    data = to_json(p)
    data.pop("ca_pem")
    data["account"] = {"username": p.account[0], "password": "(hidden)"}
    return data


def from_json(item: Any, where: str) -> Pia | None:
    if item is None:
        return None
    if not isinstance(item, dict) or item.get("provider") not in PROVIDERS:
        raise ConfigError(where, "provider is not an object of provider pia")

    def text(key: str, optional: bool = False) -> Any:
        value = item.get(key)
        if value is None and optional:
            return None
        if not isinstance(value, str) or CONTROL.search(value.replace("\n", "")):
            raise ConfigError(where, f"the provider's {key} is not a string")
        return value
    for key in ("region", "hostname"):
        if not NAME.fullmatch(text(key)):
            raise ConfigError(where, f"the provider's {key} is not a PIA name")
    account = item.get("account")
    if not (isinstance(account, list) and len(account) == 2
            and all(isinstance(x, str) and x and not CONTROL.search(x) for x in account)):
        raise ConfigError(where, "the provider's account is not [username, password]")
    api = text("api", optional=True)
    try:
        addrs = [str(check_address(text(k), k)) for k in ("server_ip", "gateway")]
        api = check_api(api) if api is not None else None
    except WgnsError as e:
        raise ConfigError(where, e.message) from None
    if "-----BEGIN CERTIFICATE-----" not in text("ca_pem"):
        raise ConfigError(where, "the provider's ca_pem is not a PEM certificate")
    return Pia(item["region"], item["hostname"], addrs[0], addrs[1], api,
               text("ca_source", optional=True),
               item["ca_pem"], (account[0], account[1]))


def render_account(p: Pia, header: str) -> str:
    return f"{header}\nusername={p.account[0]}\npassword={p.account[1]}\n"

"""Port forwarding settings: what `wgns port-forward` stores in
/etc/wgns/NAME/forward.conf and the unit reads back, and the login file.
Shared by both sides; every value is checked on the way in and again on
the way out, and a password is never part of a message."""

from __future__ import annotations

import errno
import ipaddress
import re
import urllib.parse
from dataclasses import dataclass

from .errors import WgnsError
from .names import check_address, check_utf8, printable

MAX_COMMAND = 4096
# wgns's copy of a login or PIA account file (what the unit reads): the file
# as given (4096 bytes at most) and the header line wgns adds.
MAX_COPY_BYTES = 8192
# The clients wgns keeps on the port, each with its option (--NAME URL) and
# its own login if given one (--credentials NAME=FILE).
CLIENTS = ("qbittorrent", "transmission", "deluge", "rtorrent")
KEYS = ("gateway", "static", "pia", "pia_api", *CLIENTS, "exec")
PIA_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


@dataclass(frozen=True)
class Settings:
    """What the unit needs: a NAT-PMP GATEWAY or a reserved (STATIC) port,
    exactly one of them, and the clients' URLs."""
    gateway: str | None
    qbittorrent: str | None = None
    transmission: str | None = None
    command: str | None = None
    static: int | None = None
    deluge: str | None = None
    rtorrent: str | None = None
    pia: str | None = None         # PIA's method: the server's name (its TLS name)
    pia_api: str | None = None     # PIA's API base for a token (None: PIA's own)

    def clients(self) -> list[tuple[str, str]]:
        """(client, URL) of each client given, in CLIENTS' order."""
        return [(c, url) for c, url in ((c, getattr(self, c)) for c in CLIENTS) if url]

    def hosts(self) -> list[str]:
        """Addresses the unit talks to: the gateway and each client's."""
        out = [self.gateway] if self.gateway else []
        for _, url in self.clients():
            host = urllib.parse.urlsplit(url).hostname or ""
            if host != "localhost" and host not in out:
                out.append(host)
        return out


def check_gateway(value: str) -> str:
    addr = check_address(value, "--gateway")
    if addr.version != 4:
        raise WgnsError(f"--gateway {addr}: NAT-PMP gateways have IPv4 addresses")
    if addr.is_unspecified or addr.is_loopback or addr.is_multicast or addr.is_reserved:
        raise WgnsError(f"--gateway {addr}: not an address a gateway can have",
                        hint="give the provider's gateway inside the tunnel, e.g. 10.2.0.1")
    return str(addr)


def check_static(value: int) -> int:
    """A reserved port, as the provider assigned it (1-65535)."""
    if type(value) is not int or not 1 <= value <= 65535:
        raise WgnsError(f"--static {printable(str(value), 'port')}: not a port from 1 to 65535")
    return value


def check_url(value: str, what: str, scgi: bool = False) -> str:
    """http(s)://ADDRESS[:PORT][/path] with a literal address or localhost:
    the client runs in the tunnel's namespace, where no name is looked up
    for it. No user:password@ (use --credentials), no query, no fragment.
    With SCGI (rTorrent), also scgi://ADDRESS:PORT, without a path."""
    check_utf8(value, what)
    if CONTROL.search(value) or " " in value or len(value) > 512:
        raise WgnsError(f"{what}: {printable(value, 'URL')} is not a URL")
    try:
        parts = urllib.parse.urlsplit(value)
        port = parts.port
    except ValueError:
        raise WgnsError(f"{what}: {printable(value, 'URL')} is not a URL") from None
    schemes = ("http", "https", "scgi") if scgi else ("http", "https")
    if parts.scheme not in schemes or not parts.hostname:
        raise WgnsError(f"{what}: {printable(value, 'URL')} is not an http:// or "
                        "https://" + (" or scgi://" if scgi else "") + " URL",
                        hint="for example " + ("scgi://127.0.0.1:5000" if scgi
                                               else "http://127.0.0.1:8080"))
    if parts.scheme == "scgi" and (parts.path or port is None):
        raise WgnsError(f"{what}: {printable(value, 'URL')}: give scgi://ADDRESS:PORT, "
                        "without a path")
    if "@" in parts.netloc:
        raise WgnsError(f"{what}: a login in the URL would end up in a file others "
                          "may read", hint="put it in a 0600 file and pass --credentials")
    if parts.query or parts.fragment:
        raise WgnsError(f"{what}: {printable(value, 'URL')} has a query or fragment")
    host = parts.hostname
    if host != "localhost":
        check_address(host, what)
        bracketed = parts.netloc.startswith("[")
        if (ipaddress.ip_address(host).version == 6) != bracketed:
            raise WgnsError(f"{what}: {printable(value, 'URL')}: write an IPv6 "
                              "address in brackets")
    if port == 0:
        raise WgnsError(f"{what}: port 0")
    if not re.fullmatch(r"[A-Za-z0-9._~/%-]*", parts.path):
        raise WgnsError(f"{what}: {printable(value, 'URL')} has an odd path")
    return value


def check_inside(url: str, what: str, own: list[str]) -> None:
    """The client's API must be in the tunnel's namespace: on loopback or on
    one of the tunnel's own addresses. Any other address is reached through
    the tunnel, across the provider's network, and the calls (the login with
    them, in clear text over http) would travel there."""
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return
    addr = ipaddress.ip_address(host)
    if not (addr.is_loopback or addr.is_unspecified or str(addr) in own):
        raise WgnsError(f"{what}: {addr} is outside the tunnel's namespace; the calls and "
                        "the login would go through the tunnel to the provider's network",
                        hint="the client runs confined: give http://127.0.0.1:PORT")


def check_command(value: str) -> str:
    if len(value) > MAX_COMMAND:
        raise WgnsError(f"--exec: {len(value)} characters, more than {MAX_COMMAND}",
                        hint="put the commands in a script and give its path")
    check_utf8(value, "--exec")
    if not value.strip() or CONTROL.search(value):
        raise WgnsError("--exec: give one line of shell, without control characters")
    return value


def render(settings: Settings, header: str) -> str:
    lines = [header, f"gateway={settings.gateway}" if settings.gateway is not None
             else f"static={settings.static}"]
    lines += [f"{k}={v}" for k, v in (("pia", settings.pia), ("pia_api", settings.pia_api))
              if v is not None]
    for key, value in (*settings.clients(), ("exec", settings.command)):
        if value:
            lines.append(f"{key}={value}")
    return "\n".join(lines) + "\n"


def parse(text: str, where: str) -> Settings:
    values: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or key not in KEYS or key in values:
            raise WgnsError(f"{where}: line {n} is not one of {', '.join(KEYS)} (once each)")
        values[key] = value
    if ("gateway" in values) == ("static" in values):
        raise WgnsError(f"{where}: needs a gateway or a static port (one of them)")
    static = values.get("static")
    if static is not None and not re.fullmatch(r"[0-9]{1,5}", static):
        raise WgnsError(f"{where}: static is not a port")
    urls = {c: check_url(values[c], c, scgi=c == "rtorrent") if c in values else None
            for c in CLIENTS}
    pia, pia_api = values.get("pia"), values.get("pia_api")
    if (pia is not None and ("gateway" not in values or not PIA_NAME.fullmatch(pia))) \
            or (pia_api is not None and pia is None):
        raise WgnsError(f"{where}: pia needs a gateway and a PIA server's name, pia_api pia")
    if pia_api is not None:
        from .pia import check_api
        pia_api = check_api(pia_api)
    return Settings(pia=pia, pia_api=pia_api,
        gateway=check_gateway(values["gateway"]) if "gateway" in values else None,
        command=check_command(values["exec"]) if "exec" in values else None,
        static=check_static(int(static)) if static is not None else None, **urls)


def parse_login(text: str, where: str, password_only: bool = False) -> tuple[str, str]:
    """`username=NAME` and `password=SECRET` lines (# comments allowed);
    with PASSWORD_ONLY (Deluge's login) the username may be left out."""
    found: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or key not in ("username", "password") or key in found:
            raise WgnsError(f"{where}: line {n} is not 'username=...' or 'password=...' "
                              "(once each)")
        if CONTROL.search(value):
            raise WgnsError(f"{where}: line {n} holds a control character")
        found[key] = value
    if password_only and "password" in found:
        found.setdefault("username", "")
    if set(found) != {"username", "password"}:
        raise WgnsError(f"{where}: needs a 'username=' and a 'password=' line")
    return found["username"], found["password"]


def login_path_error(option: str, path: str, e: OSError) -> WgnsError:
    """A login or account file that cannot be opened. A path that does
    not exist is not echoed: it may be the password itself, typed where
    the file's path goes."""
    if e.errno == errno.ENOENT:
        return WgnsError(f"{option}: no such file (what was given is not shown: it may be "
                         "a password)", hint="give the path of a 0600 file holding "
                         "username= and password= lines")
    return WgnsError(f"{option} {path}: {e.strerror}")


def render_login(login: tuple[str, str], header: str) -> str:
    return f"{header}\nusername={login[0]}\npassword={login[1]}\n"


def default_gateway(addresses: list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]) -> str:
    """The provider's gateway, as providers set it up: the first address of
    the tunnel's IPv4 subnet. A /32 (ProtonVPN's 10.2.0.2/32) says nothing of
    the subnet: then its /24, so 10.2.0.2/32 gives 10.2.0.1."""
    for iface in addresses:
        if iface.version == 4:
            prefix = iface.network.prefixlen
            net = iface.network if prefix <= 30 else ipaddress.ip_network(
                f"{iface.ip}/24", strict=False)
            return str(net.network_address + 1)
    raise WgnsError("the tunnel has no IPv4 address to find a NAT-PMP gateway from",
                      hint="give --gateway ADDRESS")

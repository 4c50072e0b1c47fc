"""Parse and validate wg-quick files into frozen dataclasses.

Nothing here touches the system: the parser reads text and returns a
`Tunnel`, or raises `ConfigError` naming the file, the line and the field.
Keys are wrapped in `Secret`, whose repr never shows them, so that a key can
not end up in a log line or a traceback by accident.
"""

from __future__ import annotations

import binascii
import os
import re
from dataclasses import dataclass, field
from typing import Iterable

from .errors import ConfigError
from .names import TUNNEL_RE, printable
from .values import (  # noqa: F401  (Endpoint and the parsers are part of this API)
    Endpoint,
    IPAddress,
    IPInterface,
    IPNetwork,
    _int,
    _split,
    parse_dns,
    parse_endpoint,
    parse_interface_address,
    parse_network,
)
from .wgquick import Values, ignored, sections

MAX_CONF_BYTES = 256 * 1024
# Whole base64 quanta, '=' padding only at the end (RFC 4648, as strict).
BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?",
                    flags=re.ASCII)

class Secret:
    """A base64 WireGuard key that never shows itself in repr or str."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def raw(self) -> bytes:
        return binascii.a2b_base64(self._value)

    def __repr__(self) -> str:
        return "Secret(<hidden>)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Peer:
    public_key: str
    allowed_ips: tuple[IPNetwork, ...]
    endpoint: Endpoint | None = None
    preshared_key: Secret | None = None
    keepalive: int | None = None


@dataclass(frozen=True)
class Tunnel:
    name: str
    private_key: Secret
    addresses: tuple[IPInterface, ...]
    peers: tuple[Peer, ...]
    dns: tuple[IPAddress, ...] = ()
    search: tuple[str, ...] = ()
    mtu: int | None = None
    listen_port: int | None = None
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def route_prefixes(self) -> tuple[IPNetwork, ...]:
        """The prefixes to route into the tunnel: every peer's AllowedIPs,
        each once, in order (0.0.0.0/0 and ::/0 become default routes)."""
        seen: dict[IPNetwork, None] = {}
        for peer in self.peers:
            for net in peer.allowed_ips:
                seen.setdefault(net)
        return tuple(seen)


def check_name(name: str) -> str:
    if not TUNNEL_RE.fullmatch(name):
        raise ConfigError(
            "--name", f"invalid tunnel name {printable(name, 'name')}",
            hint="use 1-15 characters from a-z, 0-9, '-' and '_', "
            "starting with a letter or digit",
        )
    return name


def check_key(value: str, source: str, what: str, line: int | None = None) -> str:
    value = value.strip()
    # What a2b_base64(strict_mode=True) (Python >= 3.11) checks, for every
    # Python: the base64 alphabet only, padding only at the end.
    if not BASE64.fullmatch(value):
        raise ConfigError(source, f"{what} is not valid base64", line)
    try:
        raw = binascii.a2b_base64(value.encode("ascii"))
    except (binascii.Error, ValueError):
        raise ConfigError(source, f"{what} is not valid base64", line) from None
    if len(raw) != 32 or len(value) != 44:
        raise ConfigError(
            source, f"{what} has the wrong length "
            f"(a WireGuard key is 32 bytes, 44 base64 characters)", line,
        )
    return value


def parse_wgquick(text: str, source: str, name: str) -> Tunnel:
    """Parse a wg-quick file (its keys: wgquick.KEYS). `source` names it
    in errors."""
    found = sections(text, source)
    interfaces = [values for section, _, values in found if section == "interface"]
    if not interfaces:
        raise ConfigError(source, "no [Interface] section")
    iface = interfaces[0]
    warnings = ignored(iface, source)
    pk = _one(iface, "privatekey")
    if pk is None:
        raise ConfigError(source, "[Interface] has no PrivateKey")
    private_key = Secret(check_key(pk[1], source, "PrivateKey", pk[0]))
    addresses = tuple(parse_interface_address(v, source, n) for n, v in _many(iface, "address"))
    if not addresses:
        raise ConfigError(source, "[Interface] has no Address")
    dns, search = parse_dns(_many(iface, "dns"), source)
    mtu_v, port_v = _one(iface, "mtu"), _one(iface, "listenport")
    mtu = _int(mtu_v[1], "MTU", source, mtu_v[0], 1280, 65535) if mtu_v else None
    listen_port = (
        _int(port_v[1], "ListenPort", source, port_v[0], 1, 65535) if port_v else None)
    peers: list[Peer] = []
    for section, lineno, values in found:
        if section == "peer":
            peers.append(_peer(values, source, lineno, peers, warnings))
    if not peers:
        raise ConfigError(source, "no [Peer] section")
    if not any(p.endpoint for p in peers):
        raise ConfigError(
            source, "no [Peer] has an Endpoint",
            hint="the tunnel could never reach its server")
    if not dns:
        warnings.append(
            f"{source}: no DNS server: confined services will not resolve names")
    return Tunnel(
        name=check_name(name), private_key=private_key, addresses=addresses,
        peers=tuple(peers), dns=tuple(dns), search=tuple(search), mtu=mtu,
        listen_port=listen_port, warnings=tuple(warnings),
    )


def _one(values: Values, key: str) -> tuple[int, str] | None:
    return values[key][0] if key in values else None


def _many(values: Values, key: str) -> Iterable[tuple[int, str]]:
    for lineno, value in values.get(key, []):
        for item in _split(value):
            yield lineno, item


def _peer(d: Values, source: str, lineno: int, before: list[Peer],
          warnings: list[str]) -> Peer:
    pub = _one(d, "publickey")
    if pub is None:
        raise ConfigError(source, "[Peer] has no PublicKey", lineno)
    public_key = check_key(pub[1], source, "PublicKey", pub[0])
    if any(p.public_key == public_key for p in before):
        raise ConfigError(source, "two [Peer] sections share a PublicKey", lineno)
    psk, ep, ka = _one(d, "presharedkey"), _one(d, "endpoint"), _one(d, "persistentkeepalive")
    allowed = tuple(parse_network(v, source, n) for n, v in _many(d, "allowedips"))
    if not allowed:
        warnings.append(
            f"{source}:{lineno}: [Peer] has no AllowedIPs: no traffic will "
            "be routed to it")
    keepalive = None
    if ka and ka[1].strip().lower() != "off":
        keepalive = _int(ka[1], "PersistentKeepalive", source, ka[0], 0, 65535) or None
    return Peer(
        public_key=public_key,
        allowed_ips=allowed,
        endpoint=parse_endpoint(ep[1], source, ep[0]) if ep else None,
        preshared_key=(
            Secret(check_key(psk[1], source, "PresharedKey", psk[0])) if psk else None),
        keepalive=keepalive,
    )


def to_wgquick(tunnel: Tunnel) -> str:
    """The canonical wg-quick text of a tunnel: what wgns stores (0600)."""
    lines = ["[Interface]", f"PrivateKey = {tunnel.private_key.reveal()}"]
    lines += [f"Address = {a}" for a in tunnel.addresses]
    if tunnel.dns or tunnel.search:
        lines.append("DNS = " + ", ".join(
            [str(d) for d in tunnel.dns] + list(tunnel.search)))
    if tunnel.mtu is not None:
        lines.append(f"MTU = {tunnel.mtu}")
    if tunnel.listen_port is not None:
        lines.append(f"ListenPort = {tunnel.listen_port}")
    for peer in tunnel.peers:
        lines += ["", "[Peer]", f"PublicKey = {peer.public_key}"]
        if peer.preshared_key is not None:
            lines.append(f"PresharedKey = {peer.preshared_key.reveal()}")
        if peer.endpoint is not None:
            lines.append(f"Endpoint = {peer.endpoint}")
        if peer.allowed_ips:
            lines.append("AllowedIPs = " + ", ".join(str(n) for n in peer.allowed_ips))
        if peer.keepalive:
            lines.append(f"PersistentKeepalive = {peer.keepalive}")
    return "\n".join(lines) + "\n"


def read_key_file(path: str, what: str) -> Secret:
    """Read a key from a file (the only way keys enter on the command line)."""
    from .names import WG_KEY
    from .safeio import read_text
    if WG_KEY.search(path) and not os.path.lexists(path):
        raise ConfigError(f"--{what.replace(' ', '-')}-file", "give the path of a file "
                          "holding the key, not the key itself (not shown)")
    return Secret(check_key(read_text(path, 1024, encoding="ascii"), path, what))


def read_conf(path: str, name: str) -> Tunnel:
    """Parse a wg-quick file from disk (a regular file, size-capped)."""
    from .safeio import read_text
    return parse_wgquick(read_text(path, MAX_CONF_BYTES), path, name)


def from_options(
    name: str,
    addresses: list[str],
    private_key: Secret,
    peer: str,
    endpoint: str,
    allowed_ips: list[str],
    preshared_key: Secret | None = None,
    keepalive: int | None = None,
    dns: list[str] | None = None,
    mtu: int | None = None,
) -> Tunnel:
    """Build a tunnel from `wgns install` options instead of a file."""
    if not addresses:
        raise ConfigError("--address", "at least one --address is needed")
    parsed_dns, search = parse_dns(((None, d) for d in dns or []), "--dns")
    if mtu is not None and not 1280 <= mtu <= 65535:
        raise ConfigError("--mtu", f"{mtu} must be from 1280 to 65535")
    if keepalive is not None and not 0 <= keepalive <= 65535:
        raise ConfigError("--keepalive", f"{keepalive} must be from 0 to 65535")
    nets = allowed_ips or ["0.0.0.0/0", "::/0"]
    warnings = () if parsed_dns else (
        "no --dns given: confined services will not resolve names",)
    return Tunnel(
        name=check_name(name),
        private_key=private_key,
        addresses=tuple(parse_interface_address(a, "--address") for a in addresses),
        peers=(Peer(
            public_key=check_key(peer, "--peer", "public key"),
            allowed_ips=tuple(parse_network(n, "--allowed-ips") for n in nets),
            endpoint=parse_endpoint(endpoint, "--endpoint"),
            preshared_key=preshared_key,
            keepalive=keepalive or None,
        ),),
        dns=tuple(parsed_dns), search=tuple(search), mtu=mtu,
        warnings=warnings,
    )

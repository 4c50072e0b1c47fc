"""The values of a wg-quick file, each parsed against its real grammar:
addresses without zone IDs, networks, endpoints, DNS servers and search
domains, ports and whole numbers in ASCII digits. Errors name the source
and line, and never show a value that could be key material."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Iterable, Union

from .errors import ConfigError
from .names import ADDRESS_CHARS, masked

IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
IPInterface = Union[ipaddress.IPv4Interface, ipaddress.IPv6Interface]
IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]

HOST_RE = re.compile(
    r"(?=.{1,253}\Z)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62}[A-Za-z0-9_])?"
    r"(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62}[A-Za-z0-9_])?)*\.?"
)

@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int

    def __str__(self) -> str:
        if ":" in self.host:
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"

    @property
    def is_literal(self) -> bool:
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True


def _show(value: str) -> str:
    return masked(value, "value")


def _address_text(value: str, what: str, source: str, line: int | None,
                  prefix: bool = False, expected: str = "an IP address") -> str:
    """Refuse what Python's ipaddress would take but an address is not: a
    "%zone" suffix (any text, newlines included) or stray characters."""
    body, _, plen = value.partition("/") if prefix else (value, "", "")
    if not ADDRESS_CHARS.fullmatch(body) or (plen and not re.fullmatch(r"[0-9]{1,3}", plen)):
        hint = "zone IDs ('%' suffixes) are not supported" if "%" in value else None
        raise ConfigError(source, f"{what} {_show(value)} is not {expected}", line,
                          hint=hint)
    return value


def parse_address(value: str, what: str, source: str, line: int | None = None) -> IPAddress:
    _address_text(value, what, source, line)
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        raise ConfigError(source, f"{what} {_show(value)} is not an IP address",
                          line) from None


def parse_port(value: str, what: str, source: str, line: int | None = None) -> int:
    if not re.fullmatch(r"[0-9]{1,5}", value) or not 1 <= int(value) <= 65535:
        raise ConfigError(source, f"{what}: port must be 1-65535", line)
    return int(value)


def parse_endpoint(value: str, source: str, line: int | None = None) -> Endpoint:
    value = value.strip()
    shown = _show(value)
    if value.startswith("["):
        m = re.fullmatch(r"\[([^\]]*)\]:([^:]*)", value)
        if not m:
            raise ConfigError(source, f"Endpoint {shown} is not [IPv6]:port", line)
        host, port_s = m.group(1), m.group(2)
        if parse_address(host, f"Endpoint {shown}:", source, line).version != 6:
            raise ConfigError(source, f"Endpoint {shown}: brackets are for IPv6", line)
    else:
        if value.count(":") > 1:
            raise ConfigError(
                source, f"Endpoint {shown}: an IPv6 address must be in "
                "brackets", line, hint="write it as [ADDRESS]:PORT")
        host, sep, port_s = value.rpartition(":")
        if not sep or not host:
            raise ConfigError(
                source, f"Endpoint {shown} has no port", line,
                hint="write it as HOST:PORT")
        if not HOST_RE.fullmatch(host):
            raise ConfigError(
                source, f"Endpoint {shown}: not a host name or IPv4 address", line)
        if re.fullmatch(r"[0-9.]+", host):
            parse_address(host, f"Endpoint {shown}:", source, line)
    return Endpoint(host, parse_port(port_s, f"Endpoint {shown}", source, line))


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def parse_interface_address(value: str, source: str, line: int | None = None) -> IPInterface:
    _address_text(value, "Address", source, line, prefix=True,
                  expected="an address with a prefix length")
    try:
        iface = ipaddress.ip_interface(value)
    except ValueError:
        raise ConfigError(
            source, f"Address {_show(value)} is not an address with a prefix "
            "length", line) from None
    if "/" not in value:
        # wg-quick accepts a bare address as a host address.
        iface = ipaddress.ip_interface(
            f"{value}/{iface.network.max_prefixlen}")
    return iface


def parse_network(value: str, source: str, line: int | None = None) -> IPNetwork:
    _address_text(value, "AllowedIPs", source, line, prefix=True, expected="a CIDR")
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ConfigError(
            source, f"AllowedIPs {_show(value)} is not a CIDR", line) from None


def parse_dns(values: Iterable[tuple[int | None, str]], source: str
              ) -> tuple[list[IPAddress], list[str]]:
    """DNS servers (addresses) and search domains (names), as wg-quick."""
    dns: list[IPAddress] = []
    search: list[str] = []
    for n, v in values:
        if re.fullmatch(r"[0-9A-Fa-f:.%]+", v) and (":" in v or re.fullmatch(r"[0-9.]+", v)):
            dns.append(parse_address(v, "DNS", source, n))
        elif HOST_RE.fullmatch(v):
            search.append(v)
        else:
            raise ConfigError(
                source, f"DNS {_show(v)} is neither an address nor a search domain", n)
    return dns, search


def _int(value: str, key: str, source: str, line: int | None, lo: int, hi: int) -> int:
    value = value.strip()
    if not re.fullmatch(r"[0-9]{1,6}", value) or not lo <= int(value) <= hi:
        raise ConfigError(
            source, f"{key} {_show(value)} must be a whole number from {lo} to {hi}",
            line)
    return int(value)

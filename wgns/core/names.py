"""The grammar of every name and value wgns puts into a unit file, and the
one place that knows systemd's quoting.

Values are validated against their real grammar first (a tunnel name, a
unit name by systemd's rules, an address without a zone ID); whatever then
reaches unit text goes through `exec_word` or `setting`, which escape `%`
specifiers, `$` expansion and quoting so systemd reads back exactly the
value meant.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import Union

from .errors import WgnsError

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]

TUNNEL_RE = re.compile(r"(?!wgns-)[a-z0-9][a-z0-9_-]{0,14}")  # wgns-*: its own units
# systemd's unit-name rules (src/basic/unit-name.c): a prefix of these
# characters, optionally "@" and an instance that may also hold "@", a
# suffix naming the unit type; 255 characters at most.
UNIT_CHARS = r"[A-Za-z0-9:_.\\-]"
UNIT_RE = re.compile(rf"(?P<prefix>{UNIT_CHARS}+)(?:@(?P<instance>[A-Za-z0-9:_.\\@-]*))?"
                     r"\.(?P<type>[a-z]+)")
UNIT_TYPES = ("service", "socket", "target", "device", "mount", "automount", "swap",
              "timer", "path", "slice", "scope")
UNIT_NAME_MAX = 255
# What Python's ipaddress accepts in an address is wider than what an
# address is: a "%zone" suffix may hold any text, newlines included.
ADDRESS_CHARS = re.compile(r"[0-9A-Fa-f:.]+")


class NameError_(WgnsError):
    """A name or value that cannot go into a unit file."""


# A whole WireGuard key (32 bytes in base64): no path or name is one.
WG_KEY = re.compile(r"[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=")
# In text read from a file that holds keys (a wg-quick file), any run of
# base64 this long could be part of one (a key wrapped over two lines).
KEYISH = re.compile(r"[A-Za-z0-9+/]{12,}")


def printable(value: str, what: str = "value") -> str:
    """A value given on the command line (a path, a name, an address),
    quoted for an error message, as Python writes it (what is not printable
    escaped); a description instead when it is too long to print usefully
    or holds a whole WireGuard key (pasted where a path was meant)."""
    if WG_KEY.search(value):
        return f"a {what} that holds a WireGuard key (not shown)"
    if len(value) > 160:
        return f"a {what} of {len(value)} characters"
    return repr(value)


def masked(value: str, what: str = "value") -> str:
    """A value read from a file that holds keys: never shown when it holds
    a run of 12 or more base64 characters, which could be part of a key."""
    if KEYISH.search(value):
        return f"a {what} that could be part of a key (not shown)"
    return printable(value, what)


def check_tunnel_name(name: str) -> str:
    if not TUNNEL_RE.fullmatch(name):
        raise NameError_(
            f"--name: invalid tunnel name {printable(name, 'name')}",
            hint="use 1-15 characters from a-z, 0-9, '-' and '_', "
            "starting with a letter or digit")
    return name


def check_service(unit: str) -> str:
    """A service name as systemd reads it (".service" added when the name
    has no unit-type suffix, as systemctl does), or NameError_."""
    shown = printable(unit, "unit name")
    m = re.fullmatch(r".*\.([a-z]+)", unit, flags=re.S)
    if not m or m.group(1) not in UNIT_TYPES:
        unit += ".service"
    m = UNIT_RE.fullmatch(unit)
    if not m or len(unit) > UNIT_NAME_MAX:
        raise NameError_(
            f"{shown} is not a valid unit name",
            hint="systemd unit names use A-Z a-z 0-9 : _ . - \\ and one '@' before "
            f"an instance, {UNIT_NAME_MAX} characters at most")
    if m.group("type") != "service":
        raise NameError_(f"{unit}: only .service units can be confined")
    if m.group("instance") == "":
        raise NameError_(
            f"{unit} is a template", hint="confine its instances, e.g. "
            f"{m.group('prefix')}@NAME.service")
    return unit


def check_address(value: str, what: str) -> IPAddress:
    """An IPv4 or IPv6 address, without a zone ID."""
    shown = printable(value, "value")
    if not ADDRESS_CHARS.fullmatch(value):
        hint = ("zone IDs ('%' suffixes) are not supported" if "%" in value
                else None)
        raise NameError_(f"{what} {shown} is not an IP address", hint=hint)
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        raise NameError_(f"{what} {shown} is not an IP address") from None


# A DNS name as getaddrinfo() takes it: RFC 1123 labels ('_' allowed, as in
# container and service names), never starting with '-' (it could read as
# an option), 253 characters at most.
LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
HOSTNAME_RE = re.compile(rf"{LABEL}(?:\.{LABEL})*\.?", flags=re.ASCII)


def check_host(value: str, what: str) -> str:
    """An IP address without a zone ID, or a host name to be resolved where
    it is used (lower-cased, without a trailing dot: one name, one way to
    write it). A name that the C library would read as an address
    ('0x7f.1', '1.2.3'), or whose last label is all digits ('1.2.3.4.'),
    is refused: it would not mean what it shows."""
    if HOSTNAME_RE.fullmatch(value) and len(value) <= 253:
        name = value.rstrip(".").lower()  # checked as it will be written: '0x7f.' is '0x7f'
        try:
            socket.inet_aton(name)
        except OSError:
            if not name.rsplit(".", 1)[-1].isdigit():
                return name
            raise NameError_(f"{what}: the name {printable(value, 'value')} ends in a label "
                             "of digits only", hint="no top-level domain is numeric: "
                             "write an address as a.b.c.d") from None
        if name != value or not ADDRESS_CHARS.fullmatch(value):
            raise NameError_(f"{what}: {printable(value, 'value')} reads as an IP address "
                             "in another notation", hint="write the address as a.b.c.d")
    if not ADDRESS_CHARS.fullmatch(value):
        raise NameError_(f"{what}: {printable(value, 'value')} is neither an IP address "
                         "nor a host name",
                         hint="zone IDs ('%' suffixes) are not supported" if "%" in value
                         else "a name uses letters, digits, '-', '_' and dots")
    return str(check_address(value, what))


def split_host_port(value: str, what: str) -> tuple[str, int]:
    """HOST:PORT or [IPv6]:PORT, HOST an address (no zone ID) or a name."""
    host, sep, port = value.rpartition(":")
    if not sep or not host:
        raise NameError_(f"{what} {printable(value, 'value')} is not HOST:PORT",
                         hint="for example 127.0.0.1:5432, db.lan:5432 or [::1]:5432")
    bracketed = host.startswith("[") and host.endswith("]")
    if ":" in host and not bracketed:
        raise NameError_(f"{what} {printable(value, 'value')}: write an IPv6 address "
                         "in brackets, as [::1]:5432")
    host = check_address(host[1:-1], what).compressed if bracketed else check_host(host, what)
    if bracketed and ipaddress.ip_address(host).version != 6:
        raise NameError_(f"{what} {printable(value, 'value')}: only IPv6 addresses "
                         "go in brackets")
    return host, check_port(port, what)


def join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def check_port(value: str, what: str) -> int:
    if not re.fullmatch(r"[0-9]{1,5}", value) or not 1 <= int(value) <= 65535:
        raise NameError_(f"{what}: the port {printable(value, 'value')} must be 1-65535")
    return int(value)


def check_utf8(value: str, what: str) -> str:
    """Text that UTF-8 can carry. A byte of another encoding in argv (a
    Latin-1 path) reaches Python as a lone surrogate, which no file can
    hold."""
    if any("\ud800" <= c <= "\udfff" for c in value):
        raise NameError_(f"{what} {printable(value, 'value')} is not valid UTF-8",
                         hint="a byte of another encoding (Latin-1?) cannot go into a "
                         "unit file; give it in UTF-8")
    return value


def _refuse_control(value: str, what: str) -> None:
    """Control characters (C0, DEL, C1) and Unicode line or paragraph
    separators: none belongs in a path or a unit file; nor does text that
    is not UTF-8."""
    check_utf8(value, what)
    if any(ord(c) < 32 or 127 <= ord(c) < 160 or c in "\u2028\u2029" for c in value):
        raise NameError_(
            f"{what} {printable(value, 'value')} holds a control character "
            "(a newline?); it cannot go into a unit file")


def exec_word(value: str, what: str = "path", first: bool = False) -> str:
    """One word of an ExecStart= command line: systemd expands `%`
    specifiers on the whole line, splits it into words (quotes, C escapes),
    then expands `$VAR` in the arguments. The program's own path (FIRST)
    may hold neither `$` (not expanded there as in the arguments) nor a
    quote or a backslash (systemd refuses the unit: "Executable name
    contains special characters"). Plain words stay as they are."""
    _refuse_control(value, what)
    if first and (not value.startswith("/") or "$" in value):
        raise NameError_(
            f"{what} {printable(value, 'path')} must be an absolute path without '$'")
    if first and any(c in value for c in "'\"\\"):
        raise NameError_(
            f"{what} {printable(value, 'path')} holds a quote or a backslash, which "
            "systemd refuses in a program's path", hint="install wgns (or the venv) "
            "in a directory whose path has none")
    if re.fullmatch(r"[A-Za-z0-9_./@:+=,-]+", value):
        return value
    inner = (value.replace("\\", "\\\\").replace('"', '\\"')
             .replace("%", "%%").replace("$", "$$"))
    return f'"{inner}"'


def setting(value: str, what: str = "value") -> str:
    """A value of a plain setting (Description=, ...): one line, `%` escaped."""
    _refuse_control(value, what)
    if value.endswith("\\"):
        raise NameError_(f"{what} {printable(value, 'value')} ends in a backslash")
    return value.replace("%", "%%")

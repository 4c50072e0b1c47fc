"""The wg-quick format, declared once: every key wgns reads (its section,
whether it may repeat, the `wgns install` option that gives the same,
what it means), every key it ignores and why, and the reader that splits
a file into its sections by this table. config.py turns the sections into
a Tunnel; docs/cli.md's table of keys is checked against KEYS.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import ConfigError


@dataclass(frozen=True)
class Key:
    title: str                  # as wg-quick spells it
    section: str                # "interface" or "peer"
    doc: str
    many: bool = False          # may appear more than once; the values add up
    option: str | None = None   # the `wgns install` option that gives it
    ignored: str | None = None  # why wgns ignores it (with a warning)


KEYS = (
    Key("PrivateKey", "interface", "the tunnel's key (stored 0600, never shown)",
        option="--private-key-file"),
    Key("Address", "interface", "an address of the tunnel, IPv4 or IPv6, with or without "
        "a prefix length", many=True, option="--address"),
    Key("DNS", "interface", "addresses: the namespace's name servers; names: search "
        "domains", many=True, option="--dns"),
    Key("MTU", "interface", "the link's MTU, 1280 to 65535", option="--mtu"),
    Key("ListenPort", "interface", "the UDP port the tunnel sends from"),
    Key("Table", "interface", "", ignored="routes are set inside the namespace, not in a "
        "host table"),
    Key("FwMark", "interface", "", ignored="no fwmark is needed: the namespace has no "
        "other way out"),
    Key("SaveConfig", "interface", "", ignored="wgns keeps its own copy of the "
        "configuration"),
    Key("PreUp", "interface", "", ignored="wgns runs no hook commands; the namespace is "
        "the kill switch"),
    Key("PostUp", "interface", "", ignored="wgns runs no hook commands; the namespace is "
        "the kill switch"),
    Key("PreDown", "interface", "", ignored="wgns runs no hook commands"),
    Key("PostDown", "interface", "", ignored="wgns runs no hook commands"),
    Key("PublicKey", "peer", "the server's public key", option="--peer"),
    Key("PresharedKey", "peer", "an extra symmetric key (stored 0600, never shown)",
        option="--preshared-key-file"),
    Key("Endpoint", "peer", "HOST:PORT, ADDRESS:PORT or [IPv6]:PORT; a name is resolved "
        "again by the watcher", option="--endpoint"),
    Key("AllowedIPs", "peer", "the prefixes routed into the tunnel (0.0.0.0/0 and ::/0: "
        "default routes)", many=True, option="--allowed-ips"),
    Key("PersistentKeepalive", "peer", "seconds between keepalives, or off",
        option="--keepalive"),
)
BY_NAME = {k.title.lower(): k for k in KEYS}
SECTIONS = ("interface", "peer")
SECTION = re.compile(r"\[\s*([A-Za-z]+)\s*\]")

Values = dict[str, list[tuple[int, str]]]   # lower-case key -> [(line, value)]


def keys_of(section: str) -> list[Key]:
    return [k for k in KEYS if k.section == section]


def sections(text: str, source: str) -> list[tuple[str, int, Values]]:
    """The sections of a wg-quick file in order: (section, line, values).
    Unknown sections and keys, a key outside a section, a repeated key that
    may not repeat and control characters are errors; no error echoes a
    line (a wrapped key can look like anything)."""
    out: list[tuple[str, int, Values]] = []
    text = text[1:] if text.startswith("\ufeff") else text   # a byte order mark
    for lineno, raw_line in enumerate(text.split("\n"), 1):
        line = raw_line.split("#", 1)[0].strip()
        if not line:
            continue
        if any(ord(c) < 32 and c != "\t" for c in line):
            raise ConfigError(source, "control character in line", lineno)
        if line.startswith("["):
            out.append((_section(line, source, lineno, out), lineno, {}))
            continue
        if "=" not in line:
            # It may be a key that lost its "PrivateKey =".
            raise ConfigError(source, "expected KEY = VALUE", lineno)
        if not out:
            raise ConfigError(source, "key outside a section", lineno)
        # base64 keys end in '=': split at the first '=' keeps them whole.
        key, value = (p.strip() for p in line.split("=", 1))
        section, _, values = out[-1]
        known = BY_NAME.get(key.lower())
        if known is None or known.section != section:
            # The tail of a key wrapped onto its own line is a plausible key name.
            raise ConfigError(source, f"unknown key in [{section.capitalize()}]", lineno,
                              hint="keys there are " + ", ".join(
                                  sorted((k.title for k in keys_of(section)), key=str.lower)))
        if key.lower() in values and not known.many:
            raise ConfigError(source, f"duplicate key {key!r}", lineno)
        values.setdefault(key.lower(), []).append((lineno, value))
    return out


def _section(line: str, source: str, lineno: int, before: list) -> str:
    m = SECTION.fullmatch(line)
    section = m.group(1).lower() if m else ""
    if section not in SECTIONS:
        raise ConfigError(source, "unknown section", lineno,
                          hint="wg-quick files have [Interface] and [Peer] sections")
    if section == "interface" and any(s == "interface" for s, _, _ in before):
        raise ConfigError(source, "duplicate [Interface] section", lineno)
    return section


def ignored(values: Values, source: str) -> list[str]:
    """A warning for each ignored key of the [Interface] section."""
    return [f"{source}:{values[k.title.lower()][0][0]}: ignoring {k.title}: {k.ignored}"
            for k in keys_of("interface") if k.ignored and k.title.lower() in values]

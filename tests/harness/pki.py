"""Guest side: certificate authorities made at test time with the openssl
command (Debian package openssl, OpenSSL 1.1.1 to 3.x), for the fake
provider's PIA-like API: its own authority, and a rogue one with the very
same name that a client pinning the provider's must refuse.

Certificates carry what Python 3.13's strict verification asks for (a CA
with basicConstraints and keyUsage, a leaf with the authority key
identifier and its names as subjectAltName). P-256 keys: quick to make.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

CONFIG = """[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
subjectAltName = {sans}
"""
NEW_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def openssl(*args: str) -> None:
    p = subprocess.run(["openssl", *args], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {p.stderr.strip()[-500:]}")


@dataclass
class Issued:
    cert: Path
    key: Path


class Authority:
    """A certificate authority in DIRECTORY (its key 0600 beside it)."""

    def __init__(self, directory: Path, stem: str, name: str, days: int = 30) -> None:
        self.dir, self.days = directory, days
        self.cert, self.key = directory / f"{stem}.crt", directory / f"{stem}.key"
        directory.mkdir(parents=True, exist_ok=True)
        conf = self._config("DNS:unused")
        self._keyfile(self.key)
        try:
            openssl("req", "-x509", *NEW_KEY, "-keyout", str(self.key), "-out",
                    str(self.cert), "-days", str(days), "-subj", f"/CN={name}", "-config",
                    str(conf), "-extensions", "ca", "-set_serial", str(serial()))
        finally:
            conf.unlink(missing_ok=True)

    def _config(self, sans: str) -> Path:
        path = self.dir / f".openssl-{os.getpid()}-{secrets.token_hex(4)}.cnf"
        path.write_text(CONFIG.format(sans=sans))
        return path

    @staticmethod
    def _keyfile(path: Path) -> None:
        """PATH exists, empty, 0600, before openssl writes a key into it."""
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))

    def issue(self, stem: str, names: list[str]) -> Issued:
        """A server certificate for NAMES (host names or addresses; the first
        is its CN) as DIRECTORY/STEM.crt and STEM.key."""
        sans = ", ".join(f"IP:{n}" if _is_address(n) else f"DNS:{n}" for n in names)
        conf = self._config(sans)
        cert, key, csr = (self.dir / f"{stem}.{ext}" for ext in ("crt", "key", "csr"))
        self._keyfile(key)
        try:
            openssl("req", "-new", *NEW_KEY, "-keyout", str(key), "-out", str(csr),
                    "-subj", f"/CN={names[0]}", "-config", str(conf))
            openssl("x509", "-req", "-in", str(csr), "-CA", str(self.cert), "-CAkey",
                    str(self.key), "-set_serial", str(serial()), "-days", str(self.days),
                    "-extfile", str(conf), "-extensions", "leaf", "-out", str(cert))
        finally:
            csr.unlink(missing_ok=True)
            conf.unlink(missing_ok=True)
        return Issued(cert, key)


def serial() -> int:
    return secrets.randbits(63) | 1


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True

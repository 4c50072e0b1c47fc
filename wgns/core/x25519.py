"""WireGuard's key pairs (Curve25519, RFC 7748), for tunnels whose provider
takes a fresh public key over its API (Private Internet Access) instead of
handing out a wg-quick file. Python's standard library has no X25519 and
wgns needs no other library for it: the Montgomery ladder of RFC 7748 in
plain integers, checked against RFC 7748's test vectors and `wg pubkey`.

Private keys come from os.urandom and are returned as bytes to be wrapped
in config.Secret at once; nothing here logs or prints."""

from __future__ import annotations

import base64
import os

P = 2 ** 255 - 19
A24 = 121665
BASE_POINT = 9


def clamp(scalar: bytes) -> int:
    k = bytearray(scalar)
    k[0] &= 248
    k[31] &= 127
    k[31] |= 64
    return int.from_bytes(bytes(k), "little")


def x25519(scalar: bytes, u: int) -> int:
    """RFC 7748 section 5: the X25519 function of a 32-byte scalar and a
    u-coordinate (constant in the number of steps, not in time: Python's
    integers are not; the private key never leaves this process)."""
    k = clamp(scalar)
    x1, x2, z2, x3, z3, swap = u % P, 1, 0, u % P, 1, 0
    for t in range(254, -1, -1):
        bit = (k >> t) & 1
        swap ^= bit
        if swap:
            x2, x3, z2, z3 = x3, x2, z3, z2
        swap = bit
        a, b = (x2 + z2) % P, (x2 - z2) % P
        aa, bb = a * a % P, b * b % P
        e = (aa - bb) % P
        c, d = (x3 + z3) % P, (x3 - z3) % P
        da, cb = d * a % P, c * b % P
        x3 = (da + cb) ** 2 % P
        z3 = x1 * (da - cb) ** 2 % P
        x2 = aa * bb % P
        z2 = e * (aa + A24 * e) % P
    if swap:
        x2, x3, z2, z3 = x3, x2, z3, z2
    return x2 * pow(z2, P - 2, P) % P


def public_key(private: bytes) -> bytes:
    if len(private) != 32:
        raise ValueError("a private key is 32 bytes")
    return x25519(private, BASE_POINT).to_bytes(32, "little")


def generate() -> tuple[bytes, bytes]:
    """(private, public) of a fresh key pair, as WireGuard makes them."""
    private = bytearray(os.urandom(32))
    private[0] &= 248
    private[31] = (private[31] & 127) | 64
    return bytes(private), public_key(bytes(private))


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()

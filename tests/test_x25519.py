"""wgns's X25519 (wgns/core/x25519.py): RFC 7748's test vectors, and the
public keys WireGuard's own `wg pubkey` derives."""

import base64
import shutil
import subprocess

import pytest

from wgns.core import x25519


def le(hexstr):
    return int.from_bytes(bytes.fromhex(hexstr), "little")


def test_rfc7748_vectors():
    # section 5.2
    k = bytes.fromhex("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4")
    u = le("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c")
    assert x25519.x25519(k, u).to_bytes(32, "little").hex() == \
        "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"
    # section 6.1: Alice's key pair
    alice = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    assert x25519.public_key(alice).hex() == \
        "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"


@pytest.mark.skipif(shutil.which("wg") is None, reason="wireguard-tools is not installed")
def test_public_keys_are_what_wg_pubkey_derives():
    for _ in range(5):
        private, public = x25519.generate()
        theirs = subprocess.run(["wg", "pubkey"], input=x25519.b64(private) + "\n",
                                capture_output=True, text=True, check=True).stdout.strip()
        assert x25519.b64(public) == theirs
        assert base64.b64decode(x25519.b64(private)) == private


def test_a_private_key_of_the_wrong_size_is_refused():
    with pytest.raises(ValueError):
        x25519.public_key(bytes(31))

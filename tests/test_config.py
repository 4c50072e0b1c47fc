"""The wg-quick parser: real providers' shapes, and every kind of broken file."""

import ipaddress

import pytest

from wgns.core.config import Endpoint, Secret, parse_wgquick, to_wgquick
from wgns.core.errors import ConfigError

from .conftest import DATA, GOOD, PRIV, PUB  # noqa: F401


def parse(text, name="wg"):
    return parse_wgquick(text, "test.conf", name)


def test_mullvad_shape_ipv4_ipv6_and_hook_warnings():
    t = parse((DATA / "mullvad.conf").read_text())
    assert [str(a) for a in t.addresses] == ["10.64.1.2/32", "fc00:bbbb:bbbb:bb01::1:102/128"]
    assert [str(n) for n in t.route_prefixes()] == ["0.0.0.0/0", "::/0"]
    assert t.peers[0].endpoint == Endpoint("198.51.100.7", 51820)
    assert [w.split(": ")[1] for w in t.warnings] == ["ignoring PostUp", "ignoring PreDown"]


def test_protonvpn_shape_with_comments():
    t = parse((DATA / "protonvpn.conf").read_text())
    assert t.dns == (ipaddress.ip_address("10.2.0.1"),)
    assert t.peers[0].allowed_ips == (ipaddress.ip_network("0.0.0.0/0"),)
    assert t.warnings == ()


def test_multi_peer_psk_keepalive_mtu_search_and_repeated_lists():
    t = parse((DATA / "multi.conf").read_text())
    assert t.listen_port == 51999 and t.mtu == 1380
    assert [str(a) for a in t.addresses] == ["10.7.0.5/24", "fd07::5/64"]
    assert [str(d) for d in t.dns] == ["10.7.0.1", "fd07::1"] and t.search == ("corp.example",)
    p1, p2 = t.peers
    assert p1.preshared_key == Secret("agHKgaxt3rlJgnT+G3aH3AYxrSBIAGCfIiG1Kbx4t+k=")
    assert p1.keepalive == 25 and p1.endpoint == Endpoint("vpn.example.net", 51820)
    assert not p1.endpoint.is_literal
    assert p2.endpoint == Endpoint("2001:db8::1", 4500) and str(p2.endpoint) == "[2001:db8::1]:4500"
    assert [str(n) for n in p2.allowed_ips] == ["10.8.0.0/16", "fd08::/48"]
    assert {w.split(": ")[1] for w in t.warnings} == {"ignoring Table", "ignoring SaveConfig"}


def test_round_trip_is_stable():
    for f in ("mullvad.conf", "protonvpn.conf", "multi.conf"):
        t = parse((DATA / f).read_text())
        again = parse(to_wgquick(t))
        assert again == t
        assert to_wgquick(again) == to_wgquick(t)


def test_secrets_never_show_in_repr():
    t = parse(GOOD)
    assert PRIV not in repr(t) and PRIV not in str(t.private_key)
    assert t.private_key.reveal() == PRIV


BROKEN = [
    (GOOD.replace(PRIV, "not*base64*at*all="), "PrivateKey is not valid base64", 2),
    (GOOD.replace(PRIV, "AAAA"), "PrivateKey has the wrong length", 2),
    (GOOD.replace(PUB, PUB[:-4] + "AA=="), "PublicKey has the wrong length", 7),
    (GOOD.replace("10.0.0.2/32", "10.0.0.2/33"), "Address '10.0.0.2/33'", 3),
    (GOOD.replace("0.0.0.0/0", "0.0.0.0/x"), "AllowedIPs '0.0.0.0/x' is not a CIDR", 8),
    (GOOD.replace("vpn.example.net:51820", "vpn.example.net"), "has no port", 9),
    (GOOD.replace("vpn.example.net:51820", "fd00::1:51820"), "must be in brackets", 9),
    (GOOD.replace("vpn.example.net:51820", "[fd00::1]"), "is not [IPv6]:port", 9),
    (GOOD.replace("vpn.example.net:51820", "vpn.example.net:99999"), "port must be 1-65535", 9),
    (GOOD.replace("vpn.example.net:51820", "300.1.1.1:1"), "is not an IP address", 9),
    (GOOD.replace("DNS = 10.0.0.1", "DNS = 10.0.0.1\nDNS = x y"), "neither an address", 5),
    (GOOD.replace("DNS = 10.0.0.1", f"PrivateKey = {PRIV}"), "duplicate key 'PrivateKey'", 4),
    (GOOD.replace("DNS = 10.0.0.1", "MTU = 1\n"), "MTU '1' must be", 4),
    (GOOD + "[Peers]\n", "unknown section", 10),
    (GOOD.replace("DNS", "DSN"), "unknown key in [Interface]", 4),
    (GOOD + "Bogus line\n", "expected KEY = VALUE", 10),
    ("PrivateKey = x\n", "key outside a section", 1),
    (GOOD.split("[Peer]")[0], "no [Peer] section", None),
    (GOOD.replace("Endpoint = vpn.example.net:51820\n", ""), "no [Peer] has an Endpoint", None),
    (GOOD.replace("Address = 10.0.0.2/32\n", ""), "[Interface] has no Address", None),
    (GOOD + f"\n[Peer]\nPublicKey = {PUB}\n", "share a PublicKey", 11),
    (GOOD + "\n[Interface]\n", "duplicate [Interface] section", 11),
]


@pytest.mark.parametrize("text,message,line", BROKEN)
def test_broken_files_name_file_line_and_problem(text, message, line):
    with pytest.raises(ConfigError) as err:
        parse(text)
    msg = str(err.value)
    where = f"test.conf:{line}: " if line else "test.conf: "
    assert msg.startswith(where), msg
    assert message in msg
    assert "\n" not in msg
    assert PRIV not in msg


@pytest.mark.parametrize("name", ["", "Wg", "-wg", "a" * 16, "wg/x", "wg.x", "wg x"])
def test_bad_tunnel_names(name):
    with pytest.raises(ConfigError, match="invalid tunnel name"):
        parse(GOOD, name)


def test_good_tunnel_names():
    for name in ("wg", "vpn0", "a" * 15, "my_vpn-2"):
        assert parse(GOOD, name).name == name


def test_route_prefixes_cover_each_family_once():
    t = parse((DATA / "multi.conf").read_text())
    assert [str(n) for n in t.route_prefixes()] == [
        "0.0.0.0/0", "::/0", "10.8.0.0/16", "fd08::/48"]

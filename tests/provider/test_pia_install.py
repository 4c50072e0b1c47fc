"""`wgns install --provider pia` against the fake PIA API, for real on
this host (fixtures: conftest.py; running wgns: pia_wgns.py): the tunnel
written from addKey's answer, its key registered with the server, and
every refusal and hostile answer one line with nothing written."""

from __future__ import annotations

import base64
import json
import os
import stat

import pytest

from wgns.core import x25519

from ..harness import pia as piamod
from .net import PID, WgClient, fetch
from .pia_calls import FIRST
from .pia_wgns import install

pytestmark = pytest.mark.usefixtures("calm")


def written(target) -> list[str]:
    return sorted(str(p.relative_to(target)) for p in target.rglob("*") if not p.is_dir()) \
        if target.exists() else []


def test_install_by_region_writes_an_ordinary_tunnel(pia_net, named, tmp_path):
    root, pool, pia = pia_net
    account = pia.account_file(tmp_path / "account")
    target = tmp_path / "root"
    target.mkdir()
    r = install(root.name, pia, target, account)
    assert r.returncode == 0, r.stderr
    s = pool.server(FIRST)
    conf = (target / "etc/wgns/pia.conf").read_text()
    (pub, peer_ip), = s.registered().items()
    priv = next(ln.split(" = ", 1)[1] for ln in conf.splitlines() if ln.startswith("PrivateKey"))
    assert base64.b64encode(x25519.public_key(base64.b64decode(priv))).decode() == pub
    wg = WgClient(root, f"i{PID}", tmp_path)   # the written tunnel carries traffic
    try:
        wg.up(priv, [f"{peer_ip}/32"], [f"{s.vip.rsplit('.', 1)[0]}.0/24"])
        wg.use(s.pub, f"{s.public4}:51820")
        assert fetch(root, f"http://{s.vip}/") == s.page
    finally:
        wg.close()
    assert f"Address = {peer_ip}/32" in conf and f"PublicKey = {s.pub}" in conf
    assert f"Endpoint = {s.public4}:51820" in conf and "DNS = 10.0.0.243" in conf
    assert "PersistentKeepalive = 25" in conf
    assert stat.S_IMODE((target / "etc/wgns/pia.conf").stat().st_mode) == 0o600
    record = (target / "etc/wgns/pia/record.json").read_text()
    doc = json.loads(record.split("\n", 1)[1])
    assert doc["format"] == 2
    p = doc["provider"]
    assert (p["region"], p["hostname"], p["server_ip"], p["gateway"], p["api"]) == (
        "se_stockholm", piamod.cn_of(s), s.public4, s.vip, pia.url)
    account_copy = target / "etc/wgns/pia/pia.account"
    assert stat.S_IMODE(account_copy.stat().st_mode) == 0o600
    assert account_copy.read_text().splitlines()[1:] == account.read_text().splitlines()
    assert (target / "etc/wgns/pia/pia-ca.crt").read_text().split("\n", 1)[1] == \
        pia.ca.read_text()
    (user, pw), = pia.users.items()
    units = [f for f in target.rglob("*") if f.is_file() and f.suffix in (".service", "")]
    for f in units:
        assert pw not in f.read_text(errors="replace") or f == account_copy \
            or f.name == "record.json", f
    assert pw not in r.stdout + r.stderr
    assert "installed tunnel pia" in r.stdout


@pytest.mark.parametrize("modes, region, expect", [
    ({"refuse_login": True}, "se_stockholm", "refused the login"),
    ({}, "atlantis", "no such region"),
    ({"garbage": ["token"]}, "se_stockholm", "something other than JSON"),
    ({"garbage": ["servers"]}, "se_stockholm", "something other than JSON"),
    ({"garbage": ["addKey"]}, "se_stockholm", "something other than JSON"),
    ({"slow": {"servers": 6}}, "se_stockholm", "did not answer within"),
    ({"redirect": {"token": "https://10.251.200.1/elsewhere"}}, "se_stockholm",
     "redirect"),
    ({"error": {"servers": 500}}, "se_stockholm", "HTTP 500"),
    ({"error": {"addKey": 503}}, "se_stockholm", "HTTP 503"),
    ({"rogue": True}, "se_stockholm", "not from the expected authority"),
])
def test_refusals_and_hostile_answers_write_nothing(pia_net, named, tmp_path, modes, region,
                                                    expect):
    root, pool, pia = pia_net
    account = pia.account_file(tmp_path / "account")
    if modes:
        pia.set_modes(**modes)
    target = tmp_path / "root"
    target.mkdir()
    r = install(root.name, pia, target, account, region=region, timeout=2)
    assert r.returncode == 1, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wgns: error: ") and expect in lines[0], \
        r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""
    (_, pw), = pia.users.items()
    assert pw not in r.stderr
    assert [p for p in written(target) if "etc/wgns" in p] == []
    if region == "atlantis":
        assert "se_stockholm" in lines[0]


def test_a_wrong_password_and_an_account_file_others_may_read(pia_net, named, tmp_path):
    root, _, pia = pia_net
    (user, _), = pia.users.items()
    account = pia.account_file(tmp_path / "account", password="wrong horse")
    target = tmp_path / "root"
    target.mkdir()
    r = install(root.name, pia, target, account)
    assert r.returncode == 1 and "refused the login" in r.stderr and "wrong horse" not in \
        r.stderr
    account = pia.account_file(tmp_path / "account2")
    os.chmod(account, 0o640)
    r = install(root.name, pia, target, account)
    assert r.returncode == 1 and "may be read by others (mode 0640)" in r.stderr
    os.chmod(account, 0o600)
    os.chown(account, 4242, -1)
    r = install(root.name, pia, target, account)
    assert r.returncode == 1 and "belongs to uid 4242" in r.stderr
    r = install(root.name, pia, target, "password=correct horse battery")
    assert r.returncode == 1 and "login line" in r.stderr and "correct horse" not in r.stderr
    assert written(target) == [] or all("etc/wgns" not in p for p in written(target))
    assert pia.state("api")["requests"].get("token", 0) >= 1

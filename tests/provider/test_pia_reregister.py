"""A key PIA forgot, registered again by the watcher's look
(runtime/rereg.py) against the fake PIA API, for real on this host: a
tunnel installed by `wgns install --provider pia --root DIR`, run by a
real wireguard-go from the file install wrote; the server forgets the key
(pia.forget_keys), the tunnel comes up again without a handshake, and one
look registers a new key, writes it and asks for the tunnel's restart;
the tunnel brought up on what was written shakes hands and carries
traffic. systemd is the one thing replaced (the look is told how long the
link has been up, and its restart is done here as the unit would, from
the written file); the container scenarios run it under a real one."""

from __future__ import annotations

import json
import time

import pytest

from ..harness import pia as piamod
from .net import PID, WgClient, eventually, fetch
from .pia_calls import FIRST
from .pia_wgns import install

pytestmark = pytest.mark.usefixtures("calm")
NAME = f"r{PID}"[:15]

LOOK = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
from wgns.core import pia_http, restore
pia_http.TIMEOUT = 3.0
from wgns.runtime import rereg
rereg.ROOT, restore.RESTORE_DIR, rereg.NO_HANDSHAKE_AFTER = sys.argv[2], sys.argv[3], 3.0
up_since = float(sys.argv[5])

class Systemd:   # the tunnel unit, active since UP_SINCE; its restart recorded
    restarted = []
    def active_for(self, unit): return time.time() - up_since
    def active_state(self, unit):   # the tunnel running, nothing confined to it
        return "active" if unit == sys.argv[4] + ".service" else "inactive"
    def restart_if_running(self, unit): self.restarted.append(unit)

sd = Systemd()
lines = rereg.look(sd, sys.argv[4])
while not lines and rereg.asking(sys.argv[4]):   # PIA asked in a thread: the next looks
    time.sleep(0.1)
    lines = rereg.look(sd, sys.argv[4])
print(json.dumps({"lines": lines, "restarted": sd.restarted,
                  "attempts": rereg.attempts(sys.argv[4])}))
"""


def conf_of(target) -> dict[str, str]:
    text = (target / f"etc/wgns/{NAME}.conf").read_text()
    return dict(ln.split(" = ", 1) for ln in text.splitlines() if " = " in ln)


def up(root, tmp_path, c: dict[str, str], vip: str) -> WgClient:
    """The tunnel up on the written file, as the tunnel unit brings it up."""
    wg = WgClient(root, NAME, tmp_path)
    try:
        wg.up(c["PrivateKey"], [c["Address"]], [f"{vip.rsplit('.', 1)[0]}.0/24"])
        wg.use(c["PublicKey"], c["Endpoint"], keepalive=int(c["PersistentKeepalive"]))
    except BaseException:
        wg.close()
        raise
    return wg


def look(root, target, tmp_path, up_since: float) -> dict:
    from ..conftest import REPO
    return json.loads(root.py(LOOK, REPO, target, tmp_path / "run", NAME, up_since,
                              timeout=60))


def test_a_forgotten_key_is_registered_again_and_traffic_flows(pia_net, named, tmp_path):
    root, pool, pia = pia_net
    s = pool.server(FIRST)
    account = pia.account_file(tmp_path / "account")
    target = tmp_path / "root"
    target.mkdir()
    r = install(root.name, pia, target, account, "--name", NAME)
    assert r.returncode == 0, r.stderr
    first = conf_of(target)
    wg = up(root, tmp_path, first, s.vip)
    try:
        assert fetch(root, f"http://{s.vip}/") == s.page
        pia.forget_keys(FIRST)   # a server restart: the key is gone
        wg.close()               # the tunnel comes up again (a reboot): no handshake now
        wg = up(root, tmp_path, first, s.vip)
        since = time.time()
        assert fetch(root, f"http://{s.vip}/", 2).startswith("error")
        early = look(root, target, tmp_path, since)   # too early to tell: nothing asked
        assert early == {"lines": [], "restarted": [], "attempts": [0, 0.0]}
        assert conf_of(target) == first
        time.sleep(max(0.0, since + 3.5 - time.time()))
        done = look(root, target, tmp_path, since)
        line, = done["lines"]
        assert line.isprintable() and line.startswith(
            f"{NAME}: no handshake in ") and "registering a new key with PIA (attempt 1): " \
            f"registered with {piamod.cn_of(s)} ({s.public4}): restarting {NAME}.service" in line
        assert done["restarted"] == [f"{NAME}.service"] and done["attempts"][0] == 1
        again = conf_of(target)
        assert again["PrivateKey"] != first["PrivateKey"]
        (pub, peer_ip), = s.registered().items()
        assert again["Address"] == f"{peer_ip}/32"
        (user, pw), = pia.users.items()
        assert pw not in line and first["PrivateKey"] not in line \
            and again["PrivateKey"] not in line
        wg.close()               # what the restart does: up on the written file
        wg = up(root, tmp_path, again, s.vip)
        eventually("a handshake on the new key", lambda: s.handshakes().get(pub, 0) > 0)
        assert fetch(root, f"http://{s.vip}/") == s.page
        after = look(root, target, tmp_path, since)   # healthy: nothing, back-off forgotten
        assert after == {"lines": [], "restarted": [], "attempts": [0, 0.0]}
        record = json.loads((target / f"etc/wgns/{NAME}/record.json").read_text()
                            .split("\n", 1)[1])
        assert record["provider"]["server_ip"] == s.public4
    finally:
        wg.close()


def test_a_refused_login_writes_nothing_and_backs_off(pia_net, named, tmp_path):
    root, pool, pia = pia_net
    s = pool.server(FIRST)
    target = tmp_path / "root"
    target.mkdir()
    r = install(root.name, pia, target, pia.account_file(tmp_path / "account"), "--name", NAME)
    assert r.returncode == 0, r.stderr
    first = conf_of(target)
    files = {p: p.read_bytes() for p in target.rglob("*") if p.is_file()}
    pia.forget_keys(FIRST)
    wg = up(root, tmp_path, first, s.vip)
    try:
        since = time.time() - 10
        for modes, expect in (({"refuse_login": True}, "refused the login"),
                              ({"garbage": ["servers"]}, "something other than JSON")):
            pia.clear_modes()
            pia.set_modes(**modes)
            (tmp_path / "run" / f"{NAME}.register").unlink(missing_ok=True)
            done = look(root, target, tmp_path, since)
            line, = done["lines"]
            assert expect in line and "not registered" in line and line.isprintable(), line
            assert done["restarted"] == [] and done["attempts"][0] == 1
            assert look(root, target, tmp_path, since)["lines"] == []   # backing off
            assert {p: p.read_bytes() for p in target.rglob("*") if p.is_file()} == files
            (user, pw), = pia.users.items()
            assert pw not in line
    finally:
        wg.close()

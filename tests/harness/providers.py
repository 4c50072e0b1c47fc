"""Guest side: scenario "providers", the fake provider's newer parts at work
in a booted guest, with wgns as it is today (one server per tunnel): the
pool of servers (pool.py), the capture (capture.py), the MTU hop (mtu.py)
and the PIA-like API (pia.py). It checks the harness the failover (issue
21) and PIA (issue 22) scenarios stand on, and measures a confined
download through the hop at WireGuard's default MTU and at one that fits.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

import capture
import mtu
import pia as piamod
import pool as poolmod
import scenario as sc

PROVIDERS_CHECKS = (
    "pool_servers_up", "pool_tunnel_through_first_server", "pool_next_server_after_a_stop",
    "pool_capture_only_wireguard", "pool_dropped_server_unreachable_then_back",
    "mtu_hop_stalls_the_default_mtu", "mtu_hop_passes_a_fitting_mtu",
    "pia_token_and_server_list", "pia_add_key_makes_a_working_tunnel",
    "pia_port_forwarded_from_outside", "pia_rogue_ca_refused",
)
CLIENT = os.path.join(sc.GUEST, "pia_client.py")
KNOCK = """
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
try:
    c = socket.create_connection((host, port), 3)
    c.sendall(b"hello")
    tcp = c.recv(100).decode() or "closed"
except OSError as e:
    tcp = "error %s" % e
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(3)
u.sendto(b"hello", (host, port))
try:
    udp = u.recv(100).decode()
except OSError:
    udp = "none"
print(tcp + " / " + udp)
"""
ECHO = """
import socket, sys, threading
addr = (sys.argv[1], int(sys.argv[2]))
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(addr)
def udp():
    while True:
        d, peer = u.recvfrom(2048)
        u.sendto(b"udp " + d, peer)
threading.Thread(target=udp, daemon=True).start()
t = socket.create_server(addr)
while True:
    c, _ = t.accept()
    c.sendall(b"tcp " + c.recv(100))
    c.close()
"""


def page(netns: str) -> str:
    return sc.fetch(f"http://{poolmod.MULLVAD_DNS[0]}/", netns=netns)


def pia_call(pia: piamod.PiaApi, ip: str, port: int, host: str, path: str, body: str = "",
             netns: str | None = None, ca: Path | None = None) -> dict:
    cmd = ["python3", CLIENT, ip, str(port), host, str(ca or pia.ca),
           "POST" if body else "GET", path, body]
    p = sc.run(*(["ip", "netns", "exec", netns] + cmd if netns else cmd), quiet=True)
    try:
        return dict(json.loads(p.stdout))
    except ValueError:
        return {"error": p.stderr[-300:]}


def pool_steps(rec: sc.Recorder, pool: poolmod.Pool) -> None:
    rec.step("A pool of three servers; a tunnel to the first, a capture towards them")
    rec.check("pool_servers_up", all(s.running() for s in pool.servers)
              and socket.gethostbyname(pool.servers[0].hostname) == pool.servers[0].public4)
    keys = pool.mullvad_clients()
    confs = pool.write_confs(Path("/root/pool"), keys)
    cap = capture.Capture(pool.host_links()).start()
    p = sc.wgns("install", "--conf", str(confs[0]), "--name", "pool")
    body = page("pool")
    rec.check("pool_tunnel_through_first_server",
              p.returncode == 0 and body == pool.servers[0].page, body)
    rec.step("The first server stops; the tunnel moves to the second (installed again)")
    pool.servers[0].stop()
    sc.wgns("install", "--conf", str(confs[1]), "--name", "pool")
    took = sc.wait_for("the second server answers",
                       lambda: page("pool") == pool.servers[1].page, 30)
    rec.check("pool_next_server_after_a_stop", took is not None, page("pool"))
    pool.servers[0].start()
    cap.stop()
    stray = cap.stray(pool.endpoints())
    wg = [p for p in cap.leaving() if p.is_wireguard_to(pool.endpoints())]
    rec.info("pool_capture", {"packets": len(cap.packets), "wireguard_sent": len(wg),
                              "stray": [str(p) for p in stray[:10]], "dropped": cap.dropped})
    rec.check("pool_capture_only_wireguard", bool(wg) and not stray,
              [str(p) for p in stray[:5]])
    rec.step("The second server's packets dropped, then let through again")
    second = pool.servers[1]
    second.drop()
    lost = page("pool")
    second.undrop()
    back = sc.wait_for("the second server answers again",
                       lambda: page("pool") == second.page, 30)
    rec.check("pool_dropped_server_unreachable_then_back",
              lost.startswith("error") and second.running() and back is not None, lost)
    mtu_steps(rec, pool, keys)
    sc.wgns("uninstall", "--name", "pool")


def mtu_steps(rec: sc.Recorder, pool: poolmod.Pool, keys: list) -> None:
    rec.step("A path with MTU 1400 to the third server: a confined download, two MTUs")
    third = pool.servers[2]
    hop = mtu.Hop(third, 1400)
    hop.insert()
    try:
        url = f"http://{poolmod.MULLVAD_DNS[0]}{mtu.big_file(third, 32 << 20)}"
        results: dict[int, dict] = {}
        for tunnel_mtu in (None, 1328):
            conf = pool.write_confs(Path(f"/root/pool-{tunnel_mtu or 'default'}"), [keys[2]],
                                    mtu=tunnel_mtu)[0]
            sc.wgns("install", "--conf", str(conf), "--name", "pool")
            sc.wait_for("the third server answers", lambda: page("pool") == third.page, 30)
            d = mtu.download(url, "pool", limit=60, stall=5)
            results[tunnel_mtu or 1420] = {"bytes": d.bytes, "seconds": round(d.seconds, 2),
                                           "mbit_s": round(d.mbit_s, 1), "error": d.error}
        rec.info("mtu_hop_download_32MiB", {**{f"mtu {m}": r for m, r in results.items()},
                                            "hop_drops": hop.drops()})
        rec.check("mtu_hop_stalls_the_default_mtu",
                  results[1420]["bytes"] < 32 << 20 and bool(results[1420]["error"]),
                  results[1420])
        rec.check("mtu_hop_passes_a_fitting_mtu",
                  results[1328]["bytes"] == 32 << 20 and not results[1328]["error"],
                  results[1328])
    finally:
        hop.remove()


def pia_steps(rec: sc.Recorder, pool: poolmod.Pool) -> None:
    rec.step("The PIA-like API: a token, the server list, addKey, a tunnel")
    pia = piamod.PiaApi(pool)
    pia.setup()
    s = pool.servers[0]
    cn = piamod.cn_of(s)
    (user, pw), = pia.users.items()
    api = socket.gethostbyname(piamod.API_HOST)
    r = pia_call(pia, api, 443, piamod.API_HOST, "/api/client/v2/token",
                 f"username={user}&password={quote(pw)}")
    token = json.loads(r.get("body") or "{}").get("token", "")
    regions = pia_call(pia, api, 443, piamod.API_HOST, "/vpninfo/servers/v6")
    first = json.loads((regions.get("body") or "{}").split("\n")[0])
    rec.check("pia_token_and_server_list", bool(token) and [g["id"] for g in first.get(
        "regions", [])] == pia.regions(), (r, str(regions)[:300]))
    priv, pub = poolmod.genkey()
    r = pia_call(pia, s.public4, 1337, cn, f"/addKey?pt={quote(token)}&pubkey={quote(pub)}")
    answer = json.loads(r.get("body") or "{}")
    conf = Path("/root/pia.conf")
    conf.write_text(f"[Interface]\nPrivateKey = {priv}\nAddress = {answer.get('peer_ip')}\n"
                    f"DNS = {(answer.get('dns_servers') or [''])[0]}\n\n[Peer]\n"
                    f"PublicKey = {answer.get('server_key')}\nAllowedIPs = 0.0.0.0/0\n"
                    f"Endpoint = {answer.get('server_ip')}:{answer.get('server_port')}\n"
                    "PersistentKeepalive = 25\n")
    os.chmod(conf, 0o600)
    p = sc.wgns("install", "--conf", str(conf), "--name", "pia")
    body = sc.fetch(f"http://{answer.get('server_vip')}/", netns="pia")
    rec.check("pia_add_key_makes_a_working_tunnel",
              answer.get("status") == "OK" and p.returncode == 0 and body == s.page
              and s.handshakes().get(pub, 0) > 0, (answer.get("status"), body))
    rec.step("PIA port forwarding through the tunnel; a connection from outside")
    sig = json.loads(pia_call(pia, answer["server_vip"], 19999, cn,
                              f"/getSignature?token={quote(token)}", netns="pia")
                     .get("body") or "{}")
    port = json.loads(base64.b64decode(sig.get("payload", "") or "e30="))["port"] \
        if sig.get("status") == "OK" else 0
    bound = json.loads(pia_call(
        pia, answer["server_vip"], 19999, cn, f"/bindPort?payload={quote(sig.get('payload', ''))}"
        f"&signature={quote(sig.get('signature', ''))}", netns="pia").get("body") or "{}")
    echo = subprocess.Popen(["ip", "netns", "exec", "pia", "python3", "-c", ECHO,
                             answer["peer_ip"], str(port)])
    time.sleep(1)
    knock = sc.run("python3", "-c", KNOCK, s.public4, str(port), quiet=True).stdout.strip()
    echo.kill()
    echo.wait()
    rec.check("pia_port_forwarded_from_outside",
              bound.get("status") == "OK" and knock == "tcp hello / udp hello", (bound, knock))
    pia.set_modes(rogue=True)
    refused = pia_call(pia, api, 443, piamod.API_HOST, "/vpninfo/servers/v6")
    accepted = pia_call(pia, api, 443, piamod.API_HOST, "/vpninfo/servers/v6", ca=pia.rogue_ca)
    rec.check("pia_rogue_ca_refused",
              refused.get("tls") == "refused" and accepted.get("status") == 200, refused)
    sc.wgns("uninstall", "--name", "pia")
    pia.stop()


def providers(rec: sc.Recorder, flavour: str) -> None:
    rec.step("Install wgns; start a pool of the fake provider's servers")
    sc.install_wgns(flavour, rec)
    pool = poolmod.Pool(3)
    t = time.monotonic()
    pool.setup()
    rec.info("pool_setup_seconds", round(time.monotonic() - t, 1))
    try:
        pool_steps(rec, pool)
        pia_steps(rec, pool)
    finally:
        pool.teardown()


sc.SCENARIOS["providers"] = providers

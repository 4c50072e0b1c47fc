"""Guest side: the `forward` scenario. Port forwarding end to end with the
real clients from Debian: qBittorrent (qbittorrent-nox@qbt.service) confined
to tunnel `wg`, Transmission (transmission-daemon.service) confined to
tunnel `tr`, each with a login, each reached only through its API from
inside its namespace. The fake provider's NAT-PMP gateway (gateway.py) hands
out ports and really forwards them from its outside address.

Run by scenario.py (`python3 scenario.py forward REPORT`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pwd
import socket
import subprocess
from pathlib import Path

import provider as prov
import scenario as sc

QBT_USER, QBT_PASSWORD = "admin", "qbt pass=word"
TR_USER, TR_PASSWORD = "tr", "tr-secret-pass"
CLIENTS = {"wg": "10.66.0.2", "tr": "10.66.0.3"}
QBT_UNIT = "qbittorrent-nox@qbt.service"
TR_UNIT = "transmission-daemon.service"
QBT_URL = "http://127.0.0.1:8080"
TR_URL = "http://127.0.0.1:9091/transmission/rpc"

FORWARD_CHECKS = (
    "pf_setup", "pf_bad_input_refused_leaves_nothing",
    "pf_qbittorrent_port_forward_on", "pf_port_published",
    "pf_qbittorrent_follows", "pf_outside_reaches_qbittorrent",
    "pf_udp_forwarded", "pf_status_text", "pf_status_json", "pf_check_reports_port",
    "pf_transmission_follows", "pf_outside_reaches_transmission", "pf_exec_hook_runs",
    "pf_gateway_restart_client_follows", "pf_refused_status_says_why",
    "pf_refusal_lifted_port_back",
    "pf_gateway_gone_status_says_why", "pf_gateway_gone_nothing_leaks",
    "pf_stops_with_tunnel", "pf_back_with_tunnel", "pf_keys_and_passwords_hidden",
    "pf_off_leaves_nothing", "pf_uninstall_leaves_nothing",
)


def client_conf(priv: str, addr: str, srv_pub: str) -> str:
    conf = sc.client_conf(priv, "", srv_pub).replace("10.66.0.2/32", f"{addr}/32")
    return "\n".join(ln for ln in conf.splitlines()
                     if not ln.startswith("PresharedKey")) + "\n"


def qbt_config() -> None:
    """qbittorrent-nox as its user runs it: legal notice accepted, Web UI on
    8080 with a PBKDF2 password (its own format), auth even on localhost."""
    subprocess.run(["useradd", "--system", "--create-home", "--home-dir", "/var/lib/qbt",
                    "qbt"], check=True)
    salt = os.urandom(16)
    key = hashlib.pbkdf2_hmac("sha512", QBT_PASSWORD.encode(), salt, 100000)
    pbkdf2 = f"{base64.b64encode(salt).decode()}:{base64.b64encode(key).decode()}"
    conf = Path("/var/lib/qbt/.config/qBittorrent/qBittorrent.conf")
    conf.parent.mkdir(parents=True)
    conf.write_text(f"""[LegalNotice]
Accepted=true

[BitTorrent]
Session\\Port=6881

[Preferences]
Connection\\PortRangeMin=6881
WebUI\\Port=8080
WebUI\\Username={QBT_USER}
WebUI\\Password_PBKDF2="@ByteArray({pbkdf2})"
WebUI\\LocalHostAuth=true
WebUI\\CSRFProtection=true
""")
    user = pwd.getpwnam("qbt")
    for d, _, files in os.walk("/var/lib/qbt"):
        for p in [d, *(os.path.join(d, f) for f in files)]:
            os.chown(p, user.pw_uid, user.pw_gid)


def tr_config() -> None:
    """transmission-daemon as Debian ships it, with an RPC login."""
    path = Path("/etc/transmission-daemon/settings.json")
    settings = json.loads(path.read_text())
    settings.update({"rpc-authentication-required": True, "rpc-username": TR_USER,
                     "rpc-password": TR_PASSWORD, "rpc-whitelist-enabled": True,
                     "rpc-whitelist": "127.0.0.1", "peer-port": 51413,
                     "port-forwarding-enabled": False, "dht-enabled": False,
                     "lpd-enabled": False, "utp-enabled": True})
    path.write_text(json.dumps(settings, indent=2))
    sc.systemctl("unmask", TR_UNIT)


def login_file(path: str, user: str, password: str) -> str:
    Path(path).write_text(f"username={user}\npassword={password}\n")
    os.chmod(path, 0o600)
    return path


API = r"""
import base64, http.cookiejar, json, sys, urllib.request
kind, user, pw = sys.argv[1:4]
op = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                 urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
if kind == "qbt":
    op.open("http://127.0.0.1:8080/api/v2/auth/login",
            f"username={user}&password={pw}".replace(" ", "+").encode(), timeout=5)
    print(json.load(op.open("http://127.0.0.1:8080/api/v2/app/preferences",
                            timeout=5))["listen_port"])
else:
    auth = "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()
    body = json.dumps({"method": "session-get"}).encode()
    url = "http://127.0.0.1:9091/transmission/rpc"
    try:
        op.open(urllib.request.Request(url, body, {"Authorization": auth}), timeout=5)
    except urllib.error.HTTPError as e:
        sid = e.headers["X-Transmission-Session-Id"]
    r = op.open(urllib.request.Request(url, body, {"Authorization": auth,
                "X-Transmission-Session-Id": sid}), timeout=5)
    print(json.load(r)["arguments"]["peer-port"])
"""


def client_port(tunnel: str) -> int | None:
    """The client's listening port, asked through its own API from inside
    its namespace (the only place it can be reached)."""
    kind, user, pw = ("qbt", QBT_USER, QBT_PASSWORD) if tunnel == "wg" else (
        "tr", TR_USER, TR_PASSWORD)
    p = sc.run("ip", "netns", "exec", tunnel, "python3", "-c", API, kind, user, pw, quiet=True)
    try:
        return int(p.stdout.strip())
    except ValueError:
        return None


def forwarded(tunnel: str) -> int | None:
    try:
        return int(Path(f"/run/wgns/{tunnel}/forwarded-port").read_text())
    except (OSError, ValueError):
        return None


def gateway_port(provider: prov.Provider, tunnel: str) -> int | None:
    for m in provider.natpmp_state().get("mappings", []):
        if m["client"] == CLIENTS[tunnel] and m["proto"] == "tcp":
            return int(m["external"])
    return None


def listener(tunnel: str, port: int) -> str:
    """Which process listens on TCP PORT in the namespace."""
    return sc.run("ip", "netns", "exec", tunnel, "ss", "-Htlnp", f"sport = :{port}",
                  quiet=True).stdout


def outside_tcp(port: int) -> bool:
    """A connection from the provider's outside side (its LAN address, as
    the internet would reach it) to the forwarded port."""
    try:
        socket.create_connection((prov.PROV_LAN4, port), 5).close()
        return True
    except OSError:
        return False


def status_json(tunnel: str) -> dict:
    p = sc.wgns("status", "--json", "--name", tunnel)
    try:
        return json.loads(p.stdout)["tunnels"][0].get("port_forward") or {}
    except (ValueError, KeyError, IndexError, AttributeError):
        return {"raw": p.stdout + p.stderr}


def forward(rec: sc.Recorder, flavour: str) -> None:
    from forward_steps import run_steps
    sc.install_wgns(flavour, rec)
    provider = prov.Provider()
    keys = {t: prov.genkey() for t in CLIENTS}
    for t, addr in CLIENTS.items():
        provider.add_client(keys[t][1], [f"{addr}/32"])
    provider.setup_network()
    provider.start_server()
    provider.start_natpmp(lifetime_cap=10)
    for t, addr in CLIENTS.items():
        Path(f"/root/{t}.conf").write_text(client_conf(keys[t][0], addr, provider.pub))
    qbt_config()
    tr_config()
    sc.systemctl("daemon-reload")
    before = sc.snapshot()
    ok = all(sc.wgns("install", "--conf", f"/root/{t}.conf", "--name", t).returncode == 0
             for t in CLIENTS)
    ok = ok and sc.wgns("confine", QBT_UNIT).returncode == 0
    ok = ok and sc.wgns("confine", TR_UNIT, "--name", "tr").returncode == 0
    sc.systemctl("start", QBT_UNIT, TR_UNIT)
    sc.wait_for("qBittorrent answers", lambda: client_port("wg") is not None, 30)
    sc.wait_for("Transmission answers", lambda: client_port("tr") is not None, 30)
    rec.check("pf_setup", ok and client_port("wg") == 6881 and client_port("tr") == 51413,
              f"qbt {client_port('wg')} tr {client_port('tr')} "
              f"{sc.active(QBT_UNIT)} {sc.active(TR_UNIT)}")
    run_steps(rec, provider, before, keys)


sc.SCENARIOS["forward"] = forward

"""Guest side: the `forward_clients` scenario. The real Deluge (Debian's
deluged.service and deluge-web.service, a Web UI password of its own)
confined to tunnel `dl` and kept on the port the fake provider's NAT-PMP
gateway forwards, with its own login (`--credentials deluge=FILE`); the
real rTorrent (a unit of the scenario's, on SCGI) confined to tunnel `rt`
and kept on a static port (`--static`), which it listens on only from its
next start, as status says until it started again with it.

Run by scenario.py (`python3 scenario.py forward_clients REPORT`), after
`forward` in the same boot (reset() between them).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import forward as fw
import provider as prov
import scenario as sc

DL_PASSWORD = "dl web=pass-7c1f"
TUNNELS = {"dl": "10.66.0.4", "rt": "10.66.0.5"}
DELUGE_UNITS = ("deluged.service", "deluge-web.service")
DELUGE_CONF = "/var/lib/deluged/config"
RT_UNIT = "rtorrent-pf.service"
RT_PATH = f"/etc/systemd/system/{RT_UNIT}"
RT_DIR = "/var/lib/rtorrent-pf"
STATIC = 51413
WAIT = 60

FORWARD_CLIENTS_CHECKS = (
    "pfc_setup", "pfc_bad_input_refused_leaves_nothing", "pfc_deluge_follows",
    "pfc_outside_reaches_deluge", "pfc_deluge_status_json", "pfc_static_published",
    "pfc_rtorrent_next_start", "pfc_rtorrent_after_restart", "pfc_check_static",
    "pfc_passwords_hidden", "pfc_off_and_uninstall_leave_nothing",
)

DELUGE_API = r"""
import http.cookiejar, json, sys, urllib.request
op = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                 urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
def rpc(method, *params):
    body = json.dumps({"method": method, "params": list(params), "id": 1}).encode()
    r = op.open(urllib.request.Request("http://127.0.0.1:8112/json", body,
                                       {"Content-Type": "application/json"}), timeout=5)
    return json.load(r)["result"]
assert rpc("auth.login", sys.argv[1]) is True
if not rpc("web.connected"):
    rpc("web.connect", rpc("web.get_hosts")[0][0])
print(rpc("core.get_config_value", "listen_ports")[0])
"""

RT_API = r"""
import socket, xmlrpc.client
body = xmlrpc.client.dumps(("",), "network.port_range").encode()
head = b"".join(k + b"\0" + v + b"\0" for k, v in (
    (b"CONTENT_LENGTH", str(len(body)).encode()), (b"SCGI", b"1")))
with socket.create_connection(("127.0.0.1", 5000), 5) as s:
    s.sendall(str(len(head)).encode() + b":" + head + b"," + body)
    data = b""
    while chunk := s.recv(65536):
        data += chunk
print(xmlrpc.client.loads(data.partition(b"\r\n\r\n")[2].decode())[0][0].split("-")[0])
"""


def deluge_config() -> None:
    """deluge-web's password, as its web.conf keeps it (salted SHA-1)."""
    salt = os.urandom(20).hex()
    conf = {"pwd_salt": salt,
            "pwd_sha1": hashlib.sha1((salt + DL_PASSWORD).encode()).hexdigest()}
    path = f"{DELUGE_CONF}/web.conf"
    Path(path).write_text(json.dumps({"file": 2, "format": 1}) + json.dumps(conf, indent=4))
    shutil.chown(path, "debian-deluged", "debian-deluged")


def rtorrent_unit(port_range: str) -> None:
    os.makedirs(f"{RT_DIR}/session", exist_ok=True)
    Path(RT_PATH).write_text(
        "[Unit]\nDescription=rTorrent for the forward_clients scenario\n\n[Service]\n"
        "ExecStart=/usr/bin/rtorrent -n -o system.daemon.set=true"
        " -o network.scgi.open_port=127.0.0.1:5000"
        f" -o network.port_range.set={port_range} -o network.port_random.set=no"
        f" -o dht.mode.set=disable -o session.path.set={RT_DIR}/session"
        f" -o directory.default.set={RT_DIR}\n")


def ask(tunnel: str, code: str, *args: str) -> int | None:
    """A client's port, asked through its own API from inside its namespace."""
    p = sc.run("ip", "netns", "exec", tunnel, "python3", "-c", code, *args, quiet=True)
    try:
        return int(p.stdout.strip())
    except ValueError:
        return None


def deluge_port() -> int | None:
    return ask("dl", DELUGE_API, DL_PASSWORD)


def rtorrent_port() -> int | None:
    return ask("rt", RT_API)


def gateway_port(provider: prov.Provider, tunnel: str) -> int | None:
    for m in provider.natpmp_state().get("mappings", []):
        if m["client"] == TUNNELS[tunnel] and m["proto"] == "tcp":
            return int(m["external"])
    return None


def clients(tunnel: str) -> list[tuple]:
    return [(c.get("client"), c.get("synced"), c.get("restart"))
            for c in fw.status_json(tunnel).get("clients") or []]


def forward_clients(rec: sc.Recorder, flavour: str) -> None:
    sc.install_wgns(flavour, rec)
    provider = prov.Provider()
    keys = {t: prov.genkey() for t in TUNNELS}
    for t, addr in TUNNELS.items():
        provider.add_client(keys[t][1], [f"{addr}/32"])
    provider.setup_network()
    provider.start_server()
    provider.start_natpmp(lifetime_cap=10)
    for t, addr in TUNNELS.items():
        Path(f"/root/{t}.conf").write_text(fw.client_conf(keys[t][0], addr, provider.pub))
    deluge_config()
    rtorrent_unit("6890-6890")
    sc.systemctl("daemon-reload")
    before = sc.snapshot()
    outputs: list[str] = []

    def wgns(*args: str) -> subprocess.CompletedProcess:
        p = sc.wgns(*args)
        outputs.append(p.stdout + p.stderr)
        return p
    ok = all(wgns("install", "--conf", f"/root/{t}.conf", "--name", t).returncode == 0
             for t in TUNNELS)
    ok = ok and wgns("confine", *DELUGE_UNITS, "--name", "dl").returncode == 0
    ok = ok and wgns("confine", RT_UNIT, "--name", "rt").returncode == 0
    sc.systemctl("start", *DELUGE_UNITS, RT_UNIT)
    sc.wait_for("Deluge answers", lambda: deluge_port() is not None, WAIT)
    sc.wait_for("rTorrent answers", lambda: rtorrent_port() is not None, 30)
    rec.check("pfc_setup", ok and deluge_port() is not None and rtorrent_port() == 6890,
              f"deluge {deluge_port()} rtorrent {rtorrent_port()} "
              + " ".join(sc.active(u) for u in (*DELUGE_UNITS, RT_UNIT)))
    steps(rec, provider, wgns, outputs, keys, before)


def steps(rec: sc.Recorder, provider: prov.Provider, wgns, outputs: list[str],
          keys: dict, before: dict) -> None:
    login = "/root/dl.login"
    Path(login).write_text(f"password={DL_PASSWORD}\n")
    os.chmod(login, 0o600)
    snap = sc.snapshot()
    cases = [
        (("--name", "dl", "--qbittorrent", "http://127.0.0.1:8080", "--credentials",
          f"deluge={login}"), "give --deluge URL too"),
        (("--name", "rt", "--rtorrent", "scgi://127.0.0.1:5000", "--credentials",
          f"rtorrent={login}"), "SCGI takes no login"),
        (("--name", "rt", "--static", "51413", "--gateway", "10.66.0.1"), "--static and --gateway"),
        (("--name", "rt", "--rtorrent", "scgi://127.0.0.1"), "scgi://ADDRESS:PORT"),
        (("--name", "dl", "--deluge", "http://10.9.9.9:8112"), "outside the tunnel"),
    ]
    results = [sc.one_error_line(wgns("port-forward", *args), says) for args, says in cases]
    changed = sc.diff(snap, sc.snapshot())
    rec.check("pfc_bad_input_refused_leaves_nothing",
              all(r[0] for r in results) and not changed, ([r[1] for r in results], changed))

    # -- Deluge, NAT-PMP, its own login ---------------------------------------------
    p = wgns("port-forward", "--name", "dl", "--deluge", "http://127.0.0.1:8112",
             "--credentials", f"deluge={login}")
    sc.wait_for("Deluge on the forwarded port", lambda: fw.forwarded("dl") is not None
                and deluge_port() == fw.forwarded("dl"), WAIT)
    port = fw.forwarded("dl")
    rec.check("pfc_deluge_follows", p.returncode == 0 and port is not None
              and port == gateway_port(provider, "dl") and deluge_port() == port
              and "deluged" in fw.listener("dl", port),
              (port, gateway_port(provider, "dl"), deluge_port(),
               fw.listener("dl", port or 1)))
    rec.check("pfc_outside_reaches_deluge", port is not None and fw.outside_tcp(port), port)
    sc.wait_for("status says Deluge is in sync", lambda: clients("dl") == [
        ("Deluge", True, False)], 15)
    st = fw.status_json("dl")
    rec.check("pfc_deluge_status_json", st.get("method") == "natpmp" and st.get("port") == port
              and clients("dl") == [("Deluge", True, False)], st)

    # -- rTorrent, a static port, from its next start ---------------------------------
    p = wgns("port-forward", "--name", "rt", "--static", str(STATIC), "--rtorrent",
             "scgi://127.0.0.1:5000")
    sc.wait_for("static port published", lambda: fw.forwarded("rt") == STATIC, 30)
    sc.wait_for("status says rTorrent must start again",
                lambda: clients("rt") == [("rTorrent", True, True)], 30)
    st, text = fw.status_json("rt"), wgns("status", "--name", "rt").stdout
    rec.check("pfc_static_published", p.returncode == 0 and fw.forwarded("rt") == STATIC
              and st.get("method") == "static" and st.get("gateway") is None
              and st.get("port") == STATIC and "static: reserved at the provider" in text,
              (st, text))
    rec.check("pfc_rtorrent_next_start", clients("rt") == [("rTorrent", True, True)]
              and rtorrent_port() == STATIC and "next start" in text
              and "rtorrent" not in fw.listener("rt", STATIC)
              and "rtorrent" in fw.listener("rt", 6890),
              (clients("rt"), fw.listener("rt", STATIC), fw.listener("rt", 6890)))
    rtorrent_unit(f"{STATIC}-{STATIC}")     # its configuration, as the docs say
    sc.systemctl("daemon-reload")
    sc.systemctl("restart", RT_UNIT)
    sc.wait_for("rTorrent on the static port", lambda: "rtorrent" in fw.listener("rt", STATIC),
                30)
    sc.wait_for("status no longer says restart",
                lambda: clients("rt") == [("rTorrent", True, False)], WAIT)
    rec.check("pfc_rtorrent_after_restart", "rtorrent" in fw.listener("rt", STATIC)
              and clients("rt") == [("rTorrent", True, False)],
              (clients("rt"), fw.listener("rt", STATIC)))
    _, checks = sc.check_json("--name", "rt")
    line = checks.get("port-forward", {})
    rec.check("pfc_check_static", line.get("ok") is True and "static" in line.get("detail", ""),
              line)
    finish(rec, wgns, outputs, keys, before)


def finish(rec: sc.Recorder, wgns, outputs: list[str], keys: dict, before: dict) -> None:
    secrets = [DL_PASSWORD] + [k[0] for k in keys.values()]
    places = sc.exposure_places("\n".join(outputs))
    places["unit"] = sc.run("systemctl", "show", "wgns-dl-forward.service",
                            "wgns-rt-forward.service", quiet=True).stdout
    leaks = [w for w, text in places.items() if any(s in text for s in secrets)]
    modes = {p: oct(os.stat(p).st_mode & 0o777) for p in glob.glob("/etc/wgns/*/forward*")}
    rec.check("pfc_passwords_hidden", not leaks and len(places) > 10
              and set(modes.values()) == {"0o600"}
              and "/etc/wgns/dl/forward-deluge.login" in modes, (leaks[:5], modes))
    ok = all(wgns("port-forward", "--off", "--name", t).returncode == 0 for t in TUNNELS)
    ok = ok and all(wgns("uninstall", "--name", t).returncode == 0 for t in TUNNELS)
    sc.systemctl("stop", *DELUGE_UNITS, RT_UNIT)
    rtorrent_unit("6890-6890")
    changed = [c for c in sc.diff(before, sc.snapshot()) if not c.startswith("/etc/deluged")]
    rec.check("pfc_off_and_uninstall_leave_nothing", ok and not changed
              and not glob.glob("/run/wgns/*/"), changed[:8])
    os.unlink(RT_PATH)
    sc.systemctl("daemon-reload")


sc.SCENARIOS["forward_clients"] = forward_clients

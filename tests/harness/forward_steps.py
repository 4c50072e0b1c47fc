"""Guest side: the checks of the `forward` scenario (forward.py sets up the
provider, the two tunnels and the two real clients, then calls run_steps)."""

from __future__ import annotations

import glob
import os
import socket
from pathlib import Path

import forward as fw
import provider as prov
import scenario as sc
import security

WAIT = 60   # the bound for a client to follow a new port


def udp_in(tunnel: str) -> int:
    """Datagrams the namespace's sockets received (/proc/net/snmp is per namespace)."""
    text = sc.run("ip", "netns", "exec", tunnel, "cat", "/proc/net/snmp", quiet=True).stdout
    rows = [ln.split() for ln in text.splitlines() if ln.startswith("Udp:")]
    return int(dict(zip(rows[0], rows[1]))["InDatagrams"]) if len(rows) == 2 else -1


def bad_input(rec: sc.Recorder) -> None:
    loose = "/root/loose.login"
    Path(loose).write_text(f"username=a\npassword={fw.QBT_PASSWORD}\n")
    os.chmod(loose, 0o644)
    cases = [
        (("--name", "nosuch"), "no tunnel named", 1),
        (("--gateway", "10.66.0.1%wg"), "not an IP address", 1),
        (("--gateway", "fd66::1"), "IPv4", 1),
        (("--qbittorrent", f"{fw.QBT_URL}\nExecStartPre=/bin/sh"), "not a URL", 1),
        (("--qbittorrent", "http://admin:pw@127.0.0.1:8080"), "login in the URL", 1),
        (("--qbittorrent", "http://qbt.lan:8080"), "not an IP address", 1),
        (("--qbittorrent", fw.QBT_URL, "--credentials", loose), "chmod 600", 1),
        (("--credentials", "/root/nosuch.login", "--qbittorrent", fw.QBT_URL),
         "--credentials: no such file", 1),
        (("--exec", "echo a\nrm -rf /"), "--exec", 1),
        (("--off",), "not on", 1),
        (("--off", "--gateway", "10.66.0.1"), "--off takes no --gateway", 2),
    ]
    before = sc.snapshot()
    bad = []
    for args, fragment, code in cases:
        p = sc.wgns("port-forward", *args)
        ok, detail = sc.one_error_line(p, fragment, code)
        if not ok or fw.QBT_PASSWORD in p.stdout + p.stderr:
            bad.append(f"{args}: {detail}")
    changed = sc.diff(before, sc.snapshot())
    rec.check("pf_bad_input_refused_leaves_nothing", not bad and not changed,
              bad[:3] + changed[:5])


def run_steps(rec: sc.Recorder, provider: prov.Provider, before: dict, keys: dict) -> None:
    outputs = ""
    bad_input(rec)

    # -- qBittorrent on tunnel wg ----------------------------------------------
    before_pf = sc.snapshot()
    qlogin = fw.login_file("/root/qbt.login", fw.QBT_USER, fw.QBT_PASSWORD)
    p = sc.wgns("port-forward", "--qbittorrent", fw.QBT_URL, "--credentials", qlogin)
    outputs += p.stdout + p.stderr
    rec.check("pf_qbittorrent_port_forward_on",
              p.returncode == 0 and sc.active("wgns-wg-forward.service") == "active",
              p.stdout + p.stderr)
    sc.wait_for("port published", lambda: fw.forwarded("wg") is not None, 30)
    port = fw.forwarded("wg")
    rec.check("pf_port_published", port is not None and port == fw.gateway_port(provider, "wg"),
              (port, provider.natpmp_state()))
    sc.wait_for("qBittorrent follows", lambda: fw.client_port("wg") == port, WAIT)
    rec.check("pf_qbittorrent_follows", port is not None and fw.client_port("wg") == port,
              (fw.client_port("wg"), port))
    who = fw.listener("wg", port or 0)
    rec.check("pf_outside_reaches_qbittorrent",
              bool(port) and fw.outside_tcp(port or 0) and "qbittorrent" in who, who)
    n = udp_in("wg")
    for _ in range(5):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"d1:ad2:id20:wgns-udp-forwarded00ee", (prov.PROV_LAN4, port or 1))
    sc.wait_for("UDP arrives", lambda: udp_in("wg") >= n + 5, 10)
    udp = sc.run("ip", "netns", "exec", "wg", "ss", "-Hulnp", f"sport = :{port}", quiet=True)
    rec.check("pf_udp_forwarded", udp_in("wg") >= n + 5 and "qbittorrent" in udp.stdout,
              (n, udp_in("wg"), udp.stdout))
    p = sc.wgns("status", "--name", "wg")
    outputs += p.stdout + p.stderr
    line = next((ln for ln in p.stdout.splitlines() if "forwarded port" in ln), "")
    rec.check("pf_status_text", f"forwarded port: {port} (TCP+UDP), renewed" in line
              and f"via {prov.SERVER4}" in line and "qBittorrent: in sync" in p.stdout,
              p.stdout[-600:])
    st = fw.status_json("wg")
    rec.check("pf_status_json", st.get("port") == port and st.get("gateway") == prov.SERVER4
              and isinstance(st.get("renewed_age"), int) and st.get("error") is None, st)
    code, checks = sc.check_json("--name", "wg")
    pf = checks.get("port-forward", {})
    rec.check("pf_check_reports_port", code == 0 and pf.get("ok") is True
              and str(port) in pf.get("detail", ""), checks)

    # -- Transmission on tunnel tr, with a hook ---------------------------------
    tlogin = fw.login_file("/root/tr.login", fw.TR_USER, fw.TR_PASSWORD)
    hook = 'echo "$WGNS_TUNNEL $WGNS_PORT" > /run/wgns/tr/hook-saw'
    p = sc.wgns("port-forward", "--name", "tr", "--transmission", fw.TR_URL,
                "--credentials", tlogin, "--exec", hook)
    outputs += p.stdout + p.stderr
    sc.wait_for("Transmission follows", lambda: fw.forwarded("tr") is not None
                and fw.client_port("tr") == fw.forwarded("tr"), WAIT)
    tport = fw.forwarded("tr")
    rec.check("pf_transmission_follows", p.returncode == 0 and tport is not None
              and tport == fw.gateway_port(provider, "tr") and fw.client_port("tr") == tport,
              (p.stderr, tport, fw.client_port("tr"), fw.gateway_port(provider, "tr")))
    sc.wait_for("Transmission listens", lambda: "transmission" in fw.listener("tr", tport or 0),
                15)
    rec.check("pf_outside_reaches_transmission", bool(tport) and fw.outside_tcp(tport or 0)
              and "transmission" in fw.listener("tr", tport or 0), fw.listener("tr", tport or 0))
    saw = Path("/run/wgns/tr/hook-saw")
    sc.wait_for("hook ran", saw.exists, 15)
    rec.check("pf_exec_hook_runs", saw.exists() and saw.read_text().split() == ["tr", str(tport)],
              saw.read_text() if saw.exists() else "no file")

    # -- the gateway restarts and hands out another port --------------------------
    provider.restart_natpmp(lifetime_cap=10)
    t = sc.wait_for("qBittorrent on the new port", lambda: fw.gateway_port(provider, "wg")
                    not in (None, port) and fw.client_port("wg") == fw.gateway_port(provider, "wg")
                    == fw.forwarded("wg"), WAIT)
    new = fw.forwarded("wg")
    rec.check("pf_gateway_restart_client_follows", t is not None and new != port
              and bool(new) and fw.outside_tcp(new or 0), (port, new, t))
    rec.info("pf_seconds_to_follow_new_port", t)

    # -- a gateway that refuses, then none at all -------------------------------
    provider.restart_natpmp(lifetime_cap=10, refuse=True)
    sc.wait_for("refusal shown", lambda: "not authorized" in str(fw.status_json("wg")), 30)
    st = fw.status_json("wg")
    rec.check("pf_refused_status_says_why", "not authorized" in str(st.get("error"))
              and st.get("port") is None and fw.forwarded("wg") is None, st)
    # The gateway says yes again (refuse=False: a restart keeps the last
    # start's settings unless told): the forwarder asks again after its
    # wait for a refusal (30 s) and maps a port without a restart.
    provider.restart_natpmp(lifetime_cap=10, refuse=False)
    t = sc.wait_for("port again", lambda: fw.forwarded("wg") is not None, 60)
    st = fw.status_json("wg")
    rec.check("pf_refusal_lifted_port_back", t is not None and st.get("error") is None
              and st.get("port") == fw.forwarded("wg"), (t, st))
    provider.stop_natpmp()
    sc.wait_for("silence shown", lambda: "does not answer" in str(fw.status_json("wg")), 30)
    sc.wait_for("port dropped", lambda: fw.forwarded("wg") is None, 30)
    st = fw.status_json("wg")
    p = sc.wgns("status", "--name", "wg")
    rec.check("pf_gateway_gone_status_says_why", "does not answer" in str(st.get("error"))
              and fw.forwarded("wg") is None and "does not answer" in p.stdout, (st, p.stdout))
    code, checks = sc.check_json("--name", "wg")
    leak_checks = ("interfaces", "routes", "dns", "resolver-sockets", "drop-ins")
    rec.check("pf_gateway_gone_nothing_leaks", code == 1
              and all(checks.get(c, {}).get("ok") for c in leak_checks)
              and checks.get("port-forward", {}).get("ok") is False, checks)
    provider.start_natpmp(lifetime_cap=10)

    # -- the tunnel's lifecycle --------------------------------------------------
    sc.systemctl("stop", "wg.service")
    sc.settle("wgns-wg-forward.service")
    rec.check("pf_stops_with_tunnel", sc.active("wgns-wg-forward.service") == "inactive"
              and not os.path.exists("/run/wgns/wg"), sc.active("wgns-wg-forward.service"))
    sc.systemctl("start", "wg.service", fw.QBT_UNIT)
    sc.wait_for("back with the tunnel", lambda: fw.forwarded("wg") is not None
                and fw.client_port("wg") == fw.forwarded("wg"), WAIT)
    rec.check("pf_back_with_tunnel", sc.active("wgns-wg-forward.service") == "active"
              and fw.forwarded("wg") is not None
              and fw.client_port("wg") == fw.forwarded("wg"), fw.status_json("wg"))
    security.record(rec, {"port forwarding": "wgns-wg-forward.service"})

    # -- secrets: keys and client passwords never shown ---------------------------
    secrets = [fw.QBT_PASSWORD, fw.TR_PASSWORD] + [k[0] for k in keys.values()]
    places = sc.exposure_places(outputs)
    places["unit"] = sc.run("systemctl", "show", "wgns-wg-forward.service",
                            "wgns-tr-forward.service", quiet=True).stdout
    leaks = [w for w, text in places.items() if any(s in text for s in secrets)]
    modes = {p: oct(os.stat(p).st_mode & 0o777) for p in glob.glob("/etc/wgns/*/forward.*")}
    rec.check("pf_keys_and_passwords_hidden", not leaks and len(places) > 10
              and set(modes.values()) == {"0o600"}, (leaks[:5], modes))

    # -- off, uninstall ----------------------------------------------------------
    p = sc.wgns("port-forward", "--off")
    # The stop waited for the unit; systemd removes its runtime directory as
    # it goes: wait for that, then compare.
    sc.settle("wgns-wg-forward.service")
    sc.wait_for("the runtime directory gone", lambda: not os.path.exists("/run/wgns/wg"), 10)
    changed = [c for c in sc.diff(before_pf, sc.snapshot()) if "/tr" not in c
               and "tr.service" not in c and "tr-forward" not in c]
    rec.check("pf_off_leaves_nothing", p.returncode == 0 and not changed
              and sc.active("wgns-wg-forward.service") == "inactive"
              and not os.path.exists("/run/wgns/wg"), (p.stderr, changed))
    ok = all([sc.wgns("uninstall", "--name", t).returncode == 0 for t in fw.CLIENTS])
    sc.systemctl("stop", fw.QBT_UNIT, fw.TR_UNIT)
    # Transmission saves its settings (the new peer port) when it stops.
    changed = [c for c in sc.diff(before, sc.snapshot())
               if not c.startswith("/etc/transmission-daemon/")]
    gone = sc.run("systemctl", "show", "-p", "LoadState", "wgns-tr-forward.service",
                  quiet=True).stdout.strip()
    rec.check("pf_uninstall_leaves_nothing", ok and not changed
              and gone == "LoadState=not-found" and not glob.glob("/run/wgns/*/"),
              (changed[:8], gone))

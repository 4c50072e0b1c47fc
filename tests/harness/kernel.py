"""Guest side: the `kernel` scenario, what the VM tier proves with a real
kernel's WireGuard on both ends (the containers have only wireguard-go):
the link made, configured (preshared key, keepalive, allowed IPs), moved
and routed over netlink; traffic, DNS and isolation seen from a confined
probe; the device read back (status, check, the watcher's looks) by wgns's
own netlink reader; a peer updated in place keeping its allowed IPs (where
pyroute2 0.7 and 0.9 differ); the link deleted and healed; uninstall.

Every command costs seconds under emulation, so this is the kernel path
and nothing else; the rest of the core scenario runs in the containers.
Run by scenario.py (`python3 scenario.py kernel REPORT`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import provider as prov
import scenario as sc

KERNEL_CHECKS = (
    "kernel_install", "kernel_link_is_wireguard", "kernel_probe_through_tunnel",
    "kernel_probe_isolated", "kernel_status_handshake", "kernel_peer_update_keeps_allowed_ips",
    "kernel_check_passes", "kernel_heal_link_deleted", "kernel_uninstall_leaves_no_trace",
)


def kernel(rec: sc.Recorder, flavour: str) -> None:
    rec.step("Kernel WireGuard: install, confine, look from inside")
    sc.install_wgns(flavour, rec)
    provider = prov.Provider()
    priv, pub = prov.genkey()
    psk = sc.run("wg", "genpsk", quiet=True).stdout.strip()
    provider.add_client(pub, ["10.66.0.2/32", "fd66::2/128"], psk)
    provider.setup_network()
    provider.start_server()
    Path("/root/provider.conf").write_text(sc.client_conf(priv, psk, provider.pub))
    os.chmod("/root/provider.conf", 0o600)
    sc.PROBE_OUT.mkdir(exist_ok=True)
    Path("/etc/systemd/system/probe@.service").write_text(
        sc.PROBE_UNIT.format(guest=sc.GUEST, out=sc.PROBE_OUT))
    sc.systemctl("daemon-reload")
    before = sc.snapshot()
    p = sc.wgns("install", "--conf", "/root/provider.conf")
    rec.check("kernel_install", p.returncode == 0 and sc.active("wg.service") == "active",
              p.stderr.strip())
    kind = sc.run("ip", "-n", "wg", "-d", "link", "show", "wg", quiet=True).stdout
    rec.check("kernel_link_is_wireguard", "wireguard" in kind, kind[-300:])
    modules = [ln.split()[0] for ln in Path("/proc/modules").read_text().splitlines()
               if ln.startswith(("wireguard ", "tun "))] if os.path.exists("/proc/modules") else []
    rec.info("wireguard_module", " ".join(modules) or "none")
    sc.wgns("confine", "probe@k")
    r = sc.probe("k")
    rec.check("kernel_probe_through_tunnel",
              sc.body(r, "http4") == prov.TOKEN and sc.body(r, "http6") == prov.TOKEN
              and (r.get("dns") or {}).get("addresses") == ["10.66.0.1", "fd66::1"],
              (r.get("http4"), r.get("http6"), r.get("dns")))
    rec.check("kernel_probe_isolated",
              r.get("links") == ["lo", "wg"] and not sc.reached(r, "host_lan")
              and not sc.reached(r, "host_loopback"), r.get("links"))

    rec.step("The device read back; a peer updated in place; a link healed")
    p = sc.wgns("status", "--json")
    try:
        tun = json.loads(p.stdout)["tunnels"][0]
        peer = tun["peers"][0]
        ok = (tun["implementation"] == "kernel" and peer["latest_handshake"]
              and peer["rx_bytes"] > 0 and sorted(peer["allowed_ips"]) == ["0.0.0.0/0", "::/0"]
              and peer["keepalive"] == 25)
        detail: object = tun
    except (ValueError, KeyError, IndexError, TypeError) as e:
        ok, detail = False, f"{e}: {p.stdout[:300]} {p.stderr[:300]}"
    rec.check("kernel_status_handshake", ok, detail)
    sc.peer_update(rec, provider, check="kernel_peer_update_keeps_allowed_ips")
    code, checks = sc.check_json()
    rec.check("kernel_check_passes", code == 0 and bool(checks)
              and all(c["ok"] for c in checks.values()), checks)
    sc.run("ip", "-n", "wg", "link", "del", "wg")
    took = sc.wait_for("link back, traffic through it", lambda: sc.body(
        sc.probe("k"), "http4") == prov.TOKEN, 90)
    rec.info("kernel_heal_seconds", took)
    rec.check("kernel_heal_link_deleted", took is not None, took)
    p = sc.wgns("uninstall")
    changed = sc.diff(before, sc.snapshot())
    rec.check("kernel_uninstall_leaves_no_trace", p.returncode == 0 and not changed,
              changed[:10])
    provider.stop()


sc.SCENARIOS["kernel"] = kernel

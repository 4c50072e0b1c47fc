"""Guest side: what each distribution generation must show besides the
core and ops scenarios (systems.py lists the guests).

- `unittests`: the unit, golden and property tests under the guest's own
  Python and libraries (Debian 13's 3.13, sid's 3.14), with the guest's
  own systemd-analyze for the units' verification.
- `units`: every kind of unit wgns writes, installed for real (a tunnel
  with a metrics directory, a confined unit, TCP and UDP exposes, reaches
  by address, by name and over UDP, port forwarding), each verified by
  this systemd (`systemd-analyze verify`, no warning allowed) and scored
  live (`systemd-analyze security`, recorded for the host's
  test_security_scores to compare with the README's table for this
  systemd), then uninstalled without a trace.
- `resolved`: a host whose own resolver is systemd-resolved (the stub
  127.0.0.53 in /etc/resolv.conf, `resolve` in nsswitch.conf), as on
  Ubuntu and Fedora: a confined unit resolves through the tunnel only,
  `wgns check` passes, and resolved is asked nothing meanwhile.

Run by scenario.py (`python3 scenario.py units+resolved+core REPORT`).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import provider as prov
import scenario as sc
import security

SRC = f"{sc.GUEST}/src"   # the checkout's tracked files (machine.py copies them)
UNITTEST_CHECKS = ("unit_tests_pass",)
UNITS_CHECKS = ("units_installed", "units_verify_clean", "units_scored",
                "units_uninstall_leaves_no_trace")
RESOLVED_CHECKS = ("resolved_is_the_hosts_resolver", "resolved_probe_dns_through_tunnel",
                   "resolved_asked_nothing", "resolved_check_passes",
                   "resolved_uninstall_leaves_no_trace")
METRICS_DIR = "/srv/wgns metrics"
# Every kind of unit wgns writes (security.KINDS, the README's sandboxing
# table) and the unit of that kind the `units` scenario makes.
UNITS = {
    "tunnel": "wg.service", "namespace": "netns@wg.service",
    "watcher": "wgns-watch.service", "TCP expose": "wgns-wg-expose-8000.service",
    "UDP expose": "wgns-wg-expose-udp-5353.service",
    "TCP reach, an address": "wgns-wg-reach-5432.service",
    "TCP reach, a name": "wgns-wg-reach-9696.service",
    "UDP reach, an address": "wgns-wg-reach-udp-53.service",
    "UDP reach, a name": "wgns-wg-reach-udp-5300.service",
    "port forwarding": "wgns-wg-forward.service",
}


def unittests(rec: sc.Recorder, flavour: str) -> None:
    """The host's unit tests, here, with the distribution's Python and
    libraries (not the flavour's: the point is this Python)."""
    rec.step("The unit, golden and property tests with this system's Python")
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8",
           "PYTHONDONTWRITEBYTECODE": "1"}
    # tests/provider tests the fake provider (the harness), not wgns: it
    # runs once, on the host.
    p = subprocess.run(["/usr/bin/python3", "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "-m", "not container and not vm", "--ignore", "tests/provider",
                        "tests"], cwd=SRC, env=env,
                       text=True, capture_output=True)
    print(p.stdout[-6000:] + p.stderr[-2000:], flush=True)
    tail = (p.stdout.strip().splitlines() or [""])[-1]
    failed = [ln for ln in p.stdout.splitlines() if ln.startswith(("FAILED", "ERROR"))]
    version = subprocess.run(["/usr/bin/python3", "-c", "import platform; "
                              "print(platform.python_version())"], text=True,
                             capture_output=True).stdout.strip()
    lines = p.stdout.splitlines()
    start = next((i for i, ln in enumerate(lines) if "warnings summary" in ln), len(lines))
    warned = [ln for ln in lines[start + 1:start + 40] if ln.strip() and not ln.startswith("--")]
    rec.info("unit_tests", {"python": version, "summary": tail, "failed": failed[:20],
                            "warnings": warned})
    rec.check("unit_tests_pass", p.returncode == 0 and " passed" in tail,
              f"Python {version}: {tail}; {failed[:5]}")


def _conf(provider: prov.Provider) -> str:
    priv, pub = prov.genkey()
    provider.add_client(pub, ["10.66.0.2/32", "fd66::2/128"])
    conf = sc.client_conf(priv, "", provider.pub)
    return "\n".join(ln for ln in conf.splitlines() if not ln.startswith("PresharedKey")) + "\n"


def _setup(rec: sc.Recorder, flavour: str) -> tuple[prov.Provider, dict[str, str]]:
    sc.install_wgns(flavour, rec)
    provider = prov.Provider()
    conf = _conf(provider)
    provider.setup_network()
    provider.start_server()
    Path("/root/provider.conf").write_text(conf)
    os.chmod("/root/provider.conf", 0o600)
    sc.PROBE_OUT.mkdir(exist_ok=True)
    Path("/etc/systemd/system/probe@.service").write_text(
        sc.PROBE_UNIT.format(guest=sc.GUEST, out=sc.PROBE_OUT))
    Path("/etc/systemd/system/sleeper.service").write_text(sc.SLEEPER_UNIT)
    sc.systemctl("daemon-reload")
    return provider, {}


def units(rec: sc.Recorder, flavour: str) -> None:
    rec.step("Every kind of unit wgns writes, verified and scored by this systemd")
    provider, _ = _setup(rec, flavour)
    Path("/etc/hosts").write_text(Path("/etc/hosts").read_text() + "127.0.0.1 indexer.lan\n")
    before = sc.snapshot()
    os.makedirs(METRICS_DIR, exist_ok=True)
    login = Path("/root/qbt.login")
    login.write_text("username=admin\npassword=x y%h$z\n")
    login.chmod(0o600)
    steps = [
        ("install", "--conf", "/root/provider.conf", "--metrics-dir", METRICS_DIR),
        ("confine", "sleeper"),
        ("expose", "sleeper", "8000"),
        ("expose", "sleeper", "5353", "--udp", "--listen", "0.0.0.0:5353"),
        ("reach", "127.0.0.1:5432"),
        ("reach", "indexer.lan:9696"),
        ("reach", "[::1]:53", "--udp"),
        ("reach", "indexer.lan:5300", "--udp"),
        ("port-forward", "--qbittorrent", "http://127.0.0.1:8080", "--credentials",
         str(login), "--exec", "echo $WGNS_PORT"),
    ]
    results = [sc.wgns(*step) for step in steps]
    failed = [" ".join(st) + ": " + p.stderr.strip() for st, p in zip(steps, results)
              if p.returncode != 0]
    rec.check("units_installed", not failed and sc.active("wg.service") == "active", failed)
    unit_dir = Path("/etc/systemd/system")
    files = sorted(p.name for p in unit_dir.iterdir() if p.is_file() and p.name.startswith(
        ("wg.service", "netns@", "wgns-")))
    to_verify = [f.replace("@.service", "@wg.service") for f in files] + ["sleeper.service"]
    p = sc.run("systemd-analyze", "verify", "--man=no", *to_verify)
    said = [ln for ln in (p.stdout + p.stderr).splitlines() if ln.strip()]
    rec.info("units_verified", to_verify)
    rec.check("units_verify_clean", p.returncode == 0 and not said and len(to_verify) >= 14,
              {"exit": p.returncode, "said": said[:10], "units": to_verify})
    security.record(rec, UNITS)   # the host compares them with the README's table
    rec.check("units_scored", sorted(UNITS) == sorted(security.KINDS), sorted(UNITS))
    p = sc.wgns("uninstall")
    changed = [k for k in sc.diff(before, sc.snapshot()) if not k.startswith("/etc/hosts")]
    rec.check("units_uninstall_leaves_no_trace", p.returncode == 0 and not changed,
              changed[:10])
    os.rmdir(METRICS_DIR)
    provider.stop()


def transactions() -> int | None:
    """systemd-resolved's count of the lookups it has made (resolvectl
    statistics: "Total Transactions")."""
    p = sc.run("resolvectl", "statistics", "--json=short", quiet=True)
    try:
        return int(json.loads(p.stdout)["transactions"]["totalTransactions"])
    except (ValueError, KeyError, TypeError):
        m = re.search(r"Total Transactions:\s*(\d+)",
                      sc.run("resolvectl", "statistics", quiet=True).stdout)
        return int(m.group(1)) if m else None


def resolved(rec: sc.Recorder, flavour: str) -> None:
    rec.step("A host whose resolver is systemd-resolved (as on Ubuntu and Fedora)")
    provider, _ = _setup(rec, flavour)
    resolv = os.path.realpath("/etc/resolv.conf")
    nss = Path("/etc/nsswitch.conf").read_text()
    stub = "nameserver 127.0.0.53" in Path("/etc/resolv.conf").read_text()
    rec.check("resolved_is_the_hosts_resolver",
              sc.active("systemd-resolved.service") == "active" and stub
              and re.search(r"^hosts:.*\bresolve\b", nss, re.M) is not None,
              (sc.active("systemd-resolved.service"), resolv, stub))
    # resolved gets an upstream of its own (a dnsmasq on the host's
    # 127.0.0.2), so that a name it is asked for is a transaction it counts:
    # the host's own lookup afterwards shows the count would move.
    upstream = subprocess.Popen(
        ["dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts",
         "--listen-address=127.0.0.2", "--bind-interfaces", "--user=root",
         "--address=/control.test/10.9.9.9"], stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    conf = Path("/etc/systemd/resolved.conf.d/wgns-test.conf")
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text("[Resolve]\nDNS=127.0.0.2\nDomains=~.\n")
    sc.systemctl("restart", "systemd-resolved.service")
    before = sc.snapshot()
    sc.wgns("install", "--conf", "/root/provider.conf")
    sc.wgns("confine", "probe@resolved")
    sc.run("resolvectl", "reset-statistics", quiet=True)
    asked_before = transactions()
    r = sc.probe("resolved")
    asked_after = transactions()
    host = sc.run("getent", "hosts", "control.test", quiet=True).stdout.split()
    asked_by_host = transactions()
    rec.info("resolved_transactions", [asked_before, asked_after, asked_by_host])
    rec.check("resolved_probe_dns_through_tunnel",
              (r.get("dns") or {}).get("addresses") == ["10.66.0.1", "fd66::1"]
              and sc.body(r, "http_name") == prov.TOKEN
              and "nameserver 10.66.0.1" in r.get("resolv_conf", "")
              and not sc.reached(r, "resolved_socket"), (r.get("dns"), r.get("http_name")))
    rec.check("resolved_asked_nothing", asked_before is not None
              and asked_before == asked_after and host[:1] == ["10.9.9.9"]
              and asked_by_host is not None and asked_by_host > asked_after,
              {"before the probe": asked_before, "after it": asked_after,
               "after the host's own lookup": asked_by_host, "host got": host})
    code, checks = sc.check_json()
    rec.check("resolved_check_passes", code == 0 and bool(checks)
              and all(c["ok"] for c in checks.values()), checks)
    p = sc.wgns("uninstall")
    changed = sc.diff(before, sc.snapshot())
    rec.check("resolved_uninstall_leaves_no_trace", p.returncode == 0 and not changed,
              changed[:10])
    conf.unlink()
    sc.systemctl("restart", "systemd-resolved.service")
    upstream.terminate()
    upstream.wait()
    provider.stop()


sc.SCENARIOS.update({"unittests": unittests, "units": units, "resolved": resolved})

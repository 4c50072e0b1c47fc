"""Guest side: the `metrics` scenario. Debian's real prometheus-node-exporter
scrapes the watcher's textfiles: two tunnels against the fake provider
(`wg` with a confined unit, an idle one, an exposed port and port
forwarding; `tr` bare), each written by its own watcher run to
/var/lib/prometheus/node-exporter/wgns-NAME.prom. What
http://127.0.0.1:9100/metrics shows is compared with `wgns status --json`
and `wgns status --prometheus`, then the tunnel goes down and comes back,
`tr` moves to a --metrics-dir with a space, a specifier, a `$` and a `'`, and
uninstall takes every file away.

Run by scenario.py (`python3 scenario.py metrics REPORT`).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import time
import urllib.request
from pathlib import Path

import provider as prov
import scenario as sc

NODE = "prometheus-node-exporter.service"
SCRAPE = "http://127.0.0.1:9100/metrics"
TEXTFILES = "/var/lib/prometheus/node-exporter"
ODD_DIR = "/srv/wgns metrics 100%h $HOME it's"
NEXT_DIR = "/srv/wgns-metrics-next"
WATCHER = "wgns-watch.service"
CLIENTS = {"wg": "10.66.0.2", "tr": "10.66.0.3"}
IDLE_UNIT = """[Unit]
Description=a confined service that is not running

[Service]
DynamicUser=yes
ExecStart=/bin/sleep infinity
"""

METRICS_CHECKS = (
    "metrics_setup", "metrics_bad_dir_refused_leaves_nothing", "metrics_watcher_writes_file",
    "metrics_scrape_tunnel_up", "metrics_scrape_peer_values", "metrics_scrape_units_and_ports",
    "metrics_scrape_two_tunnels", "metrics_restarts_from_file",
    "metrics_status_prometheus_matches", "metrics_status_flags_exclusive",
    "metrics_keys_hidden", "metrics_watcher_has_no_start_limit", "metrics_down_after_stop",
    "metrics_up_after_start",
    "metrics_dir_option_read_back", "metrics_dir_option_writes_there",
    "metrics_dir_moved_without_start_old_file_stays_gone",
    "metrics_uninstall_removes_files",
)
Series = dict[tuple[str, frozenset], float]


def parse(text: str, prefix: str = "wgns_") -> Series:
    """{(name, labels): value} of the sample lines whose name starts with PREFIX."""
    out: Series = {}
    for line in text.split("\n"):
        m = re.fullmatch(r"(\w+)(?:\{(.*)\})? (\S+)", line)
        if line.startswith("#") or not m or not m.group(1).startswith(prefix):
            continue
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def scrape(prefix: str = "wgns_") -> Series:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        return parse(opener.open(SCRAPE, timeout=10).read().decode(), prefix)
    except OSError:
        return {}


def value(series: Series, name: str, **labels: str) -> float | None:
    return series.get((name, frozenset(labels.items())))


def status_json() -> dict[str, dict]:
    p = sc.run(sc.WGNS, "status", "--json", quiet=True)
    try:
        return {t["name"]: t for t in json.loads(p.stdout)["tunnels"]}
    except (ValueError, KeyError):
        return {}


def watch() -> bool:
    """A fresh look at every tunnel: the restarted watcher is ready once
    its first look at each, and the metrics files written after them, are
    done."""
    p = sc.systemctl("restart", WATCHER)
    if p.returncode != 0:  # what it said, in the narrative
        sc.run("journalctl", "-b", "--no-pager", "-n", "30", "-o", "cat", "-u", WATCHER)
    return p.returncode == 0


def client_conf(priv: str, addr: str, srv_pub: str) -> str:
    conf = sc.client_conf(priv, "", srv_pub).replace("10.66.0.2/32", f"{addr}/32")
    return "\n".join(ln for ln in conf.splitlines() if not ln.startswith("PresharedKey")) + "\n"


def setup(rec: sc.Recorder, flavour: str) -> tuple[prov.Provider, dict, dict]:
    sc.install_wgns(flavour, rec)
    provider = prov.Provider()
    keys = {t: prov.genkey() for t in CLIENTS}
    for t, addr in CLIENTS.items():
        provider.add_client(keys[t][1], [f"{addr}/32"])
        Path(f"/root/{t}.conf").write_text(client_conf(keys[t][0], addr, provider.pub))
    provider.setup_network()
    provider.start_server()
    provider.start_natpmp(lifetime_cap=10)
    units = Path("/etc/systemd/system")
    (units / "sleeper.service").write_text(sc.SLEEPER_UNIT)
    (units / "idle.service").write_text(IDLE_UNIT)
    sc.systemctl("unmask", NODE)
    sc.systemctl("daemon-reload")
    sc.systemctl("start", NODE)
    sc.wait_for("node-exporter answers", lambda: bool(scrape("node_")), 30)
    return provider, keys, sc.snapshot()


def bad_dirs(rec: sc.Recorder) -> None:
    """--metrics-dir values wgns must refuse on the live system, in one
    line, before writing anything."""
    os.makedirs("/srv/real", exist_ok=True)
    os.makedirs("/srv/nobody", exist_ok=True)
    os.chown("/srv/nobody", 65534, 65534)
    if not os.path.lexists("/srv/link"):
        os.symlink("/srv/real", "/srv/link")
    before = sc.snapshot()
    results = {}
    for bad in ("srv/real", "/srv/missing", "/srv/link", "/srv/re\nal", "/srv/nobody",
                "/etc", "/tmp", '/srv/"real"', "/etc/systemd/system/multi-user.target.wants",
                "/etc/wireguard", "/srv/r\udce9al"):
        p = sc.wgns("install", "--conf", "/root/wg.conf", "--metrics-dir", bad)
        lines = p.stderr.strip().splitlines()
        results[bad] = (p.returncode == 1 and len(lines) == 1
                        and lines[0].startswith("wgns: error: --metrics-dir")
                        and "Traceback" not in p.stderr, p.stderr.strip()[:200])
    changed = sc.diff(before, sc.snapshot())
    rec.check("metrics_bad_dir_refused_leaves_nothing",
              all(ok for ok, _ in results.values()) and not changed
              and sc.active("wg.service") == "inactive",
              ({k: v for k, v in results.items() if not v[0]}, changed[:8]))


def metrics(rec: sc.Recorder, flavour: str) -> None:
    provider, keys, before = setup(rec, flavour)
    bad_dirs(rec)
    ok = all(sc.wgns("install", "--conf", f"/root/{t}.conf", "--name", t).returncode == 0
             for t in CLIENTS)
    ok = ok and sc.wgns("confine", "sleeper.service", "idle.service").returncode == 0
    ok = ok and sc.wgns("expose", "sleeper.service", "8000").returncode == 0
    ok = ok and sc.wgns("port-forward").returncode == 0
    sc.systemctl("start", "sleeper.service")
    forwarded = Path("/run/wgns/wg/forwarded-port")
    sc.wait_for("a forwarded port", forwarded.exists, 30)
    rec.check("metrics_setup", ok and sc.active(NODE) == "active" and forwarded.exists()
              and sc.active("sleeper.service") == "active", (ok, sc.active(NODE)))
    scraped(rec, keys)
    rec.info("metrics_update_cpu_ms", update_cost())
    # What a script installing seven tunnels does to the watcher (each
    # install restarts it): seven starts in a few seconds, past systemd's
    # default start limit of 5 in 10 s.
    t0 = time.monotonic()
    codes = [sc.systemctl("restart", WATCHER).returncode for _ in range(7)]
    rec.check("metrics_watcher_has_no_start_limit",
              codes == [0] * 7 and sc.active(WATCHER) == "active",
              (codes, f"{time.monotonic() - t0:.1f} s"))
    lifecycle(rec)
    moved(rec)
    p1 = sc.wgns("uninstall")
    p2 = sc.wgns("uninstall", "--name", "tr")
    sc.systemctl("stop", "sleeper.service")
    leftovers = [p for d in (TEXTFILES, ODD_DIR, NEXT_DIR) for p in os.listdir(d)
                 if "wgns" in p]
    changed = sc.diff(before, sc.snapshot())
    rec.check("metrics_uninstall_removes_files",
              p1.returncode == 0 and p2.returncode == 0 and not leftovers and not changed
              and not any(k[0].startswith("wgns_") for k in scrape()),
              (leftovers, changed[:8], p1.stderr, p2.stderr))
    provider.stop()


COST = """
import time
from wgns.admin import metrics
from wgns.core.systemd import Systemd
with Systemd() as sd:
    metrics.update("wg", sd, "/run/wgns-cost")  # imports and first connections
    t, w = time.process_time(), time.monotonic()
    for _ in range(20):
        metrics.update("wg", sd, "/run/wgns-cost")
    cpu, wall = (time.process_time() - t) / 20, (time.monotonic() - w) / 20
print(round(cpu * 1000, 1), round(wall * 1000, 1))
"""


def update_cost() -> dict:
    """CPU and wall time of one metrics.update (gather, render, write) in a
    process that has done one already, as a long-running watcher would pay
    per look; the scrape itself costs wgns nothing."""
    os.makedirs("/run/wgns-cost", exist_ok=True)
    p = sc.run(sc.PYTHON, "-c", COST, quiet=True)
    for f in os.listdir("/run/wgns-cost"):
        os.unlink(f"/run/wgns-cost/{f}")
    os.rmdir("/run/wgns-cost")
    try:
        cpu, wall = (float(x) for x in p.stdout.split())
    except ValueError:
        return {"error": (p.stdout + p.stderr)[-300:]}
    return {"cpu_ms": cpu, "wall_ms": wall}


def scraped(rec: sc.Recorder, keys: dict) -> None:
    """The scrape against status --json and status --prometheus."""
    before = status_json()
    ran = watch()
    got = scrape()
    after = status_json()
    path = Path(TEXTFILES) / "wgns-wg.prom"
    st = path.stat() if path.exists() else None
    first = path.read_text().split("\n", 1)[0] if st else ""
    rec.check("metrics_watcher_writes_file", ran and st is not None
              and oct(st.st_mode & 0o777) == "0o644" and st.st_uid == 0
              and first.startswith("# Generated by wgns")
              and (Path(TEXTFILES) / "wgns-tr.prom").exists(), (ran, st, first))
    rec.check("metrics_scrape_tunnel_up", value(got, "wgns_tunnel_up", tunnel="wg") == 1
              and value(got, "wgns_tunnel_up", tunnel="tr") == 1, got)
    peers_ok, detail = [], []
    for p_after in after.get("wg", {}).get("peers", []):
        p_before = next((p for p in before.get("wg", {}).get("peers", [])
                         if p["public_key"] == p_after["public_key"]), p_after)
        lab = {"tunnel": "wg", "peer": p_after["public_key"]}
        for series, key in (("wgns_peer_latest_handshake_seconds", "latest_handshake"),
                            ("wgns_peer_receive_bytes_total", "rx_bytes"),
                            ("wgns_peer_transmit_bytes_total", "tx_bytes")):
            v = value(got, series, **lab)
            peers_ok.append(v is not None and v > 0 and p_before[key] <= v <= p_after[key])
            detail.append((series, p_before[key], v, p_after[key]))
        age = value(got, "wgns_peer_handshake_age_seconds", **lab)
        peers_ok.append(age is not None and 0 <= age <= 180)
    impl = str(after.get("wg", {}).get("implementation"))
    rec.check("metrics_scrape_peer_values", len(peers_ok) == 4 and all(peers_ok)
              and value(got, "wgns_tunnel_info", tunnel="wg", implementation=impl) == 1,
              (detail, impl))
    port = after.get("wg", {}).get("port_forward", {}).get("port")
    units = {s: value(got, "wgns_confined_units", tunnel="wg", state=s)
             for s in ("active", "inactive", "failed")}
    rec.check("metrics_scrape_units_and_ports",
              units == {"active": 1, "inactive": 1, "failed": 0}
              and value(got, "wgns_exposed_ports", tunnel="wg") == 1
              and port and value(got, "wgns_forwarded_port", tunnel="wg") == port
              and value(got, "wgns_port_forward_renewed_age_seconds", tunnel="wg") is not None,
              (units, port, value(got, "wgns_forwarded_port", tunnel="wg")))
    node = scrape("node_textfile")
    # (the file label is a base name on some node-exporter versions, a path on others)
    files = {os.path.basename(dict(k[1]).get("file", "")) for k in node
             if k[0] == "node_textfile_mtime_seconds"}
    rec.check("metrics_scrape_two_tunnels",
              value(got, "wgns_exposed_ports", tunnel="tr") == 0
              and value(got, "wgns_confined_units", tunnel="tr", state="active") == 0
              and value(got, "wgns_forwarded_port", tunnel="tr") is None
              and value(node, "node_textfile_scrape_error") == 0
              and {"wgns-wg.prom", "wgns-tr.prom"} <= files, (node, files))
    restarts(rec)
    status_matches(rec, keys)


def restarts(rec: sc.Recorder) -> None:
    """The watcher's restart counts, from /run/wgns/NAME.restarts; garbage
    there reads as zeros and never fails the watcher."""
    Path("/run/wgns").mkdir(exist_ok=True)
    counts = {"link_gone": 3, "netns_gone": 1, "endpoint_moved": 0, "backoff": 7}
    Path("/run/wgns/wg.restarts").write_text(json.dumps(counts))
    Path("/run/wgns/tr.restarts").write_text("{not json")
    ran = watch()
    got = scrape()
    wg = {r: value(got, "wgns_watcher_restarts_total", tunnel="wg", reason=r) for r in counts}
    tr = {r: value(got, "wgns_watcher_restarts_total", tunnel="tr", reason=r) for r in counts}
    rec.check("metrics_restarts_from_file", ran and wg == counts
              and tr == dict.fromkeys(counts, 0), (ran, wg, tr))
    for t in CLIENTS:
        os.unlink(f"/run/wgns/{t}.restarts")
    watch()


VOLATILE = ("wgns_peer_handshake_age_seconds", "wgns_port_forward_renewed_age_seconds")
GROWING = ("wgns_peer_latest_handshake_seconds", "wgns_peer_receive_bytes_total",
           "wgns_peer_transmit_bytes_total")


def status_matches(rec: sc.Recorder, keys: dict) -> None:
    got = scrape()
    p = sc.wgns("status", "--prometheus")
    mine = parse(p.stdout)
    diffs = []
    for k in set(got) | set(mine):
        a, b = got.get(k), mine.get(k)
        if a is None or b is None:
            diffs.append((k, a, b))
        elif k[0] in GROWING and not a <= b:
            diffs.append((k, a, b))
        elif k[0] not in VOLATILE + GROWING and a != b:
            diffs.append((k, a, b))
    rec.check("metrics_status_prometheus_matches", p.returncode == 0 and len(mine) > 20
              and not diffs, diffs[:6])
    p = sc.wgns("status", "--json", "--prometheus")
    rec.check("metrics_status_flags_exclusive", p.returncode == 2
              and len(p.stderr.strip().splitlines()) == 1 and not p.stdout, p.stderr)
    secrets = [k[0] for k in keys.values()]
    texts = [Path(TEXTFILES, f).read_text() for f in os.listdir(TEXTFILES) if "wgns" in f]
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    texts += [p.stdout, sc.run(sc.WGNS, "status", "--prometheus", quiet=True).stdout,
              opener.open(SCRAPE, timeout=10).read().decode()]
    rec.check("metrics_keys_hidden", len(texts) == 5
              and not any(s in t for s in secrets for t in texts), len(texts))


def lifecycle(rec: sc.Recorder) -> None:
    """The tunnel goes down (the confined units with it), then comes back."""
    sc.systemctl("stop", "wg.service")
    sc.settle("wg.service", "sleeper.service")
    # Nothing asks the watcher: the link and namespace going away wake it.
    # A look while the tunnel is still stopping may already show it down
    # with its device not yet gone; the watcher looks again until it settles.

    def down(got: Series) -> bool:
        return (value(got, "wgns_tunnel_up", tunnel="wg") == 0
                and value(got, "wgns_tunnel_info", tunnel="wg", implementation="none") == 1
                and value(got, "wgns_confined_units", tunnel="wg", state="active") == 0
                and value(got, "wgns_forwarded_port", tunnel="wg") == 0
                and value(got, "wgns_tunnel_up", tunnel="tr") == 1)

    ran = sc.wait_for("the scrape shows wg down", lambda: down(scrape()), 20) is not None
    got = scrape()
    rec.check("metrics_down_after_stop", ran and down(got),
              {k: v for k, v in got.items() if dict(k[1]).get("tunnel") == "wg"})
    sc.systemctl("start", "wg.service", "sleeper.service")
    forwarded = Path("/run/wgns/wg/forwarded-port")
    sc.wait_for("the port back", forwarded.exists, 30)
    ran = sc.wait_for("the scrape shows wg up", lambda: value(
        scrape(), "wgns_tunnel_up", tunnel="wg") == 1, 20) is not None
    ran = ran and watch()   # and a fresh file for the port's value
    got = scrape()
    rec.check("metrics_up_after_start", ran and value(got, "wgns_tunnel_up", tunnel="wg") == 1
              and value(got, "wgns_confined_units", tunnel="wg", state="active") == 1
              and bool(value(got, "wgns_forwarded_port", tunnel="wg")),
              {k: v for k, v in got.items() if dict(k[1]).get("tunnel") == "wg"})


def moved(rec: sc.Recorder) -> None:
    """`tr` re-installed with --metrics-dir: what systemd reads back, where
    the watcher writes, and the file in the old directory gone."""
    os.makedirs(ODD_DIR, exist_ok=True)
    os.chmod(ODD_DIR, 0o755)
    p = sc.wgns("install", "--conf", "/root/tr.conf", "--name", "tr", "--metrics-dir", ODD_DIR)
    show = sc.run("systemctl", "show", "-p", "ReadWritePaths", "--value", WATCHER,
                  quiet=True).stdout.strip()
    # systemctl show quotes a value with a space and escapes its '$', as a shell would
    words = [w.replace("\\$", "$") for w in shlex.split(show)]
    rec.check("metrics_dir_option_read_back", p.returncode == 0
              and f"-{ODD_DIR}" in words and f"-{TEXTFILES}" in words, (p.stderr, show))
    time.sleep(0.2)
    ran = watch()
    written = Path(ODD_DIR, "wgns-tr.prom")
    text = written.read_text() if written.exists() else ""
    rec.check("metrics_dir_option_writes_there", ran and 'wgns_tunnel_up{tunnel="tr"} 1' in text
              and not Path(TEXTFILES, "wgns-tr.prom").exists()
              and value(scrape(), "wgns_tunnel_up", tunnel="tr") is None
              and oct(written.stat().st_mode & 0o777) == "0o644",
              (ran, text[:200], os.listdir(TEXTFILES)))
    # Once more with --no-start on the running tunnel: the install leaves the
    # tunnel alone, but the watcher that still had the old directory (it
    # wrote the old file again within 2 minutes) is gone and its successor
    # writes into the new one.
    os.makedirs(NEXT_DIR, exist_ok=True)
    old_pid = sc.main_pid(WATCHER)
    p = sc.wgns("install", "--conf", "/root/tr.conf", "--name", "tr", "--no-start",
                "--metrics-dir", NEXT_DIR)
    fresh = Path(NEXT_DIR, "wgns-tr.prom")
    took = sc.wait_for("the watcher writes into the new directory", fresh.exists, 30)
    rec.check("metrics_dir_moved_without_start_old_file_stays_gone",
              p.returncode == 0 and took is not None and not written.exists()
              and not os.path.exists(f"/proc/{old_pid}")
              and sc.main_pid(WATCHER) not in ("0", old_pid)
              and sc.active("tr.service") == "active",
              (p.stderr, took, written.exists(), old_pid, sc.main_pid(WATCHER)))


sc.SCENARIOS["metrics"] = metrics

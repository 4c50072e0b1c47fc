"""Guest side of benchmarks/run.py: the `bench` scenario.

Measures, inside a booted guest against the fake provider, and reports every
raw sample as {"kind": "info"} records (the host computes medians, spreads
and ratios):
- bring-up and stop of wgns's tunnel against a baseline of plain shell units
  doing the same steps with ip and wg (the NixOS write-up's approach, with
  the wireguard-go fallback wg-quick uses), alternating, to a handshake;
- CLI wall time and peak memory of `wgns --help`, `status`, `confine`, and
  the import time of the heaviest modules;
- confining and starting 10, 50 and 200 units, and 10 then 20 tunnels;
- throughput of a confined unit against `ip netns exec` in that namespace.
"""

from __future__ import annotations

import json
import os
import resource
import socket
import subprocess
import time
from pathlib import Path

import provider as prov
import scenario as sc

RUNS = int(os.environ.get("WGNS_BENCH_RUNS", "10"))
SCALE = (10, 50, 200)
TUNNELS = 20
MIB = 64

BASELINE_NETNS = """[Unit]
Description=baseline namespace %I (shell, as in the write-up)
StopWhenUnneeded=yes

[Service]
Type=oneshot
RemainAfterExit=yes
PrivateNetwork=yes
PrivateMounts=no
ExecStart=/bin/sh -c 'ip netns add %I && umount /var/run/netns/%I && \
mount --bind /proc/self/ns/net /var/run/netns/%I'
ExecStop=/usr/sbin/ip netns del %I
"""

BASELINE_WG = """[Unit]
Description=baseline tunnel (shell, as in the write-up)
BindsTo=bnetns@bwg.service
After=bnetns@bwg.service network-online.target nss-lookup.target
Wants=network-online.target nss-lookup.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'ip link add bwg type wireguard 2>/dev/null || wireguard-go bwg; \
wg set bwg private-key /root/bwg.key peer {pub} allowed-ips 0.0.0.0/0,::/0 \
endpoint {endpoint} persistent-keepalive 25 && ip link set bwg netns bwg up && \
ip -n bwg address add 10.66.0.4/32 dev bwg && ip -n bwg -6 address add fd66::4/128 dev bwg && \
ip -n bwg route add default dev bwg && ip -n bwg -6 route add default dev bwg'
ExecStop=/usr/sbin/ip -n bwg link del bwg
"""

SOURCE = """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.66.0.1", 5001))
s.listen(4)
chunk = b"x" * 65536
while True:
    c, _ = s.accept()
    with c:
        try:
            for _ in range({mib} * 16):
                c.sendall(chunk)
        except OSError:
            pass  # the readiness check hangs up at once
"""

SINK = """
import socket, time, json
t = time.perf_counter()
s = socket.create_connection(("10.66.0.1", 5001), 10)
buf = bytearray(1 << 20)
n = 0
while True:
    k = s.recv_into(buf)
    if not k:
        break
    n += k
print(json.dumps({"bytes": n, "seconds": time.perf_counter() - t}))
"""


def handshake_done(name: str) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(1)
            s.connect(f"/var/run/wireguard/{name}.sock")
            s.sendall(b"get=1\n\n")
            buf = b""
            while not buf.endswith(b"\n\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
    except OSError:
        return False
    for line in buf.decode().splitlines():
        if line.startswith("last_handshake_time_sec=") and line != "last_handshake_time_sec=0":
            return True
    return False


# What an ExecStart= of wgns costs before it does anything
INTERPRETER = {
    "python -I -c pass": [sc.PYTHON, "-I", "-c", "pass"],
    "python -I -c 'import pyroute2'": [sc.PYTHON, "-I", "-c", "import pyroute2"],
    "python -I -c 'import wgns.runtime.link'": [sc.PYTHON, "-I", "-c",
                                                "import wgns.runtime.link"],
}


def timed_start(unit: str, link: str) -> float:
    t = time.perf_counter()
    if subprocess.run(["systemctl", "start", unit]).returncode != 0:
        sc.run("journalctl", "-n", "25", "--no-pager", "-o", "short-monotonic")
        raise RuntimeError(f"systemctl start {unit} failed")
    while not handshake_done(link):
        if time.perf_counter() - t > 20:
            raise RuntimeError(f"{unit}: no handshake in 20 s")
        time.sleep(0.002)
    return time.perf_counter() - t


def _monotonic(unit: str, prop: str) -> float:
    out = subprocess.run(["systemctl", "show", "-P", prop, unit], capture_output=True,
                         text=True).stdout.strip()
    return int(out or 0) / 1e6


def phases(started: float, took: float) -> dict[str, float]:
    """Where a wgns bring-up's time went (systemd's monotonic timestamps, the
    clock of time.monotonic): the namespace unit's start, the tunnel unit's
    (its helper: interpreter, imports, link, wireguard-go), the wait for
    the first handshake after it, and systemctl's own share before."""
    ns_in = _monotonic("netns@wg.service", "InactiveExitTimestampMonotonic")
    ns_up = _monotonic("netns@wg.service", "ActiveEnterTimestampMonotonic")
    wg_in = _monotonic("wg.service", "InactiveExitTimestampMonotonic")
    wg_up = _monotonic("wg.service", "ActiveEnterTimestampMonotonic")
    return {"before_namespace": ns_in - started, "namespace_unit": ns_up - ns_in,
            "between": wg_in - ns_up, "tunnel_unit": wg_up - wg_in,
            "handshake_after": started + took - wg_up}


def timed_stop(unit: str, netns: str) -> float:
    t = time.perf_counter()
    subprocess.run(["systemctl", "stop", unit], check=True)
    while os.path.exists(f"/run/netns/{netns}"):
        time.sleep(0.002)
    return time.perf_counter() - t


def measure(cmd: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one command."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed")
    return wall, usage.ru_maxrss


def reloads_since(cursor: str) -> int:
    out = subprocess.run(["journalctl", "--after-cursor", cursor, "-o", "cat", "_PID=1"],
                         stdout=subprocess.PIPE, text=True).stdout
    return sum(1 for ln in out.splitlines() if ln.startswith("Reloading"))


def cursor() -> str:
    out = subprocess.run(["journalctl", "-n", "1", "--show-cursor", "-o", "cat"],
                         stdout=subprocess.PIPE, text=True).stdout
    return out.strip().splitlines()[-1].replace("-- cursor: ", "")


def wgo_rss_kib() -> int:
    total = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        if "\nName:\twireguard-go\n" in "\n" + text:
            for line in text.splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def watchers(n: int, seconds: float = 60) -> dict:
    """wgns's long-lived processes for tunnels t0..t(n-1) (and wg, stopped)
    over an idle minute: the one watcher's CPU per tunnel-hour, its
    resident and proportional set sizes, and how many processes there are."""
    pid = sc.main_pid("wgns-watch.service")
    time.sleep(5)      # past the first looks and their follow-ups
    before = sc.process_cost(pid)[0]
    time.sleep(seconds)
    after, rss = sc.process_cost(pid)
    per_hour = (after - before) * 3600 / seconds / n if min(before, after) >= 0 else None
    python = [p for p in Path("/proc").glob("[0-9]*/cmdline")
              if b"helper.py" in _read(p)]
    return {"watcher_cpu_s_per_tunnel_hour": per_hour, "watcher_rss_kib_total": rss,
            "watcher_pss_kib_total": sc.pss_kib(pid), "watchers": n,
            "helper_processes": len(python),
            "metrics_dir": os.path.isdir("/var/lib/prometheus/node-exporter")}


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def bench(rec: sc.Recorder, flavour: str) -> None:
    sc.install_wgns(flavour, rec)
    provider = prov.Provider()
    priv, pub = prov.genkey()
    bpriv, bpub = prov.genkey()
    provider.add_client(pub, ["10.66.0.2/32", "fd66::2/128"])
    provider.add_client(bpub, ["10.66.0.4/32", "fd66::4/128"])
    tunnel_keys = [prov.genkey() for _ in range(TUNNELS)]
    for i, (_, tpub) in enumerate(tunnel_keys):
        provider.add_client(tpub, [f"10.66.0.{100 + i}/32"])
    provider.setup_network()
    provider.start_server()
    endpoint = f"{prov.ENDPOINT_NAME}:{prov.PORT}"
    conf = sc.client_conf(priv, "x", provider.pub)
    conf = "\n".join(ln for ln in conf.splitlines() if not ln.startswith("PresharedKey"))
    Path("/root/provider.conf").write_text(conf + "\n")
    Path("/root/bwg.key").write_text(bpriv + "\n")
    os.chmod("/root/bwg.key", 0o600)
    units = Path("/etc/systemd/system")
    (units / "bnetns@.service").write_text(BASELINE_NETNS)
    (units / "bwg.service").write_text(BASELINE_WG.format(pub=provider.pub, endpoint=endpoint))
    for i in range(max(SCALE)):
        (units / f"scale-{i}.service").write_text(sc.SLEEPER_UNIT)
    (units / "tput.service").write_text(
        "[Service]\nType=oneshot\nDynamicUser=yes\n"
        f"ExecStart=/usr/bin/python3 {sc.GUEST}/sink.py\n"
        f"StandardOutput=truncate:{sc.GUEST}/out/tput.json\n")
    Path(f"{sc.GUEST}/sink.py").write_text(SINK)
    subprocess.run(["systemctl", "daemon-reload"], check=True)
    if sc.run(sc.WGNS, "install", "--conf", "/root/provider.conf", "--no-start").returncode:
        raise RuntimeError("wgns install failed")
    subprocess.run(["systemctl", "stop", "wgns-watch.service"], check=True)

    # 1. bring-up and stop, alternating which goes first
    up: dict[str, list[float]] = {"wgns": [], "baseline": []}
    down: dict[str, list[float]] = {"wgns": [], "baseline": []}
    split: dict[str, list[float]] = {}
    variants = {"wgns": ("wg.service", "wg", "wg"), "baseline": ("bwg.service", "bwg", "bwg")}
    for i in range(RUNS + 1):  # run 0 warms caches and is dropped
        order = ["wgns", "baseline"] if i % 2 else ["baseline", "wgns"]
        for v in order:
            unit, link, ns = variants[v]
            started = time.monotonic()
            u = timed_start(unit, link)
            if i and v == "wgns":
                for k, x in phases(started, u).items():
                    split.setdefault(k, []).append(x)
            d = timed_stop(unit, ns)
            if i:
                up[v].append(u)
                down[v].append(d)
    rec.info("bringup", up)
    rec.info("bringup_phases", split)
    rec.info("stop", down)
    rec.info("interpreter_ms", {what: [round(measure(cmd)[0] * 1000, 1) for _ in range(RUNS)]
                                for what, cmd in INTERPRETER.items()})

    # 2. CLI
    subprocess.run(["systemctl", "start", "wg.service"], check=True)
    cli: dict[str, list[list[float]]] = {}
    commands = {"--version": [sc.WGNS, "--version"], "--help": [sc.WGNS, "--help"],
                "status": [sc.WGNS, "status"],
                "confine": [sc.WGNS, "confine", "scale-0"],
                "unconfine": [sc.WGNS, "unconfine", "scale-0"]}
    for _ in range(RUNS + 1):
        for key in commands:
            cli.setdefault(key, []).append(list(measure(commands[key])))
    rec.info("cli", {k: v[1:] for k, v in cli.items()})
    imports = subprocess.run(
        [sc.PYTHON, "-X", "importtime", "-c", "import wgns.cli.main, wgns.admin.status, "
         "wgns.core.systemd, pyroute2, pystemd.systemd1, typer"], stderr=subprocess.PIPE,
        text=True).stderr
    rows = []
    for line in imports.splitlines():
        parts = [p.strip() for p in line.replace("import time:", "").split("|")]
        if len(parts) == 3 and parts[1].isdigit():
            rows.append((int(parts[1]), parts[2]))
    top = sorted((r for r in rows if not r[1].startswith(" ")), reverse=True)[:8]
    rec.info("imports_ms", [[name, round(us / 1000, 1)] for us, name in top])

    # 3. scale: confine N units in one command, start them all
    scale = {}
    for n in SCALE:
        names = [f"scale-{i}" for i in range(n)]
        c = cursor()
        confine_s, confine_kib = measure([sc.WGNS, "confine", *names])
        reloads = reloads_since(c)
        t = time.perf_counter()
        subprocess.run(["systemctl", "start", *(f"{u}.service" for u in names)], check=True)
        start_s = time.perf_counter() - t
        running = sum(1 for u in names if sc.active(f"{u}.service") == "active")
        t = time.perf_counter()
        subprocess.run(["systemctl", "stop", *(f"{u}.service" for u in names)], check=True)
        stop_s = time.perf_counter() - t
        unconfine_s, _ = measure([sc.WGNS, "unconfine", *names])
        scale[n] = {"confine_s": confine_s, "confine_kib": confine_kib, "reloads": reloads,
                    "start_s": start_s, "running": running, "stop_s": stop_s,
                    "unconfine_s": unconfine_s}
    rec.info("scale", scale)

    # 4. data path: a confined unit against ip netns exec, alternating
    src = Path(f"{sc.GUEST}/source.py")
    src.write_text(SOURCE.format(mib=MIB))
    server = subprocess.Popen(["ip", "netns", "exec", prov.NS, "python3", str(src)])
    prov.wait_tcp("10.66.0.1", 5001, netns=prov.NS)
    sc.run(sc.WGNS, "confine", "tput")
    tput: dict[str, list[float]] = {"confined": [], "netns_exec": []}
    for i in range(6):
        for v in (["confined", "netns_exec"] if i % 2 else ["netns_exec", "confined"]):
            if v == "confined":
                subprocess.run(["systemctl", "start", "tput.service"], check=True)
                r = json.loads(Path(f"{sc.GUEST}/out/tput.json").read_text())
            else:
                r = json.loads(subprocess.run(
                    ["ip", "netns", "exec", "wg", "python3", f"{sc.GUEST}/sink.py"],
                    stdout=subprocess.PIPE, text=True, check=True).stdout)
            if r["bytes"] != MIB << 20:
                raise RuntimeError(f"{v}: got {r['bytes']} bytes")
            if i:
                tput[v].append(r["bytes"] / r["seconds"] / 1e6)
    server.terminate()
    rec.info("throughput_mb_s", tput)

    # 5. tunnels side by side
    tunnels: dict[int, dict] = {}
    t0 = time.perf_counter()
    for i, (tpriv, _) in enumerate(tunnel_keys):
        keyfile = Path(f"/root/t{i}.key")
        keyfile.write_text(tpriv + "\n")
        os.chmod(keyfile, 0o600)
        wall, kib = measure([sc.WGNS, "install", "--name", f"t{i}", "--address",
                             f"10.66.0.{100 + i}/32", "--private-key-file", str(keyfile),
                             "--peer", provider.pub, "--endpoint", f"{prov.PROV_LAN4}:{prov.PORT}",
                             "--allowed-ips", "10.66.0.0/24", "--dns", prov.SERVER4,
                             "--keepalive", "25"])
        if i + 1 in (1, 20):
            tunnels.setdefault(i + 1, {}).update(watchers(i + 1))
        if i + 1 in (10, 20):
            status_s, status_kib = measure([sc.WGNS, "status"])
            tunnels.setdefault(i + 1, {}).update({"install_last_s": wall, "install_kib": kib,
                              "total_s": time.perf_counter() - t0,
                              "wireguard_go_rss_kib": wgo_rss_kib(),
                              "status_s": status_s, "status_kib": status_kib})
    rec.info("tunnels", tunnels)
    rec.info("machine", {"cpus": os.cpu_count(),
                         "cpu": next((ln.split(":", 1)[1].strip() for ln in
                                      Path("/proc/cpuinfo").read_text().splitlines()
                                      if ln.startswith("model name")), "?"),
                         "kernel": os.uname().release,
                         "maxrss_self_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss})
    provider.stop()


sc.SCENARIOS["bench"] = bench

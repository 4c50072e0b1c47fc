"""Guest side: the end-to-end scenarios, run as root inside a booted guest.

`python3 scenario.py SCENARIO REPORT` writes one JSON line per check
({"kind": "check", "name", "ok", "detail"}), a few {"kind": "info"} lines
and a final {"kind": "done"}. In between, in the order they happen, the
story `./demo` tells (story.py, on the host): each step
({"kind": "step", "title"}), each command run with its exit code and what
it printed ({"kind": "run"}), what each probe found ({"kind": "probe"}) and
what a wait took ({"kind": "note"}). Stdout is the same as a plain log, for
debugging. Stdlib only.
"""

from __future__ import annotations

import glob
import hashlib
import importlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import provider as prov  # noqa: E402

if __name__ == "__main__":  # `import scenario` (ops.py, hardening.py, ...) gets this module
    sys.modules["scenario"] = sys.modules[__name__]

GUEST = os.path.dirname(os.path.abspath(__file__))
VENV = "/opt/wgns"
WGNS = f"{VENV}/bin/wgns"       # where the flavour installed the CLI
PYTHON = f"{VENV}/bin/python3"  # and the interpreter it runs on
PROBE_OUT = Path("/var/lib/wgns-probe")
# The WireGuard implementation wgns must pick here: the VM tier has the module.
EXPECT_IMPL = os.environ.get("WGNS_EXPECT_IMPL", "userspace")
T0 = time.monotonic()

# Every check the core scenario reports; the host-side tests expect each.
CORE_CHECKS = (
    "bad_input_bad_base64", "bad_input_wrong_key_length", "bad_input_bad_cidr",
    "bad_input_endpoint_without_port", "bad_input_unbracketed_ipv6_endpoint",
    "bad_input_duplicate_key", "bad_input_unknown_section", "bad_input_missing_file",
    "bad_input_usage_exit_2", "bad_input_foreign_unit_not_overwritten",
    "bad_input_changes_nothing",
    "install_exit_0", "install_warns_ignored_keys", "tunnel_active",
    "key_file_root_only", "units_call_installed_python",
    "confine_unknown_unit_refused", "confine_exit_0",
    "probe_runs_as_dynamic_user", "probe_sees_only_lo_and_tunnel",
    "probe_ipv4_through_tunnel", "probe_ipv6_through_tunnel",
    "probe_dns_through_tunnel", "probe_name_through_tunnel",
    "probe_host_loopback_unreachable", "probe_host_lan_unreachable",
    "probe_host_resolver_sockets_blocked",
    "status_json_handshake", "status_text", "peer_update_keeps_allowed_ips",
    "second_tunnel_from_options", "second_tunnel_side_by_side",
    "second_tunnel_uninstall_keeps_first",
    "outage_nothing_leaks", "outage_recovers",
    "lifecycle_stop_tunnel_stops_confined", "lifecycle_start_confined_starts_tunnel",
    "lifecycle_traffic_after_restart",
    "keys_never_exposed",
    "unconfine_releases_unit", "uninstall_exit_0", "uninstall_stops_confined",
    "uninstall_leaves_no_trace", "regression_netns_unit_binds_namespace",
)
# What the Debian package adds to the core checks (flavour "deb").
DEB_CHECKS = (
    "deb_ships_man_page_and_completion", "deb_remove_leaves_tunnels_alone",
    "deb_purge_keeps_user_config_and_explains",
)


class Recorder:
    def __init__(self, path: str) -> None:
        self.f = open(path, "a", buffering=1)

    def _write(self, rec: dict) -> None:
        self.f.write(json.dumps(rec) + "\n")

    def check(self, name: str, ok: bool, detail: object = "") -> bool:
        print(f"[{'PASS' if ok else 'FAIL'}] {name} {detail if not ok else ''}", flush=True)
        self._write({"kind": "check", "name": name, "ok": bool(ok), "detail": str(detail)})
        return bool(ok)

    def info(self, name: str, value: object) -> None:
        self._write({"kind": "info", "name": name, "value": value})

    def step(self, title: str) -> None:
        """A step of the story: what follows, up to the next step, belongs to it."""
        print(f"{time.monotonic() - T0:7.2f} == {title}", flush=True)
        self._write({"kind": "step", "title": title, "t": round(time.monotonic() - T0, 1)})

    def event(self, kind: str, **fields: object) -> None:
        self._write({"kind": kind, **fields})

    def done(self, scenario: str | None = None) -> None:
        """One scenario of the boot ran to its end (SCENARIO), or all did."""
        self._write({"kind": "done", "t": round(time.monotonic() - T0, 1),
                     **({"scenario": scenario} if scenario else {})})


# The running scenario's recorder: commands, probes and waits go into its story.
NARRATOR: Recorder | None = None


def narrate(kind: str, **fields: object) -> None:
    if NARRATOR is not None:
        NARRATOR.event(kind, **fields)


def run(*cmd: str, quiet: bool = False, story: bool = True) -> subprocess.CompletedProcess:
    """Run a command; unless quiet, show it with what it printed (and, unless
    story is False, tell it in the story too)."""
    p = subprocess.run(cmd, text=True, capture_output=True, errors="replace")
    if not quiet:
        # An argument may hold a byte that is not UTF-8 on purpose (a lone
        # surrogate here): shown escaped, the log and the story stay UTF-8.
        shown = [c.encode("utf-8", "backslashreplace").decode() for c in cmd]
        print(f"{time.monotonic() - T0:7.2f} $ {' '.join(shown)}   -> exit {p.returncode}",
              flush=True)
        for line in (p.stdout + p.stderr).splitlines():
            print(f"    {line}", flush=True)
        if story:
            narrate("run", cmd=shown, exit=p.returncode,
                    output=(p.stdout + p.stderr)[-4000:])
    return p


def must(*cmd: str) -> subprocess.CompletedProcess:
    p = run(*cmd)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {p.returncode})")
    return p


def wgns(*args: str) -> subprocess.CompletedProcess:
    return run(WGNS, *args)


def systemctl(*args: str) -> subprocess.CompletedProcess:
    return run("systemctl", *args)


def settle(*units: str, timeout: float = 15) -> None:
    """Wait until no unit is in a transition (systemd stops some units,
    such as StopWhenUnneeded= ones, after the command returns)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(active(u) in ("activating", "deactivating", "reloading") for u in units):
            return
        time.sleep(0.1)


def own_unit() -> str:
    """The unit running this scenario (its start job lasts as long as it does)."""
    try:
        cgroup = Path("/proc/self/cgroup").read_text()
    except OSError:
        return ""
    names = [p for line in cgroup.splitlines() for p in line.split("/") if p.endswith(".service")]
    return names[-1] if names else ""


def jobs_idle(timeout: float = 30) -> bool:
    """Wait until systemd has no job queued (nothing starting or stopping),
    but the start jobs of this scenario's own unit and of targets, which
    last as long as the scenario: the positive signal before a check that
    nothing happened."""
    deadline, own = time.monotonic() + timeout, own_unit()
    while time.monotonic() < deadline:
        jobs = [ln.split() for ln in run("systemctl", "list-jobs", "--no-legend",
                                         quiet=True).stdout.splitlines() if ln.strip()]
        if not [j for j in jobs if len(j) > 1 and j[1] != own and not j[1].endswith(".target")]:
            return True
        time.sleep(0.1)
    print(f"{time.monotonic() - T0:7.2f}   jobs still queued after {timeout:.0f} s: {jobs}",
          flush=True)
    return False


def journal_cursor() -> str:
    """Where the journal is now: journal_since() reads what came after."""
    out = run("journalctl", "-n", "0", "--show-cursor", quiet=True).stdout
    return out.rsplit("cursor: ", 1)[-1].strip()


def journal_since(cursor: str, *units: str) -> str:
    args = [a for u in units for a in ("-u", u)]
    return run("journalctl", f"--after-cursor={cursor}", "-o", "cat", "--no-pager", *args,
               quiet=True).stdout


def active(unit: str) -> str:
    return run("systemctl", "is-active", unit, quiet=True).stdout.strip()


def install_wgns(flavour: str, rec: Recorder) -> None:
    """Install wgns as a user would: pip into a venv from the wheelhouse, or
    the Debian package with apt."""
    global WGNS, PYTHON
    wheels = f"{GUEST}/wheels"
    if flavour == "deb":
        must("apt-get", "install", "-y", *glob.glob(f"{wheels}/wgns_*_all.deb"))
        WGNS, PYTHON = "/usr/bin/wgns", "/usr/bin/python3"
        rec.info("deb_build_seconds", Path(f"{wheels}/build-seconds").read_text().strip())
    elif flavour == "pypi":
        must("/usr/bin/python3", "-m", "venv", VENV)
        must(f"{VENV}/bin/pip", "install", "-q", "--no-index", "--find-links", wheels, "wgns")
    else:  # the distribution's python3-pyroute2, python3-typer, python3-pystemd
        must("/usr/bin/python3", "-m", "venv", "--system-site-packages", VENV)
        must(f"{VENV}/bin/pip", "install", "-q", "--no-index", "--no-deps",
             *glob.glob(f"{wheels}/wgns-*.whl"))
    code = ("import importlib.metadata as m, platform; print(platform.python_version(), "
            "*(m.version(p) for p in ('pyroute2', 'typer', 'pystemd')))")
    out = subprocess.run([PYTHON, "-c", code], text=True,
                         stdout=subprocess.PIPE, check=True).stdout.split()
    rec.info("versions", dict(zip(["python", "pyroute2", "typer", "pystemd"], out)))
    rec.info("systemd", run("systemctl", "--version", quiet=True).stdout.split("\n")[0])
    rec.info("packages", packages())


# The guest's own packages a report names (sid moves: each run says what it saw).
PACKAGES = ("systemd", "python3", "wireguard-go", "qbittorrent-nox", "transmission-daemon",
            "prometheus-node-exporter", "python3-pyroute2", "python3-typer", "python3-pystemd",
            "deluged", "deluge-web", "rtorrent")


def packages() -> dict[str, str]:
    """{package: version} of PACKAGES installed in this guest."""
    p = run("dpkg-query", "-W", "-f", "${Package} ${db:Status-Abbrev} ${Version}\n",
            *PACKAGES, quiet=True)
    return {w[0]: w[2] for w in (ln.split() for ln in p.stdout.splitlines())
            if len(w) == 3 and w[1] == "ii"}


def exposure_places(outputs: str) -> dict[str, str]:
    """Everywhere a secret must never show: the journal, the CLI's output,
    every unit file, every process's argv and environment."""
    places = {"journal": run("journalctl", "-b", "-o", "cat", quiet=True).stdout,
              "cli output": outputs}
    for path in glob.glob("/etc/systemd/system/**", recursive=True):
        if os.path.isfile(path):
            places[path] = Path(path).read_text(errors="replace")
    for proc in glob.glob("/proc/[0-9]*"):
        for what in ("cmdline", "environ"):
            try:
                places[f"{proc}/{what}"] = Path(f"{proc}/{what}").read_bytes().decode(
                    errors="replace")
            except OSError:
                pass
    return places


def process_cost(pid: str) -> tuple[float, int]:
    """A process's CPU seconds so far (the container's systemd keeps no CPU
    accounting) and its resident KiB; (-1, 0) when gone. The scheduler's
    own count, in nanoseconds, summed over the threads: utime + stime of
    /proc/PID/stat come in clock ticks (10 ms), too coarse for the few
    hundredths of a second an idle minute costs."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return -1.0, 0
    ns = 0
    for t in tasks:
        try:
            ns += int(Path(f"/proc/{pid}/task/{t}/schedstat").read_text().split()[0])
        except OSError:   # a thread that ended meanwhile
            pass
    rss = next((int(ln.split()[1]) for ln in status.splitlines() if ln.startswith("VmRSS:")), 0)
    return ns / 1e9, rss


def pss_kib(pid: str) -> int:
    """A process's proportional set size (its share of pages it shares
    with others, the interpreter's among them), 0 when gone."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    return next((int(ln.split()[1]) for ln in text.splitlines() if ln.startswith("Pss:")), 0)


def snapshot() -> dict[str, str]:
    """What wgns could leave behind: files under /etc, namespaces, links,
    wireguard-go sockets, loaded units."""
    snap: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk("/etc"):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            if os.path.islink(p):
                snap[p] = "->" + os.readlink(p)
            elif os.path.isfile(p):
                snap[p] = f"{oct(st.st_mode)} {hashlib.sha256(open(p, 'rb').read()).hexdigest()}"
            else:
                snap[p] = oct(st.st_mode)
    for d in ("/run/netns", "/var/run/wireguard"):
        for n in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            snap[f"{d}/{n}"] = "present"
    for line in run("ip", "-o", "link", quiet=True).stdout.splitlines():
        snap["link " + line.split(":")[1].strip().split("@")[0]] = "present"
    return snap


def diff(a: dict[str, str], b: dict[str, str]) -> list[str]:
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


PROBE_UNIT = """[Unit]
Description=wgns test probe %i

[Service]
Type=oneshot
DynamicUser=yes
ExecStart=/usr/bin/python3 {guest}/probe.py
# file: (truncate: needs systemd 248; Debian 11 has 247): probe() removes
# the last output first.
StandardOutput=file:{out}/%i.json
"""

SLEEPER_UNIT = """[Unit]
Description=a long-running confined service

[Service]
DynamicUser=yes
ExecStart=/bin/sleep infinity
"""


def web_and_probe_units() -> None:
    """What several scenarios confine: web.service serving a page that
    says "confined-web", and the probe@ template."""
    www = Path(GUEST) / "www"
    www.mkdir(exist_ok=True)
    (www / "index.html").write_text("confined-web")
    PROBE_OUT.mkdir(exist_ok=True)
    units = Path("/etc/systemd/system")
    (units / "probe@.service").write_text(PROBE_UNIT.format(guest=GUEST, out=PROBE_OUT))
    (units / "web.service").write_text(WEB_UNIT.format(www=www))


def probe(instance: str) -> dict:
    unit = f"probe@{instance}.service"
    path = PROBE_OUT / f"{instance}.json"
    path.unlink(missing_ok=True)
    p = run("systemctl", "start", unit)
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        result = {"error": f"no probe output: {e} {p.stderr.strip()}"}
    print(f"    probe: {json.dumps(result)}", flush=True)
    narrate("probe", unit=unit, result=result)
    return result


def reached(result: dict, key: str) -> bool:
    return bool(result.get(key, {}).get("reached"))


def body(result: dict, key: str) -> str:
    return str(result.get(key, {}).get("body", ""))


def client_conf(priv: str, psk: str, srv_pub: str) -> str:
    return f"""# A provider's wg-quick file, as users download it
[Interface]
PrivateKey = {priv}
Address = 10.66.0.2/32, fd66::2/128
DNS = {prov.SERVER4}
Table = off

[Peer]
PublicKey = {srv_pub}
PresharedKey = {psk}
AllowedIPs = 0.0.0.0/0, ::/0
Endpoint = {prov.ENDPOINT_NAME}:{prov.PORT}
PersistentKeepalive = 25
"""


BAD_CONFS = {
    "bad_base64": ("PrivateKey = not*base64*at*all", "PrivateKey is not valid base64"),
    "wrong_key_length": ("PrivateKey = AAAA", "wrong length"),
    "bad_cidr": ("Address = 10.66.0.300/32", "Address"),
    "endpoint_without_port": ("Endpoint = vpn.provider.test", "has no port"),
    "unbracketed_ipv6_endpoint": ("Endpoint = fd00::1:51820", "brackets"),
    "duplicate_key": ("ListenPort = 1\nListenPort = 2", "duplicate key"),
    "unknown_section": ("[Interfaces]", "unknown section"),
}


def bad_conf(good: str, case: str) -> str:
    line, _ = BAD_CONFS[case]
    key = line.split("=")[0].strip() if "=" in line else None
    out = []
    for ln in good.splitlines():
        if key and ln.startswith(key + " ="):
            continue
        out.append(ln)
        if ln == "[Interface]" and key in ("PrivateKey", "Address", "ListenPort"):
            out.append(line)
        if ln.startswith("PublicKey") and key == "Endpoint":
            out.append(line)
    if case == "unknown_section":
        out.append(line)
    return "\n".join(out) + "\n"


def one_error_line(p: subprocess.CompletedProcess, fragment: str, code: int = 1) -> tuple:
    lines = p.stderr.strip().splitlines()
    ok = (p.returncode == code and len(lines) == 1 and fragment in lines[0]
          and "Traceback" not in p.stderr)
    return ok, f"exit {p.returncode}: {p.stderr.strip()[:300]}"


def core(rec: Recorder, flavour: str) -> None:
    t0 = time.monotonic()
    rec.step("Install wgns and start a fake VPN provider")
    install_wgns(flavour, rec)
    provider = prov.Provider()
    client_priv, client_pub = prov.genkey()
    psk = run("wg", "genpsk", quiet=True).stdout.strip()
    second_priv, second_pub = prov.genkey()
    provider.add_client(client_pub, ["10.66.0.2/32", "fd66::2/128"], psk)
    provider.add_client(second_pub, ["10.66.0.3/32"])
    provider.setup_network()
    provider.start_server()
    bait = prov.HostBait()
    bait.start()
    good = client_conf(client_priv, psk, provider.pub)
    Path("/root/provider.conf").write_text(good)
    os.chmod("/root/provider.conf", 0o600)
    PROBE_OUT.mkdir(exist_ok=True)
    Path("/etc/systemd/system/probe@.service").write_text(
        PROBE_UNIT.format(guest=GUEST, out=PROBE_OUT))
    Path("/etc/systemd/system/sleeper.service").write_text(SLEEPER_UNIT)
    systemctl("daemon-reload")
    narrate("note", text=(
        f"the provider: a namespace with a WireGuard server at {prov.ENDPOINT_NAME}:{prov.PORT} "
        f"({prov.PROV_LAN4}), and inside its tunnel a web page and DNS at {prov.SERVER4} and "
        f"{prov.SERVER6}; its wg-quick file is /root/provider.conf"))
    narrate("note", text=(
        f"this host: a web page on 127.0.0.1:8080 and {prov.HOST_LAN4}:8080 and stand-ins for "
        "the nscd and systemd-resolved sockets, which a confined service must not reach"))
    narrate("note", text=(
        "services to confine: probe@.service (a DynamicUser that reports what it can reach) "
        "and sleeper.service"))
    rec.info("setup_seconds", round(time.monotonic() - t0, 1))

    rec.step("Bad input is refused in one line and changes nothing")
    before = snapshot()
    for case, (_, fragment) in BAD_CONFS.items():
        path = f"/root/bad-{case}.conf"
        Path(path).write_text(bad_conf(good, case))
        rec.check(f"bad_input_{case}", *one_error_line(wgns("install", "--conf", path), fragment))
    rec.check("bad_input_missing_file",
              *one_error_line(wgns("install", "--conf", "/root/nope.conf"), "cannot read"))
    p = wgns("install", "--bogus-option")
    rec.check("bad_input_usage_exit_2", p.returncode == 2, f"exit {p.returncode}")
    foreign = Path("/etc/systemd/system/wgx.service")
    foreign.write_text("[Service]\nExecStart=/bin/true\n")
    p = wgns("install", "--conf", "/root/provider.conf", "--name", "wgx")
    ok, detail = one_error_line(p, "not written by wgns")
    rec.check("bad_input_foreign_unit_not_overwritten",
              ok and foreign.read_text() == "[Service]\nExecStart=/bin/true\n"
              and not os.path.exists("/etc/wgns/wgx.conf"), detail)
    foreign.unlink()
    changed = diff(before, snapshot())
    rec.check("bad_input_changes_nothing", not changed, changed[:10])

    rec.step("Install the tunnel from the provider's wg-quick file")
    t = time.monotonic()
    p = wgns("install", "--conf", "/root/provider.conf")
    rec.info("install_seconds", round(time.monotonic() - t, 2))
    outputs = p.stdout + p.stderr
    rec.check("install_exit_0", p.returncode == 0, p.stderr.strip())
    rec.check("install_warns_ignored_keys", "ignoring Table" in p.stderr, p.stderr.strip())
    rec.check("tunnel_active", active("wg.service") == "active", active("wg.service"))
    st = os.stat("/etc/wgns/wg.conf")
    rec.check("key_file_root_only", st.st_mode & 0o777 == 0o600 and st.st_uid == 0,
              oct(st.st_mode))
    unit_text = Path("/etc/systemd/system/wg.service").read_text()
    where = run(PYTHON, "-c", "import os, sys, wgns; print(sys.executable, "
                "os.path.dirname(wgns.__file__))", quiet=True).stdout.split()
    rec.check("units_call_installed_python",
              f"\nExecStart={where[0]} -I {where[1]}/helper.py link up wg\n" in unit_text
              and where[0].startswith(os.path.dirname(WGNS)), (where, unit_text))
    import security
    security.record(rec, {"tunnel": "wg.service", "namespace": "netns@wg.service",
                          "watcher": "wgns-watch.service"})

    rec.step("Confine services; look from inside one (a DynamicUser probe)")
    p = wgns("confine", "nosuch.service")
    ok, detail = one_error_line(p, "does not know nosuch.service")
    rec.check("confine_unknown_unit_refused",
              ok and not os.path.exists("/etc/systemd/system/nosuch.service.d"), detail)
    p = wgns("confine", "probe@main.service", "probe@outage.service", "sleeper")
    outputs += p.stdout + p.stderr
    rec.check("confine_exit_0", p.returncode == 0, p.stderr.strip())
    systemctl("start", "sleeper.service")
    r = probe("main")
    rec.check("probe_runs_as_dynamic_user", r.get("uid", 0) not in (0, None), r.get("uid"))
    rec.check("probe_sees_only_lo_and_tunnel", r.get("links") == ["lo", "wg"], r.get("links"))
    rec.check("probe_ipv4_through_tunnel", body(r, "http4") == prov.TOKEN, r.get("http4"))
    rec.check("probe_ipv6_through_tunnel", body(r, "http6") == prov.TOKEN, r.get("http6"))
    rec.check("probe_dns_through_tunnel",
              r.get("dns", {}).get("addresses") == ["10.66.0.1", "fd66::1"]
              and f"nameserver {prov.SERVER4}" in r.get("resolv_conf", ""),
              (r.get("dns"), r.get("resolv_conf")))
    rec.check("probe_name_through_tunnel", body(r, "http_name") == prov.TOKEN,
              r.get("http_name"))
    rec.check("probe_host_loopback_unreachable", not reached(r, "host_loopback"),
              r.get("host_loopback"))
    rec.check("probe_host_lan_unreachable", not reached(r, "host_lan"), r.get("host_lan"))
    rec.check("probe_host_resolver_sockets_blocked",
              "nscd_socket" in r and not reached(r, "nscd_socket")
              and not reached(r, "resolved_socket"),
              (r.get("nscd_socket"), r.get("resolved_socket")))

    rec.step("wgns status: state, handshake, transfer, confined units")
    p = wgns("status", "--json")
    outputs += p.stdout + p.stderr
    try:
        tun = json.loads(p.stdout)["tunnels"][0]
        peer = tun["peers"][0]
        confined = {c["unit"]: c["state"] for c in tun["confined"]}
        ok = (tun["state"] == "active" and tun["implementation"] == EXPECT_IMPL
              and peer["latest_handshake"] and peer["handshake_age"] is not None
              and peer["rx_bytes"] > 0 and peer["tx_bytes"] > 0
              and confined.get("sleeper.service") == "active"
              and tun["interface"]["namespace_links"] == ["lo", "wg"])
        detail = json.dumps(tun)[:600]
    except (ValueError, KeyError, IndexError, TypeError) as e:
        ok, detail = False, f"{e}: {p.stdout[:300]} {p.stderr[:300]}"
    rec.check("status_json_handshake", ok, detail)
    p = wgns("status")
    outputs += p.stdout + p.stderr
    rec.check("status_text", p.returncode == 0 and "latest handshake:" in p.stdout
              and f"{EXPECT_IMPL} WireGuard" in p.stdout and "sleeper.service (active)" in p.stdout,
              p.stdout[-400:])
    modules = [ln.split()[0] for ln in Path("/proc/modules").read_text().splitlines()
               if ln.startswith(("wireguard ", "tun "))] if os.path.exists("/proc/modules") else []
    rec.info("wireguard_module", " ".join(modules) or "none")
    rec.step("The watcher follows the endpoint's host name when it moves")
    peer_update(rec, provider)

    rec.step("A second tunnel side by side, from command-line options")
    keyfile = Path("/root/second.key")
    keyfile.write_text(second_priv + "\n")
    os.chmod(keyfile, 0o600)
    p = wgns("install", "--name", "wg2", "--address", "10.66.0.3/32",
             "--private-key-file", str(keyfile), "--peer", provider.pub,
             "--endpoint", f"{prov.PROV_LAN4}:{prov.PORT}", "--allowed-ips", "10.66.0.0/24",
             "--dns", prov.SERVER4, "--keepalive", "25")
    ok = p.returncode == 0 and wgns("confine", "--name", "wg2", "probe@second").returncode == 0
    rec.check("second_tunnel_from_options", ok and active("wg2.service") == "active", p.stderr)
    r2 = probe("second")
    rec.check("second_tunnel_side_by_side",
              r2.get("links") == ["lo", "wg2"] and body(r2, "http4") == prov.TOKEN
              and active("wg.service") == "active"
              and os.path.exists("/run/netns/wg") and os.path.exists("/run/netns/wg2"),
              (r2.get("links"), r2.get("http4")))
    p = wgns("uninstall", "--name", "wg2")
    rec.check("second_tunnel_uninstall_keeps_first",
              p.returncode == 0 and active("wg.service") == "active"
              and os.path.exists("/etc/systemd/system/netns@.service")
              and not os.path.exists("/run/netns/wg2")
              and not os.path.exists("/etc/systemd/system/probe@second.service.d"),
              p.stderr)

    rec.step("The provider's server goes away: nothing leaks; it comes back")
    provider.stop_server()
    narrate("note", text="the provider's WireGuard server stops")
    r = probe("outage")
    rec.check("outage_nothing_leaks",
              r.get("links") == ["lo", "wg"] and not any(reached(r, k) for k in (
                  "http4", "http6", "dns", "http_name", "host_loopback", "host_lan",
                  "provider_lan", "nscd_socket", "resolved_socket")),
              {k: r.get(k) for k in ("links", "http4", "dns", "host_lan", "provider_lan")})
    provider.start_server()
    narrate("note", text="the provider's WireGuard server runs again")
    for _ in range(10):
        r = probe("outage")
        if body(r, "http4") == prov.TOKEN:
            break
        time.sleep(1)
    rec.check("outage_recovers", body(r, "http4") == prov.TOKEN, r.get("http4"))

    rec.step("Stopping the tunnel stops its services; starting one starts it")
    systemctl("stop", "wg.service")
    # StopWhenUnneeded= stops the namespace unit a moment after the tunnel.
    wait_for("namespace unit stopped", lambda: active("netns@wg.service") == "inactive"
             and active("sleeper.service") == "inactive", 20)
    rec.check("lifecycle_stop_tunnel_stops_confined",
              active("sleeper.service") == "inactive" and not os.path.exists("/run/netns/wg")
              and active("netns@wg.service") == "inactive",
              (active("sleeper.service"), active("netns@wg.service")))
    p = systemctl("start", "sleeper.service")
    if p.returncode != 0:
        run("cat", "/etc/hosts")
        run("getent", "ahosts", prov.ENDPOINT_NAME)
        run("systemd-run", "--wait", "-p", "StandardOutput=journal", "getent", "ahosts",
            prov.ENDPOINT_NAME)
        run("journalctl", "-n", "30", "--no-pager")
    rec.check("lifecycle_start_confined_starts_tunnel",
              active("wg.service") == "active" and active("sleeper.service") == "active",
              (active("wg.service"), active("sleeper.service")))
    r = probe("main")
    rec.check("lifecycle_traffic_after_restart",
              body(r, "http4") == prov.TOKEN and r.get("links") == ["lo", "wg"], r.get("http4"))

    rec.step("Keys never appear in units, command lines, environments, logs, output")
    secrets = [client_priv, psk]
    secrets += [bytes(__import__("base64").b64decode(s)).hex() for s in list(secrets)]
    places = exposure_places(outputs)
    leaks = [where for where, text in places.items() if any(s in text for s in secrets)]
    rec.check("keys_never_exposed", not leaks and len(places) > 10, leaks[:5])

    rec.step("Unconfine and uninstall: nothing is left behind")
    p = wgns("unconfine", "probe@main")
    r = probe("main")
    rec.check("unconfine_releases_unit",
              p.returncode == 0 and "vh" in r.get("links", [])
              and not os.path.exists("/etc/systemd/system/probe@main.service.d"),
              r.get("links"))
    p = wgns("uninstall")
    rec.check("uninstall_exit_0", p.returncode == 0, p.stderr)
    rec.check("uninstall_stops_confined", active("sleeper.service") == "inactive",
              active("sleeper.service"))
    after = snapshot()
    changed = diff(before, after)
    gone = run("systemctl", "show", "-p", "LoadState", "wg.service", quiet=True).stdout.strip()
    rec.check("uninstall_leaves_no_trace", not changed and gone == "LoadState=not-found",
              (changed[:10], gone))
    rec.step(f"This systemd ({run('systemctl', '--version', quiet=True).stdout.split()[1]}) "
             "and the namespace unit's PrivateMounts=no")
    private_mounts_regression(rec)
    if flavour == "deb":
        rec.step("apt remove and apt purge leave the tunnels alone")
        package_removal(rec)
    bait.stop()
    provider.stop()
    run("journalctl", "-b", "-o", "short-monotonic", "--no-pager", "-u", "wg*", "-u", "netns@*",
        "-u", "probe@*", "-u", "sleeper*", story=False)


def live_peer() -> dict:
    p = run(WGNS, "status", "--json", "--name", "wg", quiet=True)
    try:
        return dict(json.loads(p.stdout)["tunnels"][0]["peers"][0])
    except (ValueError, KeyError, IndexError):
        return {"error": p.stdout + p.stderr}


NOWHERE = "10.251.0.99"  # on the provider's LAN, held by no one


def peer_update(rec: Recorder, provider: prov.Provider,
                check: str = "peer_update_keeps_allowed_ips") -> None:
    """Update a peer of a running tunnel in place, as the watcher does when an
    endpoint's name moves (netlink in the kernel path: pyroute2 0.7 and 0.9
    differ in how they update allowed IPs). The peer must keep exactly its
    configured allowed IPs, and the update must reach the new address."""
    # A restart of the watcher takes a look at once (it is ready when the
    # look is done), so nothing waits for its 60 s period.
    # The name moves to an address where nothing answers.
    provider.point_name_at(NOWHERE)
    narrate("note", text=f"the provider's name {prov.ENDPOINT_NAME} now points at {NOWHERE}, "
            "where nothing answers")
    systemctl("restart", "wgns-watch.service")
    moved = live_peer()
    # WireGuard may roam the endpoint back as soon as a packet of the server
    # arrives from its old address, so the move itself is read from the log.
    log = run("journalctl", "-u", "wgns-watch.service", "-o", "cat", quiet=True).stdout
    for line in log.splitlines():
        if "endpoint" in line:
            narrate("note", text=f"the watcher's log: {line}")
    provider.point_name_at(prov.PROV_LAN4)
    narrate("note", text=f"{prov.ENDPOINT_NAME} points at {prov.PROV_LAN4} again")
    systemctl("restart", "wgns-watch.service")
    back = live_peer()
    narrate("note", text=f"the peer's endpoint: {back.get('endpoint')}, allowed IPs: "
            f"{', '.join(back.get('allowed_ips', []))}")
    want = ["0.0.0.0/0", "::/0"]
    rec.check(check,
              f"endpoint {prov.ENDPOINT_NAME} now {NOWHERE} (was {prov.PROV_LAN4})" in log
              and sorted(moved.get("allowed_ips", [])) == want
              and back.get("endpoint") == f"{prov.PROV_LAN4}:{prov.PORT}"
              and sorted(back.get("allowed_ips", [])) == want, (moved, back))


def namespace_usable(name: str) -> bool:
    return run("ip", "netns", "exec", name, "ip", "-o", "link").returncode == 0


def private_mounts_regression(rec: Recorder) -> None:
    """systemd >= 254: PrivateNetwork= implies PrivateMounts= unless told
    otherwise, and a namespace unit's bind mount stays private. wgns's own
    netns@.service must work; the same unit without PrivateMounts=no is
    expected to fail on systemd >= 254 (reported as info for the host test)."""
    wgns("install", "--conf", "/root/provider.conf", "--no-start")
    systemctl("start", "netns@wg.service")
    rec.check("regression_netns_unit_binds_namespace", namespace_usable("wg"),
              run("ls", "-l", "/run/netns", quiet=True).stdout)
    systemctl("stop", "netns@wg.service")
    text = Path("/etc/systemd/system/netns@.service").read_text()
    broken = "\n".join(ln for ln in text.splitlines() if ln != "PrivateMounts=no")
    Path("/etc/systemd/system/brokenns@.service").write_text(broken + "\n")
    systemctl("daemon-reload")
    systemctl("start", "brokenns@regr.service")
    binds = namespace_usable("regr")
    narrate("note", text="the same unit without PrivateMounts=no: its namespace is "
            + ("usable (systemd before 254 does not show the regression)" if binds else
               "not usable (systemd 254 and newer hide the bind mount)"))
    rec.info("broken_netns_unit_binds", binds)
    systemctl("stop", "brokenns@regr.service")
    Path("/etc/systemd/system/brokenns@.service").unlink()
    if os.path.lexists("/run/netns/regr"):
        os.unlink("/run/netns/regr")
    wgns("uninstall")


def package_removal(rec: Recorder) -> None:
    """apt remove and purge never touch the user's tunnels."""
    rec.check("deb_ships_man_page_and_completion",
              os.path.exists("/usr/share/man/man8/wgns.8.gz")
              and "complete" in Path("/usr/share/bash-completion/completions/wgns").read_text())
    wgns("install", "--conf", "/root/provider.conf")
    p = run("apt-get", "remove", "-y", "wgns")
    rec.check("deb_remove_leaves_tunnels_alone",
              p.returncode == 0 and active("wg.service") == "active"
              and os.path.exists("/etc/wgns/wg.conf") and "wgns uninstall" in p.stdout + p.stderr,
              (p.returncode, active("wg.service"), p.stdout[-300:]))
    p = run("apt-get", "purge", "-y", "wgns")
    rec.check("deb_purge_keeps_user_config_and_explains",
              p.returncode == 0 and os.path.exists("/etc/wgns/wg.conf")
              and "tunnels remain in /etc/wgns" in p.stdout + p.stderr,
              (p.returncode, p.stdout[-300:]))
    systemctl("stop", "wg.service")


# -- shared by the scenarios in their own modules (ops.py, hardening.py, ...) --

WEB_UNIT = """[Unit]
Description=a confined web UI

[Service]
DynamicUser=yes
ExecStart=/usr/bin/python3 -m http.server 8000 --bind 127.0.0.1 --directory {www}
"""


def fetch(url: str, netns: str | None = None) -> str:
    code = ("import urllib.request, sys; "
            f"print(urllib.request.urlopen({url!r}, timeout=3).read().decode())")
    cmd = ["python3", "-c", code]
    if netns:
        cmd = ["ip", "netns", "exec", netns] + cmd
    p = run(*cmd, quiet=True)
    return p.stdout.strip() if p.returncode == 0 else f"error: {p.stderr.strip()[-200:]}"


def main_pid(unit: str) -> str:
    return run("systemctl", "show", "-p", "MainPID", "--value", unit, quiet=True).stdout.strip()


def wait_for(what: str, cond, timeout: float = 75) -> float | None:
    """Seconds until cond() held, or None."""
    t = time.monotonic()
    while time.monotonic() - t < timeout:
        if cond():
            took = time.monotonic() - t
            print(f"{time.monotonic() - T0:7.2f}   {what}: after {took:.1f} s", flush=True)
            narrate("note", text=f"{what}: after {took:.1f} s")
            return took
        time.sleep(1)
    narrate("note", text=f"{what}: not within {timeout:.0f} s")
    return None


def check_json(*extra: str) -> tuple[int, dict]:
    p = wgns("check", "--json", *extra)
    try:
        return p.returncode, {c["name"]: c for c in json.loads(p.stdout)["checks"]}
    except (ValueError, KeyError):
        return p.returncode, {"output": {"ok": False, "detail": p.stdout + p.stderr}}


SCENARIOS = {"core": core, "demo": core}  # others register themselves (ops.py, ...)
# Scenarios that live in a module of another name.
MODULES = {"unittests": "distro", "units": "distro", "resolved": "distro",
           "pia": "pia_scenario"}


def reset() -> None:
    """Between two scenarios of one boot: what a scenario that broke off may
    have left (the provider, the probe's output); each one starts from a
    guest as a fresh boot has it."""
    prov.reset()
    run("systemctl", "reset-failed", quiet=True)


def main(argv: list[str]) -> int:
    """SCENARIO is one name or several joined by '+' (core+ops), run one
    after the other in this boot, each reported done when it ran to its
    end; one that breaks off does not keep the next from running."""
    global NARRATOR
    scenario, report = argv
    rec = NARRATOR = Recorder(report)
    flavour = os.environ.get("WGNS_FLAVOUR", "pypi")
    names = scenario.split("+")
    for name in names:
        if name not in SCENARIOS:  # a module of its own (bench.py) registers itself
            importlib.import_module(MODULES.get(name, name))
            SCENARIOS.update(sys.modules["scenario"].SCENARIOS)
    broke = False
    for i, name in enumerate(names):
        if i:
            reset()
        try:
            SCENARIOS[name](rec, flavour)
        except Exception as e:  # the scenario itself broke: report it, never hide it
            import traceback
            traceback.print_exc()
            rec.check("scenario_ran_to_the_end", False, f"{name}: {type(e).__name__}: {e}")
            broke = True
            continue
        rec.done(name)
    if broke:
        return 1
    rec.done()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

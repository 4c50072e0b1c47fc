"""Guest side: the `upgrade` scenario (issue 20). The older wgns, the last
commit before the house was rebuilt (machine.OLD_COMMIT, built from this
repository's history: its wheel and its .deb, in GUEST/old), sets up two
tunnels with everything a user declares: confined units, TCP and UDP
exposes and reaches, port forwarding, a metrics directory. Then, by pip
and again by the .deb:
- the upgrade: without any command the tunnels work and heal (the older
  units run the new helpers, which read the older files); the first
  command (`wgns migrate`; the .deb's postinst runs it) gives the tunnels
  their records and the one watcher, and everything still works;
- the downgrade: `wgns migrate --downgrade` (the .deb's prerm runs it)
  gives the older version its own watchers back; it heals, and its own
  uninstall leaves nothing behind.
"""

from __future__ import annotations

import glob
import os
import subprocess
from pathlib import Path

import provider as prov
import scenario as sc

OLD = f"{sc.GUEST}/old"
TUNNELS = {"wg": "10.66.0.2", "tr": "10.66.0.3"}
METRICS = "/srv/metrics"
UPGRADE_CHECKS = tuple(f"{route}_{c}" for route in ("pip", "deb") for c in (
    "older_version_works", "upgraded_heals_without_a_command", "first_command_one_watcher",
    "upgraded_everything_works", "upgraded_heals", "downgraded_own_watchers",
    "downgraded_heals", "downgraded_uninstall_leaves_nothing"))


def conf(priv: str, addr: str, pub: str) -> str:
    text = sc.client_conf(priv, "", pub).replace("10.66.0.2/32", f"{addr}/32")
    return "\n".join(ln for ln in text.splitlines() if not ln.startswith("PresharedKey")) + "\n"


def setup() -> prov.Provider:
    provider = prov.Provider()
    for name, addr in TUNNELS.items():
        priv, pub = prov.genkey()
        provider.add_client(pub, [f"{addr}/32"])
        Path(f"/root/{name}.conf").write_text(conf(priv, addr, provider.pub))
    provider.setup_network()
    provider.start_server()
    provider.start_natpmp(lifetime_cap=10)
    sc.web_and_probe_units()
    units = Path("/etc/systemd/system")
    (units / "sleeper.service").write_text(sc.SLEEPER_UNIT)
    os.makedirs(METRICS, exist_ok=True)
    sc.systemctl("daemon-reload")
    return provider


def declare(route: str) -> bool:
    """Everything, with the older wgns."""
    steps = [("install", "--conf", "/root/wg.conf", "--metrics-dir", METRICS),
             ("install", "--conf", "/root/tr.conf", "--name", "tr"),
             ("confine", "web", f"probe@{route}"), ("confine", "sleeper", "--name", "tr"),
             ("expose", "web", "8000"), ("expose", "web", "5353", "--udp"),
             ("reach", f"{prov.HOST_LAN4}:9999"),
             ("reach", f"{prov.HOST_LAN4}:5300", "--udp", "--at", "127.0.0.1:5300"),
             ("port-forward", "--exec", "/bin/true")]
    ok = all(sc.wgns(*s).returncode == 0 for s in steps)
    sc.systemctl("start", "web.service", "sleeper.service")
    return ok


def works(route: str) -> tuple[bool, dict]:
    """The tunnels, the confined units, the bridges, the forwarded port and
    the metrics, as a user sees them."""
    r = sc.probe(route)
    forwarded = Path("/run/wgns/wg/forwarded-port")
    sc.wait_for("a forwarded port", forwarded.exists, 30)
    prom = Path(METRICS, "wgns-wg.prom")
    sc.wait_for("the metrics file", prom.exists, 30)
    sockets = {u: sc.active(u) for u in (
        "wgns-wg-expose-8000.socket", "wgns-wg-expose-udp-5353.socket",
        "wgns-wg-reach-9999.socket", "wgns-wg-reach-udp-5300.socket")}
    seen = {"probe_links": r.get("links"), "probe_http": sc.body(r, "http4"),
            "web": sc.fetch("http://127.0.0.1:8000/"), "sockets": sockets,
            "forwarded": forwarded.exists(), "metrics": prom.exists(),
            "tunnels": {t: sc.active(f"{t}.service") for t in TUNNELS},
            "sleeper": sc.active("sleeper.service")}
    ok = (seen["probe_links"] == ["lo", "wg"] and seen["probe_http"] == prov.TOKEN
          and seen["web"] == "confined-web" and set(sockets.values()) == {"active"}
          and seen["forwarded"] and seen["metrics"] and seen["sleeper"] == "active"
          and set(seen["tunnels"].values()) == {"active"})
    return ok, seen


def heals(name: str = "wg") -> float | None:
    """Seconds until a deleted link is back, by whichever watcher runs."""
    sc.run("ip", "-n", name, "link", "del", name)
    return sc.wait_for(f"{name}'s link back", lambda: sc.run(
        "ip", "-n", name, "link", "show", name, quiet=True).returncode == 0, 60)


def watchers() -> dict[str, str]:
    return {u: sc.active(u) for u in ("wgns-watch.service", "wgns-watch@wg.service",
                                      "wgns-watch@tr.service")}


def upgraded(rec: sc.Recorder, route: str, install_new, before: dict) -> None:
    """From the older version's working setup through the upgrade, the
    downgrade and the older version's uninstall."""
    install_new()
    took = heals()
    rec.check(f"{route}_upgraded_heals_without_a_command", took is not None
              and works(route)[0], (took, watchers()))
    if route == "pip":   # the .deb's postinst ran it already
        sc.wgns("migrate")
    sc.settle("wgns-watch.service", timeout=30)
    records = sorted(glob.glob("/etc/wgns/*/record.json"))
    rec.check(f"{route}_first_command_one_watcher", watchers() == {
        "wgns-watch.service": "active", "wgns-watch@wg.service": "inactive",
        "wgns-watch@tr.service": "inactive"} and len(records) == 2
        and not glob.glob("/etc/systemd/system/**/wgns-watch@*", recursive=True),
        (watchers(), records))
    ok, seen = works(route)
    rec.check(f"{route}_upgraded_everything_works", ok, seen)
    rec.check(f"{route}_upgraded_heals", heals("tr") is not None, watchers())


def downgraded(rec: sc.Recorder, route: str, install_old, before: dict) -> None:
    install_old()
    own = {"wgns-watch.service": "inactive", "wgns-watch@wg.service": "active",
           "wgns-watch@tr.service": "active"}
    sc.wait_for("the older watchers", lambda: watchers() == own, 30)
    rec.check(f"{route}_downgraded_own_watchers", watchers() == own
              and not glob.glob("/etc/wgns/*/record.json"), watchers())
    took = heals()
    rec.check(f"{route}_downgraded_heals", took is not None and works(route)[0], took)
    p = [sc.wgns("uninstall", "--name", t) for t in TUNNELS]
    changed = sc.diff(before, sc.snapshot())
    rec.check(f"{route}_downgraded_uninstall_leaves_nothing",
              all(x.returncode == 0 for x in p) and not changed,
              (changed[:10], [x.stderr[-200:] for x in p]))


def pip_route(rec: sc.Recorder) -> None:
    wheels, old = f"{sc.GUEST}/wheels", glob.glob(f"{OLD}/wgns-*.whl")[0]
    sc.must("/usr/bin/python3", "-m", "venv", sc.VENV)
    sc.must(f"{sc.VENV}/bin/pip", "install", "-q", "--no-index", "--find-links", wheels, old)
    sc.WGNS, sc.PYTHON = f"{sc.VENV}/bin/wgns", f"{sc.VENV}/bin/python"
    before = sc.snapshot()
    ok = declare("pip")
    works_ok, seen = works("pip")
    rec.check("pip_older_version_works", ok and works_ok, seen)

    def reinstall(wheel: str) -> None:
        sc.must(f"{sc.VENV}/bin/pip", "install", "-q", "--no-index", "--no-deps",
                "--force-reinstall", wheel)
    upgraded(rec, "pip", lambda: reinstall(glob.glob(f"{wheels}/wgns-*.whl")[0]), before)

    def back() -> None:
        sc.wgns("migrate", "--downgrade")
        reinstall(old)
    downgraded(rec, "pip", back, before)
    sc.run("rm", "-rf", sc.VENV)


def deb_route(rec: sc.Recorder) -> None:
    old, new = glob.glob(f"{OLD}/wgns_*_all.deb")[0], glob.glob(f"{sc.GUEST}/new-deb/*.deb")[0]
    before = sc.snapshot()
    sc.must("apt-get", "install", "-y", old)
    sc.WGNS, sc.PYTHON = "/usr/bin/wgns", "/usr/bin/python3"
    ok = declare("deb")
    works_ok, seen = works("deb")
    rec.check("deb_older_version_works", ok and works_ok, seen)

    def dpkg(deb: str) -> None:
        p = sc.run("dpkg", "-i", deb)
        rec.info(f"dpkg_{Path(deb).name}", (p.returncode, p.stdout[-500:], p.stderr[-500:]))
    upgraded(rec, "deb", lambda: dpkg(new), before)
    downgraded(rec, "deb", lambda: dpkg(old), before)
    sc.run("apt-get", "purge", "-y", "wgns")


def upgrade(rec: sc.Recorder, flavour: str) -> None:
    rec.info("old_commit", Path(f"{OLD}/commit").read_text().strip())
    provider = setup()
    try:
        pip_route(rec)
        deb_route(rec)
    finally:
        provider.stop()
        subprocess.run(["journalctl", "-b", "--no-pager", "-o", "short-monotonic", "-n", "80",
                        "-u", "wgns-watch*"], check=False)


sc.SCENARIOS["upgrade"] = upgrade

"""Guest side: the `pipx_route` scenario. wgns installed with pipx as root,
as the README tells users, from the wheelhouse (the guest has no network):
`pipx install` (a venv under /root, which every unit must still be able to
run: ProtectHome=read-only) and, where this pipx has it (1.5 and newer),
`pipx install --global` (/opt/pipx, /usr/local/bin). For each route: the
tunnel comes up, a DynamicUser probe confined to it reaches the provider
only through the tunnel, the watcher runs,
`wgns check` passes, and `wgns uninstall` then `pipx uninstall` leave
nothing behind. The core scenario's pieces do the work (scenario.py).

Flavour pypi takes wgns's dependencies from the wheelhouse; flavour system
takes the distribution's (`pipx install --system-site-packages`).

Run by scenario.py (`python3 scenario.py pipx_route REPORT`).
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

import provider as prov
import scenario as sc

# `--global` goes after the subcommand: `pipx --global install` is silently
# a user install (argparse: the subcommand's own default wins; pypa/pipx#1537).
ROUTES = {"pipx": [], "pipx_global": ["--global"]}
STEPS = ("install", "units_run_its_python", "probe_only_through_tunnel",
         "watch_service_runs", "check_passes", "uninstall_leaves_nothing")


def checks(route: str) -> tuple[str, ...]:
    return tuple(f"{route}_{s}" for s in STEPS)


def pipx_value(opts: list[str], name: str) -> str:
    return sc.run("pipx", "environment", *opts, "--value", name, quiet=True).stdout.strip()


def one_route(rec: sc.Recorder, route: str, flavour: str) -> None:
    opts = ROUTES[route]
    wheels = f"{sc.GUEST}/wheels"
    before = sc.snapshot()
    system = ["--system-site-packages"] if flavour == "system" else []
    p = sc.run("pipx", "install", *opts, *system, f"--pip-args=--no-index --find-links {wheels}",
               *glob.glob(f"{wheels}/wgns-*.whl"))
    venv = os.path.join(pipx_value(opts, "PIPX_LOCAL_VENVS"), "wgns")
    cli = os.path.join(pipx_value(opts, "PIPX_BIN_DIR"), "wgns")
    # --global: a venv outside /root and the CLI on root's own PATH
    where = (not venv.startswith("/root/") and cli == "/usr/local/bin/wgns" if opts
             else venv.startswith("/root/") and cli == "/root/.local/bin/wgns")
    rec.check(f"{route}_install", p.returncode == 0 and where
              and os.path.realpath(cli).startswith(venv + "/"),
              (p.returncode, venv, cli, os.path.realpath(cli), p.stderr[-500:]))
    sc.WGNS, sc.PYTHON = cli, f"{venv}/bin/python"
    rec.info(f"{route}_venv", venv)

    p = sc.wgns("install", "--conf", "/root/provider.conf")
    units = Path("/etc/systemd/system")
    texts = [(units / u).read_text() if (units / u).exists() else ""
             for u in ("wg.service", "wgns-watch.service")]
    runs_venv = all(f"ExecStart={venv}/bin/python -I " in t for t in texts)
    home = venv.startswith("/root/")
    rec.check(f"{route}_units_run_its_python",
              p.returncode == 0 and sc.active("wg.service") == "active" and runs_venv
              and all(("ProtectHome=read-only" in t) == home for t in texts),
              (p.returncode, sc.active("wg.service"), p.stderr[-300:],
               [ln for t in texts for ln in t.splitlines() if ln.startswith(("ExecStart",
                                                                             "ProtectHome"))]))

    sc.wgns("confine", f"probe@{route}")
    r = sc.probe(route)
    rec.check(f"{route}_probe_only_through_tunnel",
              r.get("uid", 0) not in (0, None) and r.get("links") == ["lo", "wg"]
              and sc.body(r, "http4") == prov.TOKEN and sc.body(r, "http_name") == prov.TOKEN
              and not any(sc.reached(r, k) for k in ("host_loopback", "host_lan",
                                                     "provider_lan", "nscd_socket")),
              r)

    p = sc.systemctl("start", "wgns-watch.service")
    result = sc.run("systemctl", "show", "-p", "Result", "--value", "wgns-watch.service",
                    quiet=True).stdout.strip()
    rec.check(f"{route}_watch_service_runs",
              p.returncode == 0 and result == "success"
              and sc.active("wgns-watch.service") == "active",
              (p.returncode, result, sc.active("wgns-watch.service"), p.stderr[-300:]))

    code, found = sc.check_json()
    rec.check(f"{route}_check_passes",
              code == 0 and bool(found) and all(c["ok"] for c in found.values()), found)

    p = sc.wgns("uninstall")
    q = sc.run("pipx", "uninstall", *opts, "wgns")
    changed = sc.diff(before, sc.snapshot())
    rec.check(f"{route}_uninstall_leaves_nothing",
              p.returncode == 0 and q.returncode == 0 and not changed
              and not os.path.exists(venv) and not os.path.lexists(cli),
              (p.returncode, q.returncode, changed[:10], os.path.exists(venv),
               os.path.lexists(cli)))


def pipx_route(rec: sc.Recorder, flavour: str) -> None:
    rec.step("Start a fake VPN provider; the probe service to confine")
    # As `sudo pipx` would: root's home. No network here, and pipx first
    # upgrades the pip of its shared venv (pipx 1.7 stops when it cannot:
    # "No matching distribution found for pip>=23.1"): that pip comes from
    # the distribution's wheels (python3-pip-whl) where PyPI would give it,
    # and pip never waits for an index that is not there.
    os.environ.setdefault("HOME", "/root")
    os.environ["PIP_NO_INDEX"] = "1"
    os.environ["PIP_FIND_LINKS"] = "/usr/share/python-wheels"
    provider = prov.Provider()
    priv, pub = prov.genkey()
    psk = sc.run("wg", "genpsk", quiet=True).stdout.strip()
    provider.add_client(pub, ["10.66.0.2/32", "fd66::2/128"], psk)
    provider.setup_network()
    provider.start_server()
    bait = prov.HostBait()
    bait.start()
    Path("/root/provider.conf").write_text(sc.client_conf(priv, psk, provider.pub))
    os.chmod("/root/provider.conf", 0o600)
    sc.PROBE_OUT.mkdir(exist_ok=True)
    Path("/etc/systemd/system/probe@.service").write_text(
        sc.PROBE_UNIT.format(guest=sc.GUEST, out=sc.PROBE_OUT))
    sc.systemctl("daemon-reload")
    version = sc.run("pipx", "--version").stdout.strip()
    rec.info("pipx", version)
    rec.info("systemd", sc.run("systemctl", "--version", quiet=True).stdout.split("\n")[0])
    has_global = "--global" in sc.run("pipx", "install", "--help", quiet=True).stdout
    for route in ROUTES:
        if route == "pipx_global" and not has_global:
            sc.narrate("note", text=f"pipx {version} has no --global (it came in pipx 1.5)")
            continue
        rec.step(f"sudo pipx install {' '.join(ROUTES[route] + [''])}wgns: tunnel, confined "
                 "probe, watcher, check, uninstall")
        one_route(rec, route, flavour)
    bait.stop()
    provider.stop()


sc.SCENARIOS["pipx_route"] = pipx_route

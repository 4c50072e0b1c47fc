"""`wgns check`: a leak test a user can run at any time.

Each check looks from where a confined unit stands. The namespace checks
run in a thread that joined the namespace; the DNS and resolver-socket
checks run in a transient unit (`systemd-run`) that gets exactly the
confinement drop-in's settings and a dynamic user, and reports back as JSON
(`helper.py probe NAME`, below). The drop-in check reads what systemd
actually loaded for each confined unit, so a hand-edited drop-in shows.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from typing import Any

from ..core import netns, wireguard
from ..core.config import Tunnel
from ..core.forward_state import state as forward_state
from ..core.paths import CONF_DIR, RESOLVER_SOCKETS
from ..core.record import Record
from ..core.systemd import Systemd
from ..render.units import confinement
from . import check_bridges

MAX_HANDSHAKE_AGE = 180  # WireGuard rejects a session older than this


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def _namespace_view(tunnel: Tunnel) -> dict[str, Any]:
    from pyroute2 import IPRoute
    with IPRoute() as ipr:
        links = {lk["index"]: lk.get_attr("IFLA_IFNAME") for lk in ipr.get_links()}
        routes = []
        for family in (socket.AF_INET, socket.AF_INET6):
            for r in ipr.get_routes(family=family, table=254):
                dst = r.get_attr("RTA_DST")
                routes.append((f"{dst or ('::' if family == socket.AF_INET6 else '0.0.0.0')}"
                               f"/{r['dst_len']}", links.get(r.get_attr("RTA_OIF"))))
    return {"links": sorted(links.values()), "routes": routes}


# The probe runs as root without any capability: it sees exactly the
# network, resolv.conf and blocked sockets a confined unit sees, and it can
# run the installing interpreter wherever that lives (a pipx venv under
# /root is not readable by a dynamic user; one under /var/tmp is hidden by
# the PrivateTmp= that DynamicUser= implies).
PROBE_SANDBOX = ("CapabilityBoundingSet=", "AmbientCapabilities=", "NoNewPrivileges=yes",
                 "ProtectSystem=strict", "ProtectHome=read-only", "PrivateDevices=yes",
                 "RestrictSUIDSGID=yes", "LockPersonality=yes")


def _run_probe(name: str, python: str, helper: str) -> dict[str, Any]:
    cmd = ["systemd-run", "--quiet", "--wait", "--pipe", "--collect",
           f"--property=After={name}.service"]
    cmd += [f"--property={p}" for p in PROBE_SANDBOX]
    for key, value in confinement(name).items():
        cmd.append(f"--property={key}={value}")
    cmd += [python, "-I", helper, "probe", name]
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return {"error": f"systemd-run could not run the probe ({e})"}
    if p.returncode in (200, 203):  # systemd's EXIT_CHDIR/EXIT_EXEC: it never ran
        return {"error": f"the probe could not be started: {python} is not executable "
                "in a sandboxed unit (exit status 203); re-run 'wgns install' from an "
                "install that systemd units can run"}
    if p.returncode != 0:
        return {"error": (p.stderr.strip().splitlines() or [f"exit {p.returncode}"])[-1]}
    try:
        return dict(json.loads(p.stdout))
    except ValueError:
        return {"error": "the probe's output was not its report"}


def loaded_confinement(sd: Systemd, unit: str, name: str) -> list[str]:
    """What the loaded unit lacks of its confinement."""
    props = sd.service_properties(unit)
    missing = []
    if props["NetworkNamespacePath"] != netns.path(name):
        missing.append(f"NetworkNamespacePath is {props['NetworkNamespacePath']!r}")
    if f"{name}.service" not in props["BindsTo"]:
        missing.append(f"BindsTo={name}.service")
    binds = {(src, dst) for src, dst in props["BindReadOnlyPaths"]}
    for f in ("resolv.conf", "nsswitch.conf"):
        if (f"{CONF_DIR}/{name}/{f}", f"/etc/{f}") not in binds:
            missing.append(f"the tunnel's {f}")
    for path in (RESOLVER_SOCKETS[0], RESOLVER_SOCKETS[2]):
        if path not in props["InaccessiblePaths"]:
            missing.append(f"InaccessiblePaths={path}")
    return missing


def run_checks(record: Record, python: str, helper: str,
               max_age: int = MAX_HANDSHAKE_AGE) -> list[Check]:
    tunnel, name = record.tunnel, record.name
    checks: list[Check] = []
    if not netns.exists(name):
        return [Check("namespace", False, f"{netns.path(name)} does not exist")]
    view = netns.run_in(name, lambda: _namespace_view(tunnel))
    checks.append(Check("interfaces", view["links"] == ["lo", name],
                        f"links in the namespace: {', '.join(view['links'])}"))
    wrong = [f"{dst} via {dev}" for dst, dev in view["routes"] if dev not in (name, "lo")]
    missing = [str(p) for p in tunnel.route_prefixes()
               if (str(p), name) not in view["routes"]]
    families = sorted({f"IPv{a.version}" for a in tunnel.addresses})
    checks.append(Check("routes", not wrong and not missing,
                        "; ".join(filter(None, [
                            f"missing: {', '.join(missing)}" if missing else "",
                            f"not through the tunnel: {', '.join(wrong)}" if wrong else "",
                        ])) or f"{', '.join(families)}: everything routed goes through {name}"))
    seen = _run_probe(name, python, helper)
    want = [str(d) for d in tunnel.dns]
    if "error" in seen:
        checks.append(Check("dns", False, f"NOT CHECKED: the confined probe did not run: "
                            f"{seen['error']}"))
        checks.append(Check("resolver-sockets", False,
                            "NOT CHECKED: the confined probe did not run"))
    else:
        answered = [s for s, ok in seen["answers"].items() if ok]
        ok = bool(want) and seen["nameservers"] == want and answered == want
        checks.append(Check("dns", ok, f"resolv.conf {seen['nameservers']}, tunnel DNS {want}, "
                            f"answering through the tunnel: {answered}"))
        open_sockets = [p for p, r in seen["sockets"].items() if r == "reachable"]
        checks.append(Check("resolver-sockets", not open_sockets,
                            f"reachable: {', '.join(open_sockets)}" if open_sockets
                            else "host resolver sockets are blocked"))
    with Systemd() as sd:
        gaps = {u: loaded_confinement(sd, u, name) for u in record.confined}
    bad = {u: g for u, g in gaps.items() if g}
    checks.append(Check("drop-ins", not bad,
                        "; ".join(f"{u} lacks {', '.join(g)}" for u, g in bad.items())
                        or f"{len(gaps)} confined unit(s) complete"))
    checks.append(Check("host-addresses", *check_bridges.host_addresses(name)))
    checks.append(_handshake_check(name, max_age))
    with Systemd() as sd:
        checks.append(Check("bridges", *check_bridges.bridges(
            record, sd, sd.active_state(f"{name}.service") == "active")))
        forward = _forward_check(record, sd)
    if forward:
        checks.append(forward)
    return checks


def _forward_check(record: Record, sd: Systemd) -> Check | None:
    """When port forwarding is on: a port held and renewed, clients in sync."""
    st = forward_state(record, sd)
    if st is None:
        return None
    unsynced = [f"{c['client']}: {c['error'] or 'not told yet'}"
                for c in st.get("clients") or [] if not c["synced"]]
    age, static = st["renewed_age"], st.get("method") == "static"
    # A static port is never renewed; PIA's is bound every 15 minutes.
    most = 1200 if st.get("method") == "pia" else 120
    fresh = static or age is not None and age <= most
    ok = bool(st["port"]) and fresh and not st["error"] and not unsynced
    source = "static (reserved at the provider)" if static else f"via {st['gateway']}"
    detail = ((f"port {st['port']} {source}" + ("" if static else f", renewed {age} s ago"))
              if st["port"] else
              f"no port from {'the static setting' if static else st['gateway'] or '?'}")
    problems = [p for p in (st["error"], *unsynced) if p]
    if st["port"] and not fresh:
        problems.append(f"not renewed for over {most // 60} minutes")
    return Check("port-forward", ok, "; ".join([detail, *problems]))


def _handshake_check(name: str, max_age: int) -> Check:
    deadline = time.monotonic() + 5  # the DNS probe's traffic may start a handshake
    while True:
        device = wireguard.device_info(name)
        if device is None:
            return Check("handshake", False, "no WireGuard device")
        now = time.time()
        ages = {p.public_key[:8]: (now - p.latest_handshake if p.latest_handshake else None)
                for p in device.peers}
        fresh = all(a is not None and a <= max_age for a in ages.values())
        if fresh or time.monotonic() > deadline:
            text = ", ".join(f"{k}...: {'never' if a is None else f'{a:.0f} s ago'}"
                             for k, a in ages.items())
            return Check("handshake", fresh, f"latest handshake {text} (limit {max_age} s)")
        time.sleep(0.5)


def as_json(name: str, checks: list[Check]) -> str:
    return json.dumps({"tunnel": name, "ok": all(c.ok for c in checks),
                       "checks": [asdict(c) for c in checks]}, indent=2)

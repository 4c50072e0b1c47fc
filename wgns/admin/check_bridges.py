"""What `wgns check` says about the ways between a tunnel's namespace and
the host: the declared bridges (exposes and reaches), each listening while
the tunnel runs, and nothing undeclared: no other socket unit made inside
the namespace, and none of the host's own addresses routed anywhere but
into the tunnel from inside. CLI side, called from check.py."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

from ..core import netns
from ..core.errors import WgnsError
from ..core.names import split_host_port
from ..core.paths import expose_unit, reach_unit
from ..core.record import Record
from ..core.systemd import Systemd

RTN_LOCAL = 2  # a route to one of the namespace's own addresses


def _declared(record: Record) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """[(socket unit, how status shows it)] of the tunnel's bridges (its
    record's), and {reach socket unit: the loopback ADDR:PORT it declares
    inside}."""
    name = record.name

    def port(address: str) -> int:
        return split_host_port(address, "address")[1]
    shown = [(f"{expose_unit(name, port(e.listen), e.proto)}.socket",
              f"expose {e.listen}->{e.unit}:{e.port}/{e.proto}") for e in record.exposes]
    inside = {f"{reach_unit(name, port(r.at), r.proto)}.socket": r for r in record.reaches}
    shown += [(unit, f"reach {r.at}->{r.target}/{r.proto}") for unit, r in inside.items()]
    return shown, {unit: r.at for unit, r in inside.items()}


def _endpoint(listen: str) -> object:
    """ADDR:PORT as (address, port), however systemd writes it; what does
    not parse stays as it is (and so differs from any declared address)."""
    try:
        host, port = split_host_port(listen, "listen")
        return ipaddress.ip_address(host), port
    except (WgnsError, ValueError):
        return listen


def bridges(record: Record, sd: Systemd, tunnel_active: bool) -> tuple[bool, str]:
    """(ok, detail): every declared bridge listens while the tunnel runs; a
    reach's socket inside the namespace listens exactly where its header
    declares (a loopback address); no other socket unit listens inside."""
    name = record.name
    declared, inside_declared = _declared(record)
    states = {unit: sd.active_state(unit) for unit, _ in declared}
    down = [f"{shown} ({states[unit]})" for unit, shown in declared
            if tunnel_active and states[unit] != "active"]
    inside = sd.sockets_in_namespace(netns.path(name))
    undeclared = sorted(u for u in inside if u not in inside_declared)
    moved = sorted(f"{u} listens on {', '.join(inside[u]) or 'nothing'}, declared "
                   f"{inside_declared[u]}" for u in inside
                   if u in inside_declared
                   and [_endpoint(a) for a in inside[u]] != [_endpoint(inside_declared[u])])
    parts = []
    if undeclared:
        parts.append(f"UNDECLARED socket units inside the namespace: {', '.join(undeclared)}")
    if moved:
        parts.append(f"CHANGED: {'; '.join(moved)}")
    if down:
        parts.append(f"not listening: {', '.join(down)}")
    if declared:
        parts.append("declared: " + ", ".join(shown for _, shown in declared))
    else:
        parts.append("none declared")
    return not undeclared and not moved and not down, "; ".join(parts)


def _host_addresses() -> list[str]:
    """The host namespace's own addresses, but loopback (the namespace has
    its own)."""
    from pyroute2 import IPRoute
    with IPRoute() as ipr:
        # IFA_LOCAL first: on a point-to-point link IFA_ADDRESS is the peer's
        found = {a.get_attr("IFA_LOCAL") or a.get_attr("IFA_ADDRESS") for a in ipr.get_addr()}
    return sorted(a for a in found if a and not ipaddress.ip_address(a).is_loopback)


def _routes_to(addresses: list[str]) -> dict[str, Any]:
    """{address: the link a packet to it would leave by, or None}, asked of
    the kernel from inside the namespace (every table and rule)."""
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError
    out: dict[str, Any] = {}
    with IPRoute() as ipr:
        names = {lk["index"]: lk.get_attr("IFLA_IFNAME") for lk in ipr.get_links()}
        for a in addresses:
            family = socket.AF_INET6 if ":" in a else socket.AF_INET
            try:
                route = ipr.route("get", dst=a, family=family)
            except NetlinkError:
                out[a] = None  # unreachable from inside: fine
                continue
            if not route or route[0]["type"] == RTN_LOCAL:
                # the namespace's own address (ProtonVPN gives every client
                # 10.2.0.2: a host running it too has it as well)
                out[a] = None
            else:
                out[a] = names.get(route[0].get_attr("RTA_OIF"), "?")
    return out


def host_addresses(name: str) -> tuple[bool, str]:
    """(ok, detail): from inside, each of the host's addresses is either
    unreachable or behind the tunnel (the provider's side), never on a link
    to the host."""
    addresses = _host_addresses()
    routes = netns.run_in(name, lambda: _routes_to(addresses))
    direct = [f"{a} via {dev}" for a, dev in routes.items() if dev not in (None, name)]
    if direct:
        return False, f"reachable from inside without a bridge: {', '.join(direct)}"
    return True, (f"none of the host's {len(addresses)} address(es) is reachable from "
                  "inside except through declared bridges")

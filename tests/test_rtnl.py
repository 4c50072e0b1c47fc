"""wgns/runtime/rtnl.py, the bring-up's link, address and route changes
without pyroute2, against the pyroute2 calls it replaces: two real
namespaces, one set up each way, must end up alike as iproute2 sees
them (addresses, routes, MTU, state), a link moved into a namespace by
its descriptor arrives there, and refusals are the kernel's errno."""

import errno
import ipaddress
import json
import os
import subprocess

import pytest

from wgns.core import netlink, netns
from wgns.runtime import rtnl

ADDRESSES = [ipaddress.ip_interface("10.66.0.2/32"), ipaddress.ip_interface("fd66::2/128")]
ROUTES = [ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"),
          ipaddress.ip_network("10.250.0.0/16")]


def ip(*args: str) -> str:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=True).stdout


@pytest.fixture
def spaces():
    names = [f"wgns-rtnl-{os.getpid()}-{k}" for k in ("old", "new", "out")]
    try:
        for n in names:
            ip("netns", "add", n)
        yield names
    finally:
        for n in names:
            subprocess.run(["ip", "netns", "del", n], capture_output=True)


def make_link(space: str) -> None:
    """A link called t0 in SPACE (a veth: this kernel may have no dummy)."""
    ip("-n", space, "link", "add", "t0", "type", "veth", "peer", "name", "t1")


def with_pyroute2() -> None:
    """What link.py did before (pyroute2), in the current namespace."""
    import socket

    from pyroute2 import IPRoute
    with IPRoute() as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
        idx = ipr.link_lookup(ifname="t0")[0]
        ipr.link("set", index=idx, mtu=1380)
        for a in ADDRESSES:
            ipr.addr("add", index=idx, address=str(a.ip), prefixlen=a.network.prefixlen)
        ipr.link("set", index=idx, state="up")
        for net in ROUTES:
            family = socket.AF_INET if net.version == 4 else socket.AF_INET6
            ipr.route("add", dst=str(net.network_address), dst_len=net.prefixlen,
                      oif=idx, family=family)


def with_rtnl() -> None:
    rtnl.set_link(rtnl.index("lo"), up=True)
    idx = rtnl.index("t0")
    rtnl.set_link(idx, mtu=1380)
    for a in ADDRESSES:
        rtnl.add_address(idx, a)
    rtnl.set_link(idx, up=True)
    for net in ROUTES:
        rtnl.add_route(net, idx)


def seen(space: str) -> dict:
    """What iproute2 shows of t0 and the routes, without what differs by
    nature between two namespaces (indexes, the veth's own addresses)."""
    link = json.loads(ip("-n", space, "-j", "addr", "show", "dev", "t0"))[0]
    routes = []
    for family in ("-4", "-6"):
        for r in json.loads(ip("-n", space, "-j", family, "route", "show", "table", "all")):
            if r.get("dev") == "t0" and r.get("type") not in ("local", "multicast") \
                    and not r.get("dst", "").startswith("fe80"):
                routes.append({k: r.get(k) for k in ("dst", "dev", "protocol", "scope", "type",
                                                       "table", "metric", "flags")})
    lo = json.loads(ip("-n", space, "-j", "link", "show", "dev", "lo"))[0]
    return {"mtu": link["mtu"], "up": "UP" in link["flags"], "lo_up": "UP" in lo["flags"],
            "addresses": sorted((a["local"], a["prefixlen"], a.get("scope"))
                                for a in link["addr_info"] if a["scope"] != "link"),
            "routes": sorted(routes, key=json.dumps)}


def test_the_same_as_pyroute2_made_it(spaces):
    old, new, _ = spaces
    make_link(old)
    make_link(new)
    netns.run_in(old, with_pyroute2)
    netns.run_in(new, with_rtnl)
    got = seen(new)
    assert got == seen(old)
    assert got["mtu"] == 1380 and got["up"] and got["lo_up"]
    assert [a[0] for a in got["addresses"]] == ["10.66.0.2", "fd66::2"]
    assert {r["dst"] for r in got["routes"]} >= {"default", "10.250.0.0/16"}


def test_a_link_moves_into_a_namespace_by_its_descriptor(spaces):
    _, new, out = spaces
    make_link(out)

    def move() -> None:
        fd = os.open(netns.path(new), os.O_RDONLY)
        try:
            rtnl.set_link(rtnl.index("t0"), netns_fd=fd)
        finally:
            os.close(fd)
    netns.run_in(out, move)
    assert "t0" in netns.run_in(new, netlink.links)
    assert "t0" not in netns.run_in(out, netlink.links)


def test_refusals_are_the_kernels(spaces):
    _, new, _ = spaces
    make_link(new)

    def twice() -> None:
        idx = rtnl.index("t0")
        rtnl.add_address(idx, ADDRESSES[0])
        rtnl.add_address(idx, ADDRESSES[0])
    with pytest.raises(netlink.NetlinkError) as e:
        netns.run_in(new, twice)
    assert e.value.errno == errno.EEXIST

    def delete() -> None:
        idx = rtnl.index("t0")
        rtnl.delete_link(idx)
        assert rtnl.index("t0") is None
        rtnl.delete_link(idx)
    with pytest.raises(netlink.NetlinkError) as e:
        netns.run_in(new, delete)
    assert e.value.errno == errno.ENODEV

"""The bridges: `wgns reach`/`unreach`, `wgns expose --udp`, and the UDP
relay they run. The relay is driven over real loopback sockets (a target
echo server, clients, the listener a socket unit would hand it); the CLI
is driven against a root directory, hostile values included."""

import os
import socket
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from wgns.cli import app
from wgns.core.installed import load
from wgns.runtime import relay

from .conftest import DATA, one_error


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def tree(root: Path) -> dict:
    return {str(p): (os.readlink(p) if p.is_symlink() else p.read_bytes() if p.is_file()
                     else "dir") for p in sorted(root.rglob("*"))}




# -- the relay -----------------------------------------------------------------

class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


class Echo:
    """A UDP echo server on loopback that prefixes what it returns."""

    def __init__(self, family=socket.AF_INET, host="127.0.0.1", dual=False):
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        if dual:  # IPv6 and IPv4 on one socket
            self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        self.sock.bind((host, 0))
        self.port = self.sock.getsockname()[1]
        self.seen = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            try:
                data, addr = self.sock.recvfrom(65535)
            except OSError:
                return
            self.seen.append(addr)
            self.sock.sendto(b"echo:" + data, addr)

    def close(self):
        self.sock.close()


@pytest.fixture
def echo():
    e = Echo()
    yield e
    e.close()


def listener(host="127.0.0.1", family=socket.AF_INET):
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.bind((host, 0))
    return s


def client(family=socket.AF_INET):
    c = socket.socket(family, socket.SOCK_DGRAM)
    c.settimeout(2)
    return c


def pump(r, times=20):
    for _ in range(times):
        r.step(0.05)


def test_datagrams_reach_the_target_and_replies_come_back_to_each_client(echo):
    lst = listener()
    r = relay.Relay(lst, "127.0.0.1", echo.port)
    a, b = client(), client()
    a.sendto(b"one", lst.getsockname())
    b.sendto(b"two", lst.getsockname())
    pump(r)
    assert a.recvfrom(100) == (b"echo:one", lst.getsockname())
    assert b.recvfrom(100) == (b"echo:two", lst.getsockname())
    assert len(r.flows) == 2 and len(set(echo.seen)) == 2  # a socket per client


def test_a_name_is_resolved_by_the_relay():
    # "localhost" is 127.0.0.1 on some systems and ::1 first on others
    # (Debian sid's /etc/hosts): the echo listens on both (dual stack).
    echo = Echo(socket.AF_INET6, "::", dual=True)
    try:
        lst = listener()
        r = relay.Relay(lst, "localhost", echo.port)
        a = client()
        a.sendto(b"x", lst.getsockname())
        pump(r)
        assert a.recv(100) == b"echo:x"
    finally:
        echo.close()


def test_idle_flows_expire_and_the_relay_exits_after_a_quiet_while(echo):
    clock = Clock()
    lst = listener()
    r = relay.Relay(lst, "127.0.0.1", echo.port, clock=clock)
    a = client()
    a.sendto(b"x", lst.getsockname())
    pump(r)
    assert a.recv(100) == b"echo:x" and len(r.flows) == 1
    clock.t += relay.FLOW_IDLE - 1
    r.step(0)
    assert len(r.flows) == 1 and not r.done()
    clock.t += 1
    r.step(0)
    assert not r.flows and not r.done()
    clock.t += relay.EXIT_IDLE
    assert r.done()


def test_the_oldest_flow_makes_room_beyond_the_limit(echo, monkeypatch):
    monkeypatch.setattr(relay, "MAX_FLOWS", 3)
    lst = listener()
    r = relay.Relay(lst, "127.0.0.1", echo.port)
    clients = [client() for _ in range(4)]
    for i, c in enumerate(clients):
        c.sendto(b"%d" % i, lst.getsockname())
        pump(r, 5)
    assert len(r.flows) == 3
    assert [port for _, port in r.flows] == [c.getsockname()[1] for c in clients[1:]]
    assert clients[3].recv(100) == b"echo:3"


def test_a_target_that_is_down_loses_datagrams_without_harm():
    dead = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dead.bind(("127.0.0.1", 0))
    port = dead.getsockname()[1]
    dead.close()
    lst = listener()
    r = relay.Relay(lst, "127.0.0.1", port)
    a = client()
    for _ in range(3):
        a.sendto(b"x", lst.getsockname())
        pump(r, 3)
    assert len(r.flows) == 1  # the ICMP error did not take the flow or the relay down


def test_an_unknown_name_loses_datagrams_and_counts_them():
    lst = listener()
    r = relay.Relay(lst, "no-such-host.invalid", 9)
    a = client()
    a.sendto(b"x", lst.getsockname())
    pump(r, 3)
    assert r.dropped == 1 and not r.flows


def test_a_wildcard_listener_answers_from_the_address_it_was_sent_to(echo):
    lst = listener("0.0.0.0")
    port = lst.getsockname()[1]
    r = relay.Relay(lst, "127.0.0.1", echo.port)
    a = client()
    a.bind(("127.0.0.1", 0))
    a.sendto(b"x", ("127.0.0.2", port))
    pump(r)
    data, source = a.recvfrom(100)
    assert data == b"echo:x" and source == ("127.0.0.2", port)


def test_ipv6_on_both_sides():
    e = Echo(socket.AF_INET6, "::1")
    try:
        lst = listener("::", socket.AF_INET6)
        r = relay.Relay(lst, "::1", e.port)
        a = client(socket.AF_INET6)
        a.sendto(b"v6", ("::1", lst.getsockname()[1]))
        pump(r)
        data, source = a.recvfrom(100)
        assert data == b"echo:v6" and source[:2] == ("::1", lst.getsockname()[1])
    finally:
        e.close()


def test_without_a_socket_from_systemd_it_refuses(monkeypatch):
    monkeypatch.delenv("LISTEN_PID", raising=False)
    with pytest.raises(OSError, match="no socket from systemd"):
        relay.inherited_socket()


# -- the CLI -------------------------------------------------------------------

@pytest.fixture
def installed(root):
    assert invoke("install", "--conf", DATA / "protonvpn.conf", "--root", root).exit_code == 0
    assert invoke("confine", "app", "--root", root).exit_code == 0
    return root


UNITS = "etc/systemd/system"


def test_reach_writes_a_pair_and_unreach_takes_it_back(installed):
    before = tree(installed)
    r = invoke("reach", "db.lan:5432", "--root", installed)
    assert r.exit_code == 0, r.output
    sock = installed / UNITS / "wgns-wg-reach-5432.socket"
    assert "NetworkNamespacePath=/run/netns/wg\nListenStream=127.0.0.1:5432\n" in sock.read_text()
    svc = (installed / UNITS / "wgns-wg-reach-5432.service").read_text()
    assert "NetworkNamespacePath" not in svc.replace("# ", "")  # the proxy is in the host's
    assert "--exit-idle-time=5min db.lan:5432\n" in svc and "IPAddressDeny" not in svc
    assert (installed / UNITS / "wg.service.wants/wgns-wg-reach-5432.socket").is_symlink()
    r = invoke("unreach", "db.lan:5432", "--root", installed)
    assert r.exit_code == 0, r.output
    assert tree(installed) == before


def test_a_literal_target_is_fenced_to_that_address(installed):
    assert invoke("reach", "[fd00::5]:9696", "--root", installed).exit_code == 0
    svc = (installed / UNITS / "wgns-wg-reach-9696.service").read_text()
    assert "IPAddressDeny=any\nIPAddressAllow=fd00::5\n" in svc
    assert "systemd-socket-proxyd --exit-idle-time=5min \"[fd00::5]:9696\"\n" in svc


def test_udp_reach_and_expose_run_the_relay_in_the_right_namespace(installed):
    assert invoke("reach", "10.1.1.1:53", "--udp", "--at", "127.0.0.53:53",
                  "--root", installed).exit_code == 0
    assert invoke("expose", "app", "27015", "--udp", "--root", installed).exit_code == 0
    reach = (installed / UNITS / "wgns-wg-reach-udp-53.service").read_text()
    expose = (installed / UNITS / "wgns-wg-expose-udp-27015.service").read_text()
    assert "relay wg 10.1.1.1 53\n" in reach and "\nNetworkNamespacePath" not in reach
    assert "relay wg 127.0.0.1 27015\n" in expose
    assert "\nNetworkNamespacePath=/run/netns/wg\n" in expose
    assert "ListenDatagram=127.0.0.53:53" in (
        installed / UNITS / "wgns-wg-reach-udp-53.socket").read_text()
    assert "ListenDatagram=127.0.0.1:27015" in (
        installed / UNITS / "wgns-wg-expose-udp-27015.socket").read_text()
    # TCP and UDP of one port are two exposes; unexpose takes the one asked for
    assert invoke("expose", "app", "27015", "--root", installed).exit_code == 0
    assert invoke("unexpose", "app", "27015", "--udp", "--root", installed).exit_code == 0
    assert not (installed / UNITS / "wgns-wg-expose-udp-27015.socket").exists()
    assert (installed / UNITS / "wgns-wg-expose-27015.socket").exists()


@pytest.mark.parametrize("target", [
    "db.lan", "db.lan:", ":5432", "db.lan:0", "db.lan:65536", "db.lan:+1", "db.lan:٣",
    "-oProxy:22", "0x7f.1:80", "1.2.3:80", "[127.0.0.1]:80", "::1:53", "[fe80::1%eth0]:53",
    "fe80::1%eth0:53", "db%h.lan:5", "db\n.lan:5", "db.lan\nExecStart=/bin/sh:5",
    "a b:5", "0.0.0.0:80", "[::]:80", "224.0.0.1:5353", "255.255.255.255:9",
    "x" * 300 + ":5", "db..lan:5", "a-.lan:5", "ä.lan:5",
    "kOE8djlEXW0ULFbMoyqfOVxKwgRjn2lZr4t6S7khzF8=:1"])
def test_hostile_targets_are_refused_and_change_nothing(installed, target):
    before = tree(installed)
    line = one_error(invoke("reach", "--root", installed, "--", target))
    assert "kOE8djlEXW0ULFbM" not in line
    assert tree(installed) == before


@pytest.mark.parametrize("at", ["0.0.0.0:5432", "10.2.0.2:5432", "[::]:5432", "127.0.0.1",
                                "localhost:5432", "[::1%lo]:5", "127.0.0.1:0", ""])
def test_at_must_be_loopback_inside(installed, at):
    before = tree(installed)
    one_error(invoke("reach", "db.lan:5432", "--at", at, "--root", installed))
    assert tree(installed) == before


def test_one_port_inside_reaches_one_target(installed):
    assert invoke("reach", "db.lan:5432", "--root", installed).exit_code == 0
    before = tree(installed)
    line = one_error(invoke("reach", "other.lan:5432", "--root", installed))
    assert "already reaches db.lan:5432" in line
    assert tree(installed) == before
    # the same port for UDP is another bridge
    assert invoke("reach", "db.lan:5432", "--udp", "--root", installed).exit_code == 0


def test_unreach_of_what_is_not_reached_says_so(installed):
    assert "does not reach" in one_error(invoke("unreach", "db.lan:5432", "--root", installed))
    assert invoke("reach", "db.lan:5432", "--root", installed).exit_code == 0
    one_error(invoke("unreach", "db.lan:5432", "--udp", "--root", installed))


def test_reach_needs_an_installed_tunnel(root):
    before = tree(root)
    one_error(invoke("reach", "db.lan:5432", "--name", "nope", "--root", root))
    assert tree(root) == before


def test_uninstall_takes_bridges_away(installed):
    assert invoke("reach", "db.lan:5432", "--root", installed).exit_code == 0
    assert invoke("expose", "app", "5353", "--udp", "--root", installed).exit_code == 0
    assert invoke("unconfine", "app", "--root", installed).exit_code == 1  # exposed
    assert invoke("unexpose", "app", "5353", "--udp", "--root", installed).exit_code == 0
    assert invoke("unconfine", "app", "--root", installed).exit_code == 0
    assert invoke("uninstall", "--root", installed).exit_code == 0
    assert not list((installed / UNITS).glob("wgns-*"))


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(host=st.one_of(st.text(min_size=1, max_size=40),
                      st.from_regex(r"[a-z0-9._:\[\]%-]{1,30}", fullmatch=True)),
       port=st.integers(-5, 70000))
def test_any_target_is_refused_in_one_line_or_reads_back_exactly(installed, host, port):
    """Whatever HOST:PORT is given: one error line and no change, or a
    pair whose header declares exactly that target, one line each."""
    target = f"{host}:{port}"
    if "\x00" in target:  # no command line can carry a NUL
        return
    for p in [*(installed / UNITS).glob("wgns-wg-reach-*"),  # a failed example's leftovers
              *(installed / UNITS).glob("wg.service.wants/wgns-wg-reach-*")]:
        p.unlink()
    if (installed / UNITS / "wg.service.wants").is_dir():
        (installed / UNITS / "wg.service.wants").rmdir()
    before = tree(installed)
    r = invoke("reach", "--root", installed, "--", target)
    if r.exit_code != 0:
        one_error(r, r.exit_code)
        assert tree(installed) == before
        return
    socks = list((installed / UNITS).glob("wgns-wg-reach-*.socket"))
    assert len(socks) == 1
    text = socks[0].read_text()
    (info,) = load(str(installed), "wg").reaches
    shown = info.target.rpartition(":")[0].strip("[]")
    assert info.target.endswith(f":{port}") and info.proto == "tcp"
    # a name lower-cased and without its trailing dot; IPv6 written compressed
    assert shown == host.rstrip(".").lower() or ":" in host
    for line in text.splitlines():
        assert "\r" not in line and "%" not in line.replace("%%", "")
    assert invoke("unreach", info.target, "--root", installed).exit_code == 0
    assert tree(installed) == before


# -- what the hostile review found ------------------------------------------------

def test_a_name_that_stops_resolving_keeps_its_last_address(echo, monkeypatch):
    clock = Clock()
    lst = listener()
    r = relay.Relay(lst, "db.lan", echo.port, clock=clock)
    calls = []

    def lookup(host, port, type):
        calls.append(host)
        if len(calls) > 1:
            raise socket.gaierror("temporary failure")
        return [(socket.AF_INET, socket.SOCK_DGRAM, 17, "", ("127.0.0.1", port))]

    monkeypatch.setattr(relay.socket, "getaddrinfo", lookup)
    a = client()
    a.sendto(b"1", lst.getsockname())
    pump(r, 3)
    assert a.recv(100) == b"echo:1"
    clock.t += relay.RESOLVE_EVERY
    others = [client() for _ in range(5)]
    for c in others:
        c.sendto(b"2", lst.getsockname())
    pump(r)
    assert len(calls) == 2  # one failed lookup, not one per new client
    assert all(c.recv(100) == b"echo:2" for c in others)  # the last good address


def test_a_failed_lookup_does_not_evict_a_live_flow(echo, monkeypatch):
    monkeypatch.setattr(relay, "MAX_FLOWS", 1)
    lst = listener()
    r = relay.Relay(lst, "no-such-host.invalid", echo.port)
    r._target = (socket.AF_INET, ("127.0.0.1", echo.port))
    r._resolved_at = r.clock()
    a = client()
    a.sendto(b"x", lst.getsockname())
    pump(r, 3)
    assert a.recv(100) == b"echo:x"
    r._target, r._resolved_at = None, -relay.RESOLVE_EVERY  # the name is gone now
    b = client()
    b.sendto(b"y", lst.getsockname())
    pump(r, 3)
    assert list(r.flows) == [("127.0.0.1", a.getsockname()[1])] and r.dropped == 1


@pytest.mark.parametrize("target", ["[::ffff:0.0.0.0]:80", "[::ffff:127.0.0.1]:80",
                                    "[::ffff:224.0.0.1]:80", "[fe80::1]:80",
                                    "1.2.3.4.:80", "host.123:80", "0x7f000001.:2222",
                                    "0x7f.0x1.:80", "0x7f.:80", "127.1:80"])
def test_targets_that_cannot_mean_what_they_show(installed, target):
    before = tree(installed)
    one_error(invoke("reach", target, "--root", installed))
    assert tree(installed) == before


def test_a_name_is_written_one_way(installed):
    assert invoke("reach", "DB.Lan.:5432", "--root", installed).exit_code == 0
    assert "reaches db.lan:5432 (tcp)" in (
        installed / UNITS / "wgns-wg-reach-5432.socket").read_text()
    assert invoke("unreach", "db.LAN:5432", "--root", installed).exit_code == 0


def test_a_reach_cannot_take_an_exposed_port_and_the_reverse(installed):
    assert invoke("expose", "app", "8080", "--root", installed).exit_code == 0
    assert invoke("reach", "db.lan:5432", "--udp", "--root", installed).exit_code == 0
    before = tree(installed)
    assert "exposed" in one_error(invoke("reach", "nas.lan:8080", "--root", installed))
    assert "reach" in one_error(invoke("expose", "app", "5432", "--udp", "--root", installed))
    assert tree(installed) == before
    # other protocol, other bridge
    assert invoke("reach", "nas.lan:8080", "--udp", "--root", installed).exit_code == 0


FORGED = ("# Generated by wgns 9: reaches 10.9.9.9:22 (tcp) from {at} in tunnel {tunnel}. "
          "Do not edit.\n[Socket]\nListenStream={at}\n")


@pytest.mark.parametrize("at,tunnel,name", [
    ("0.0.0.0:22", "wg", "wgns-wg-reach-22"),  # not a loopback address
    ("127.0.0.1:22", "x", "wgns-wg-reach-22"),  # another tunnel's claim on wg's file
    ("127.0.0.1:22", "wg", "wgns-wg-reach-23"),  # renamed
])
def test_a_forged_reach_header_is_not_a_declared_reach(installed, at, tunnel, name):
    (installed / UNITS / f"{name}.socket").write_text(FORGED.format(at=at, tunnel=tunnel))
    assert load(str(installed), "wg").reaches == ()   # the record says what is declared
    before = tree(installed)
    one_error(invoke("unreach", "10.9.9.9:22", "--name", tunnel, "--root", installed))
    assert tree(installed) == before


class FakeSystemd:
    def __init__(self, tunnel="active", start=None, inside=None, states=None):
        self.tunnel, self._start, self.inside = tunnel, start, inside or {}
        self.states = states or {}
        self.calls = []

    def reload(self):
        self.calls.append("reload")

    def active_state(self, unit):
        return self.tunnel if unit == "wg.service" else self.states.get(unit, "active")

    def start(self, unit, timeout=60, mode="replace"):
        self.calls.append(("start", unit, mode))
        if isinstance(self._start, Exception):
            raise self._start
        return self._start or "active"

    def reset_failed(self, unit):
        self.calls.append(("reset_failed", unit))

    def sockets_in_namespace(self, path):
        return self.inside


def test_a_bridge_that_cannot_start_is_taken_back_whatever_systemd_says(installed):
    from wgns.admin.bridges import reach
    from wgns.core.errors import SystemdError, WgnsError
    before = tree(installed)
    for failure in (SystemdError("systemd refused to start: Transaction is destructive"),
                    "failed"):
        sd = FakeSystemd(start=failure)
        with pytest.raises(WgnsError, match="did not start"):
            reach("db.lan:5432", None, False, "wg", str(installed), sd)
        assert ("start", "wgns-wg-reach-5432.socket", "fail") in sd.calls
        assert tree(installed) == before  # the wants directory too


def test_a_stopped_tunnel_is_not_started_by_a_new_bridge(installed):
    from wgns.admin.bridges import reach
    sd = FakeSystemd(tunnel="inactive")
    report = reach("db.lan:5432", None, False, "wg", str(installed), sd)
    assert not any(c[0] == "start" for c in sd.calls if isinstance(c, tuple))
    assert "once wg.service runs" in "\n".join(report.lines)


def test_check_bridges_names_what_is_undeclared_changed_or_down(installed):
    from wgns.admin import check_bridges
    assert invoke("reach", "db.lan:5432", "--root", installed).exit_code == 0
    sock = "wgns-wg-reach-5432.socket"

    def bridges(fake, running=True):
        return check_bridges.bridges(load(str(installed), "wg"), fake, running)
    ok, detail = bridges(FakeSystemd(inside={sock: ["127.0.0.1:5432"]}))
    assert ok and "declared: reach 127.0.0.1:5432->db.lan:5432/tcp" in detail
    ok, detail = bridges(FakeSystemd(inside={
        sock: ["127.0.0.1:5432"], "rogue.socket": ["0.0.0.0:22"]}))
    assert not ok and "UNDECLARED socket units inside the namespace: rogue.socket" in detail
    ok, detail = bridges(FakeSystemd(inside={sock: ["0.0.0.0:5432"]}))
    assert not ok and "listens on 0.0.0.0:5432, declared 127.0.0.1:5432" in detail
    assert invoke("reach", "[fd00::9]:53", "--udp", "--at", "[::1]:5353",
                  "--root", installed).exit_code == 0
    v6 = "wgns-wg-reach-udp-5353.socket"
    ok, detail = bridges(FakeSystemd(inside={
        sock: ["127.0.0.1:5432"], v6: ["[0:0::1]:5353"]}))
    assert ok, detail  # however systemd spells the address
    ok, detail = bridges(FakeSystemd(states={sock: "failed"}))
    assert not ok and "not listening" in detail
    ok, _ = bridges(FakeSystemd(states={sock: "inactive"}), False)
    assert ok  # a stopped tunnel's bridges are down, as they should be


def test_uninstall_takes_away_bridges_whose_header_no_longer_reads(installed):
    """An older wgns's header (a name in capitals, an expose on a zone ID),
    or an edited one: uninstall still removes wgns's files by their names,
    and only this tunnel's (a-reach's files look alike to a glob)."""
    units = installed / UNITS
    assert invoke("install", "--conf", DATA / "protonvpn.conf", "--name", "wg-reach",
                  "--root", installed).exit_code == 0
    assert invoke("reach", "db.lan:5432", "--name", "wg-reach", "--root", installed
                  ).exit_code == 0
    assert invoke("reach", "db.lan:5432", "--root", installed).exit_code == 0
    for path in units.glob("wgns-wg-reach-5432.*"):
        path.write_text(path.read_text().replace("db.lan", "DB.Lan"))
    old = "# Generated by wgns 0.1.0: exposes port 80 of app.service (tunnel wg) on " \
          "[fe80::1%lo]:8082. Do not edit.\n[Socket]\n"
    (units / "wgns-wg-expose-8082.socket").write_text(old)
    (units / "wgns-wg-expose-8082.service").write_text(old)
    assert invoke("uninstall", "--root", installed).exit_code == 0
    left = sorted(p.name for p in units.rglob("wgns-*"))
    assert left == ["wgns-watch.service", "wgns-watch.service",
                    "wgns-wg-reach-reach-5432.service",
                    "wgns-wg-reach-reach-5432.socket", "wgns-wg-reach-reach-5432.socket"], left


@given(st.from_regex(r"[A-Za-z0-9_.x-]{1,20}", fullmatch=True))
@settings(max_examples=300, deadline=None)
def test_a_host_checks_the_same_written_as_given(value):
    """check_host's answer, checked again, is itself: what a unit's header
    holds reads back as the same bridge."""
    from wgns.core.errors import WgnsError
    from wgns.core.names import check_host
    try:
        host = check_host(value, "HOST")
    except WgnsError:
        return
    assert check_host(host, "HOST") == host


def test_a_name_never_resolved_is_tried_again_soon_then_less_often(monkeypatch):
    clock = Clock()
    r = relay.Relay(listener(), "db.lan", 9, clock=clock)
    calls = []

    def lookup(*a, **k):
        calls.append(clock.t)
        raise socket.gaierror("not yet")

    monkeypatch.setattr(relay.socket, "getaddrinfo", lookup)
    for _ in range(200):
        try:
            r.target()
        except OSError:
            pass
        clock.t += 0.5
    gaps = [b - a for a, b in zip(calls, calls[1:])]
    assert gaps[:5] == [1.0, 2.0, 4.0, 8.0, 16.0] and set(gaps[5:]) == {30.0}, gaps


@pytest.mark.parametrize("venv", ["/var/tmp/wgns-venv", "/tmp/wgns-venv"])
def test_a_copy_under_tmp_runs_its_relays_and_forwarding_as_root_without_capabilities(
        root, monkeypatch, venv):
    """DynamicUser=yes implies PrivateTmp=yes, which PrivateTmp=no does not
    undo: a venv under /tmp or /var/tmp was hidden from the dynamic user,
    the relays never started and port forwarding stayed 'activating'. The
    hardening container scenario runs all three from a venv in /var/tmp."""
    from wgns.admin import store
    from wgns.core import copy, paths
    monkeypatch.setattr(store, "python_path", lambda: f"{venv}/bin/python3")
    monkeypatch.setattr(paths, "helper_path",
                        lambda: f"{venv}/lib/python3/site-packages/wgns/helper.py")
    monkeypatch.setattr(copy, "readable_by_all", lambda path: True)  # 0755 all the way
    units = root / "etc/systemd/system"
    (units / "game.service").write_text("[Service]\n")
    for args in (["install", "--conf", DATA / "protonvpn.conf"], ["confine", "game"],
                 ["expose", "game", "27015", "--udp"], ["reach", "192.168.1.2:53", "--udp"],
                 ["port-forward"]):
        r = CliRunner().invoke(app, [*map(str, args), "--root", str(root)])
        assert r.exit_code == 0, r.output
    for unit in ("wgns-wg-expose-udp-27015.service", "wgns-wg-reach-udp-53.service",
                 "wgns-wg-forward.service"):
        text = (units / unit).read_text()
        assert "DynamicUser=yes" not in text and "PrivateTmp=no" in text, unit
        assert "(DynamicUser= implies PrivateTmp=)" in text, unit
        assert "CapabilityBoundingSet=\n" in text, unit


def test_where_the_interpreter_really_is_counts(tmp_path, monkeypatch):
    """A hostile pass: a venv whose python is a link to a pyenv build under
    /root (as this machine's Python 3.9 is) got ProtectHome=yes and a
    dynamic user, and its units could not run their interpreter; one linked
    into /var/tmp got a private /tmp."""
    import stat as stat_

    from wgns.core import copy
    venv = tmp_path / "venv/bin"
    venv.mkdir(parents=True)
    (venv / "python3").symlink_to("/root/.pyenv/versions/3.11.9/bin/python3.11")
    (venv / "python-tmp").symlink_to("/var/tmp/build/bin/python3")
    helper = "/usr/lib/python3/dist-packages/wgns/helper.py"
    assert copy.sandbox_values(str(venv / "python3"), helper)["protect_home"] == "read-only"
    assert copy.in_private_tmp(str(venv / "python-tmp"), helper)
    # readable by all on the way to the link, not on the way to its target
    real = os.path.realpath(venv / "python3")

    def fake_stat(p, *args, **kwargs):
        mode = 0o700 if str(p) in ("/root", real) or str(p).startswith("/root/") else 0o755
        return os.stat_result((stat_.S_IFDIR | mode, 0, 0, 0, 0, 0, 0, 0, 0, 0))
    monkeypatch.setattr(copy.os, "stat", fake_stat)
    assert not copy.readable_by_all(str(venv / "python3"))
    assert copy.readable_by_all(helper)

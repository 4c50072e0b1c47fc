"""Port forwarding without a network: the NAT-PMP packets (recorded bytes,
RFC 6886), the renewal clock, the epoch rule, the forwarder's loop against
a scripted gateway, the settings and the login file, the unit it writes."""

import json
import os
import struct

import pytest
from typer.testing import CliRunner

from wgns.cli import app
from wgns.core import portconf
from wgns.core.errors import WgnsError
from wgns.runtime import natpmp
from wgns.runtime.clients import ClientError
from wgns.runtime.forwarder import Forwarder

from .conftest import DATA

GW = "10.2.0.1"

# Requests as a NAT-PMP gateway receives them (RFC 6886 3.2, 3.3).
ADDRESS_REQUEST = bytes.fromhex("0000")
MAP_UDP_REQUEST = bytes.fromhex("0001 0000 0001 0000 0000003c")      # internal 1, any, 60 s
MAP_TCP_REQUEST = bytes.fromhex("0002 0000 c383 c383 0000003c")      # 50051 -> 50051
# Replies as ProtonVPN's gateway sends them.
ADDRESS_REPLY = bytes.fromhex("0080 0000 00000e10 cb007105")         # epoch 3600, 203.0.113.5
MAP_UDP_REPLY = bytes.fromhex("0081 0000 00000e10 0001 c383 0000003c")
REFUSED_REPLY = bytes.fromhex("0081 0002 00000e10 0001 0000 00000000")


def test_requests_are_the_rfc_bytes():
    assert natpmp.address_request() == ADDRESS_REQUEST
    assert natpmp.map_request("udp", 1, 0) == MAP_UDP_REQUEST
    assert natpmp.map_request("tcp", 50051, 50051) == MAP_TCP_REQUEST
    assert natpmp.map_request("udp", 50051, 0, lifetime=0)[-4:] == b"\0\0\0\0"


@pytest.mark.parametrize("internal,external,lifetime", [
    (0, 0, 60), (65536, 0, 60), (1, -1, 60), (1, 0, 2 ** 32)])
def test_request_refuses_out_of_range(internal, external, lifetime):
    with pytest.raises(ValueError):
        natpmp.map_request("udp", internal, external, lifetime)


def test_replies_parse():
    assert natpmp.parse_address(ADDRESS_REPLY, GW) == (3600, "203.0.113.5")
    m = natpmp.parse_map(MAP_UDP_REPLY, "udp", GW, 1)
    assert (m.epoch, m.internal, m.external, m.lifetime) == (3600, 1, 50051, 60)


@pytest.mark.parametrize("code", [1, 2, 3, 4, 5, 77])
def test_result_codes_are_errors_that_say_what(code):
    reply = bytes.fromhex("0081") + struct.pack("!HI", code, 5) + bytes(8)
    with pytest.raises(natpmp.GatewayError) as e:
        natpmp.parse_map(reply, "udp", GW, 1)
    assert e.value.code == code and GW in str(e.value)
    if code == 2:
        assert "not authorized" in str(e.value) and "ProtonVPN" in str(e.value)


@pytest.mark.parametrize("reply", [
    b"", b"\0", MAP_UDP_REPLY[:15],                      # short
    bytes.fromhex("0082") + MAP_UDP_REPLY[2:],           # an answer about TCP
    bytes.fromhex("0181") + MAP_UDP_REPLY[2:],           # version 1, success
    ADDRESS_REPLY,
    MAP_UDP_REPLY[:8] + bytes.fromhex("0002") + MAP_UDP_REPLY[10:]])   # about port 2
def test_replies_that_do_not_answer_are_ignored(reply):
    with pytest.raises(natpmp.BadReply):
        natpmp.parse_map(reply, "udp", GW, 1)


def test_renewal_timing():
    assert natpmp.renew_after(60) == 45
    assert natpmp.renew_after(3600) == 45
    assert natpmp.renew_after(10) == 5
    assert natpmp.renew_after(1) == 1
    assert natpmp.retry_timeouts() == [0.25, 0.5, 1, 2, 4, 8, 16, 32, 64]


def test_epoch_rule():
    e = natpmp.Epoch()
    assert not e.reset(1000, 0.0)
    assert not e.reset(1045, 45.0)       # on time
    assert not e.reset(1085, 90.0)       # a slow clock, within 7/8 and 2 s
    assert e.reset(1110, 135.0)          # slower than 7/8: it lost its state
    assert e.reset(3, 180.0)             # went back: the gateway restarted
    assert not e.reset(48, 225.0)
    assert e.reset(50, 325.0)            # 100 s of ours, 2 of its: lost state


class Gateway:
    """A scripted NAT-PMP gateway: answers from the packets it is sent, the
    way ProtonVPN's does (one port for UDP and TCP), or stays silent."""

    def __init__(self, port=50051, epoch=3600):
        self.port, self.epoch, self.silent, self.refuse = port, epoch, False, False
        self.sent: list[bytes] = []
        self.now = 0.0

    def exchange(self, packet, timeout):
        self.sent.append(packet)
        if self.silent:
            self.now += timeout
            return None
        if packet == ADDRESS_REQUEST:
            return struct.pack("!BBHI", 0, 128, 0, self.epoch) + bytes([203, 0, 113, 5])
        _, op, _, internal, _, lifetime = struct.unpack("!BBHHHI", packet)
        if self.refuse:
            return struct.pack("!BBHIHHI", 0, 128 + op, 2, self.epoch, internal, 0, 0)
        return struct.pack("!BBHIHHI", 0, 128 + op, 0, self.epoch, internal, self.port,
                           min(lifetime, 60))


class FakeClient:
    what = "client"

    def __init__(self, port=6881, fail=0):
        self.listen, self.fail, self.calls = port, fail, []

    def port(self):
        if self.fail:
            self.fail -= 1
            raise ClientError("client at http://127.0.0.1:1 cannot be reached (refused)")
        return self.listen

    def set_port(self, port):
        self.calls.append(port)
        self.listen = port


def forwarder(tmp_path, gw, clients=()):
    logs: list[str] = []
    fw = Forwarder("wg", GW, list(clients), tmp_path, transport=gw, clock=lambda: gw.now,
                   wall=lambda: 1_700_000_000 + gw.now, sleep=lambda s: None,
                   log=logs.append)
    return fw, logs


def step(fw):
    """One round of the forwarder, then one of its clients' thread (here, in
    this thread: what the clients are told, without a race)."""
    wait = fw.step()
    fw.sync.round()
    return wait


def test_maps_udp_then_tcp_on_one_port_and_publishes(tmp_path):
    gw, client = Gateway(), FakeClient()
    fw, logs = forwarder(tmp_path, gw, [client])
    assert step(fw) == 45
    ops = [p[1] for p in gw.sent if len(p) == 12]
    assert ops == [1, 1, 2]           # UDP, UDP again with internal = external, TCP
    assert struct.unpack("!HH", gw.sent[1][4:8]) == (50051, 50051)
    assert (tmp_path / "forwarded-port").read_text() == "50051\n"
    state = json.loads((tmp_path / "forward.json").read_text())
    assert state["port"] == 50051 and state["error"] is None
    assert state["external_address"] == "203.0.113.5"
    assert state["clients"] == [{"client": "client", "synced": True, "error": None,
                                 "restart": False}]
    assert client.calls == [50051]
    assert (tmp_path / "forwarded-port").stat().st_mode & 0o777 == 0o644


def test_renewal_asks_for_the_same_port_and_follows_a_new_one(tmp_path):
    gw, client = Gateway(), FakeClient()
    fw, logs = forwarder(tmp_path, gw, [client])
    step(fw)
    gw.sent.clear()
    gw.now += 45
    gw.epoch += 45
    step(fw)
    assert struct.unpack("!HH", gw.sent[0][4:8]) == (50051, 50051)
    assert client.calls == [50051]      # unchanged: not told again
    gw.now += 45
    gw.epoch, gw.port = 2, 40001        # the gateway restarted, another port
    step(fw)
    assert (tmp_path / "forwarded-port").read_text() == "40001\n"
    assert client.calls == [50051, 40001]
    assert any("restarted" in line for line in logs)


def test_a_client_that_changed_its_port_is_corrected_at_renewal(tmp_path):
    gw, client = Gateway(), FakeClient()
    fw, _ = forwarder(tmp_path, gw, [client])
    step(fw)
    client.listen = 6881                # restarted with its old setting
    gw.now += 45
    gw.epoch += 45
    step(fw)
    assert client.calls == [50051, 50051]


def test_a_failing_client_is_retried_with_backoff_and_never_stops_the_mapping(tmp_path):
    gw, client = Gateway(), FakeClient(fail=3)
    fw, logs = forwarder(tmp_path, gw, [client])
    step(fw)
    assert (tmp_path / "forwarded-port").read_text() == "50051\n"
    state = json.loads((tmp_path / "forward.json").read_text())
    assert "cannot be reached" in state["clients"][0]["error"]
    waits = []
    for _ in range(3):
        waits.append(fw.sync.retry_at[0] - gw.now)
        gw.now = fw.sync.retry_at[0]
        fw.sync.round()
    assert waits == [2, 4, 8]
    assert client.calls == [50051] and fw.sync.errors[0] is None
    assert sum("trying again" in line for line in logs) == 1   # said once, not every time


def test_a_refusing_gateway_is_reported_and_asked_again_later(tmp_path):
    gw = Gateway()
    gw.refuse = True
    fw, _ = forwarder(tmp_path, gw)
    assert step(fw) == 30
    state = json.loads((tmp_path / "forward.json").read_text())
    assert "not authorized" in state["error"] and state["port"] is None
    assert not (tmp_path / "forwarded-port").exists()


def test_a_silent_gateway_retries_as_the_rfc_says_then_drops_the_port(tmp_path):
    gw = Gateway()
    fw, logs = forwarder(tmp_path, gw)
    step(fw)
    gw.now += 45
    gw.silent = True
    gw.sent.clear()
    assert step(fw) == 0
    assert len(gw.sent) == 9 and gw.now == 45 + 127.75
    state = json.loads((tmp_path / "forward.json").read_text())
    assert "does not answer" in state["error"] and state["port"] is None
    assert not (tmp_path / "forwarded-port").exists()
    assert any("no longer forwarded" in line for line in logs)
    gw.silent = False
    step(fw)
    assert (tmp_path / "forwarded-port").read_text() == "50051\n"


def test_settings_round_trip_and_refuse_hostile_values():
    s = portconf.Settings("10.2.0.1", "http://127.0.0.1:8080",
                          "http://[::1]:9091/transmission/rpc", "echo $WGNS_PORT")
    text = portconf.render(s, "# header")
    assert portconf.parse(text, "f") == s
    assert s.hosts() == ["10.2.0.1", "127.0.0.1", "::1"]
    for bad in ("gateway=10.2.0.1\nExecStart=/bin/sh", "gateway=10.2.0.1%eth0",
                "gateway=fd00::1", "gateway=10.2.0.1\ngateway=10.2.0.2", "qbittorrent=x"):
        with pytest.raises(WgnsError):
            portconf.parse(bad, "f")


@pytest.mark.parametrize("url", [
    "ftp://127.0.0.1/", "http://user:pw@127.0.0.1:8080", "http://qbt.lan:8080",
    "http://127.0.0.1:8080/?a=b", "http://127.0.0.1:8080\nExecStart=x", "http://::1:8080",
    "http://127.0.0.1:99999", "http://127.0.0.1:0", "http://127.0.0.1/%i$x", "http:///x",
    "http://[fe80::1%25eth0]:8080"])
def test_urls_refused(url):
    with pytest.raises(WgnsError) as e:
        portconf.check_url(url, "--qbittorrent")
    assert "\n" not in str(e.value) and "pw" not in str(e.value)


def test_login_file(tmp_path):
    assert portconf.parse_login("# mine\nusername=admin\npassword=a b=c\n", "f") == (
        "admin", "a b=c")
    for bad in ("username=a", "password=x\npassword=y\nusername=a", "user=a\npassword=b",
                "username=a\npassword=b\x1b[2J"):
        with pytest.raises(WgnsError) as e:
            portconf.parse_login(bad, "f")
        assert "b\x1b" not in str(e.value) and "=y" not in str(e.value)


def test_default_gateway():
    import ipaddress
    g = portconf.default_gateway
    assert g([ipaddress.ip_interface("10.2.0.2/32")]) == "10.2.0.1"
    assert g([ipaddress.ip_interface("fd00::2/128"),
              ipaddress.ip_interface("10.66.0.7/16")]) == "10.66.0.1"
    with pytest.raises(WgnsError):
        g([ipaddress.ip_interface("fd00::2/128")])


def test_credentials_readable_by_others_are_refused(tmp_path):
    from wgns.admin.forward import read_login
    f = tmp_path / "login"
    f.write_text("username=admin\npassword=hunter2hunter2\n")
    os.chmod(f, 0o640)
    with pytest.raises(WgnsError) as e:
        read_login(str(f))
    assert "chmod 600" in str(e.value) and "hunter2" not in str(e.value)
    os.chmod(f, 0o600)
    assert read_login(str(f)) == ("admin", "hunter2hunter2")


class RfcGateway(Gateway):
    """A gateway as RFC 6886 (and miniupnpd) has it: a mapping is keyed by
    (protocol, internal port), forwards to that internal port, and a port
    held by one mapping is not handed to another."""

    def __init__(self):
        super().__init__()
        self.maps: dict[tuple[int, int], int] = {}
        self.next = 50051

    def exchange(self, packet, timeout):
        self.sent.append(packet)
        if packet == ADDRESS_REQUEST:
            return struct.pack("!BBHI", 0, 128, 0, self.epoch) + bytes([203, 0, 113, 5])
        _, op, _, internal, suggested, lifetime = struct.unpack("!BBHHHI", packet)
        key = (op, internal)
        if lifetime == 0:
            self.maps.pop(key, None)
            return struct.pack("!BBHIHHI", 0, 128 + op, 0, self.epoch, internal, 0, 0)
        if key not in self.maps:
            taken = {p for (o, _), p in self.maps.items() if o == op}
            port = suggested if suggested and suggested not in taken else self.next
            while port in taken:
                port += 1
            self.maps[key] = port
            self.next = port + 1
        return struct.pack("!BBHIHHI", 0, 128 + op, 0, self.epoch, internal, self.maps[key],
                           min(lifetime, 60))


def test_an_rfc_gateway_ends_up_forwarding_the_port_to_the_same_port(tmp_path):
    gw = RfcGateway()
    fw, _ = forwarder(tmp_path, gw)
    step(fw)
    port = fw.port
    assert port is not None
    # UDP and TCP each map exactly port -> port, and nothing else is left.
    assert gw.maps == {(1, port): port, (2, port): port}
    gw.sent.clear()
    gw.now += 45
    step(fw)                        # a renewal keeps it, without the dance
    assert fw.port == port and len([p for p in gw.sent if len(p) == 12]) == 2


class _Units:
    def __init__(self, state: str) -> None:
        self.state = state

    def active_state(self, unit):
        return self.state


@pytest.mark.parametrize("unit_state", ["active", "inactive"])
def test_state_without_a_published_file_is_no_port_not_an_error(root, tmp_path, monkeypatch,
                                                              unit_state):
    """What `status` (and the watcher's metrics) read while the tunnel is
    stopped, or before the unit first publishes: no port, never a failure."""
    for args in (["install", "--conf", str(DATA / "protonvpn.conf")], ["port-forward"]):
        r = CliRunner().invoke(app, [*args, "--root", str(root)])
        assert r.exit_code == 0, r.output
    from wgns.core import forward_state, paths
    from wgns.core.installed import load
    monkeypatch.setattr(paths, "RUN_DIR", str(tmp_path / "run"))
    st = forward_state.state(load(str(root), "wg"), _Units(unit_state))
    assert st is not None and st["port"] is None
    assert st["error"] == (None if unit_state == "active" else
                           "wgns-wg-forward.service is inactive")
    (tmp_path / "run/wg").mkdir(parents=True)
    (tmp_path / "run/wg/forward.json").write_text("{garbage")
    assert forward_state.state(load(str(root), "wg"), _Units(unit_state))["port"] is None

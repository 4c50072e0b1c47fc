"""Metrics: the Prometheus text `render` makes of status dicts (exact text,
escaping, the restarts file however broken), the atomic textfile, the
watcher's `update`, `wgns status --prometheus`, and `wgns install
--metrics-dir` (hostile values refused in one line with nothing written,
the drop-in's exact text, uninstall removing it). The container `metrics`
scenario scrapes the same text through Debian's real node-exporter."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from wgns.admin import metrics_dir
from wgns.cli import app
from wgns.core import files as core_files
from wgns.core import metrics_text as metrics
from wgns.core.config import parse_wgquick
from wgns.core.errors import WgnsError
from wgns.core.files import write_atomic
from wgns.core.installed import load
from wgns.core.record import Record
from wgns.runtime import metrics as writer

from .conftest import DATA, GOOD, PRIV, PUB

PEER2 = "ZmFrZS1wZWVyLWtleS1mb3ItdGVzdHMtb25seS0wMDA="


def tunnel(name: str = "wg", **over) -> dict:
    """A status dict as status.gather returns it, with a private key
    planted where a careless renderer might print it."""
    st_ = {
        "name": name, "unit": f"{name}.service", "state": "active",
        "namespace": f"/run/netns/{name}", "implementation": "userspace",
        "interface": {"name": name, "up": True, "mtu": 1420, "addresses": ["10.2.0.2/32"]},
        "dns": ["10.2.0.1"], "search": [], "private_key": PRIV,
        "peers": [{"public_key": PUB, "endpoint": "198.51.100.1:51820",
                   "latest_handshake": 1700000000, "handshake_age": 12,
                   "rx_bytes": 123456789012, "tx_bytes": 42, "preshared_key": PRIV},
                  {"public_key": PEER2, "endpoint": None, "latest_handshake": None,
                   "handshake_age": None, "rx_bytes": 0, "tx_bytes": 0}],
        "confined": [{"unit": "a.service", "state": "active"},
                     {"unit": "b.service", "state": "active"},
                     {"unit": "c.service", "state": "failed"}],
        "exposed": [{"unit": "a.service", "port": 8080, "listen": "127.0.0.1:8080"}],
        "reached": [{"target": "db.lan:5432", "proto": "tcp", "at": "127.0.0.1:5432"},
                    {"target": "[::1]:53", "proto": "udp", "at": "127.0.0.1:53"}],
        "port_forward": {"port": 50051, "renewed_age": 7, "gateway": "10.2.0.1",
                         "error": None, "clients": []},
    }
    st_.update(over)
    return st_


GOLDEN = """\
# HELP wgns_tunnel_up 1 when the tunnel's unit is active and its WireGuard link exists.
# TYPE wgns_tunnel_up gauge
wgns_tunnel_up{tunnel="wg"} 1
wgns_tunnel_up{tunnel="tr"} 0
# HELP wgns_tunnel_info The tunnel's WireGuard implementation (none while down).
# TYPE wgns_tunnel_info gauge
wgns_tunnel_info{tunnel="wg",implementation="userspace"} 1
wgns_tunnel_info{tunnel="tr",implementation="none"} 1
# HELP wgns_peer_latest_handshake_seconds Unix time of the latest handshake (0: never).
# TYPE wgns_peer_latest_handshake_seconds gauge
wgns_peer_latest_handshake_seconds{tunnel="wg",peer="@PUB@"} 1700000000
wgns_peer_latest_handshake_seconds{tunnel="wg",peer="@PEER2@"} 0
# HELP wgns_peer_handshake_age_seconds Seconds since the latest handshake (+Inf: never).
# TYPE wgns_peer_handshake_age_seconds gauge
wgns_peer_handshake_age_seconds{tunnel="wg",peer="@PUB@"} 12
wgns_peer_handshake_age_seconds{tunnel="wg",peer="@PEER2@"} +Inf
# HELP wgns_peer_receive_bytes_total Bytes received from the peer.
# TYPE wgns_peer_receive_bytes_total counter
wgns_peer_receive_bytes_total{tunnel="wg",peer="@PUB@"} 123456789012
wgns_peer_receive_bytes_total{tunnel="wg",peer="@PEER2@"} 0
# HELP wgns_peer_transmit_bytes_total Bytes sent to the peer.
# TYPE wgns_peer_transmit_bytes_total counter
wgns_peer_transmit_bytes_total{tunnel="wg",peer="@PUB@"} 42
wgns_peer_transmit_bytes_total{tunnel="wg",peer="@PEER2@"} 0
# HELP wgns_confined_units Units confined to the tunnel, by systemd active state.
# TYPE wgns_confined_units gauge
wgns_confined_units{tunnel="wg",state="active"} 2
wgns_confined_units{tunnel="wg",state="activating"} 0
wgns_confined_units{tunnel="wg",state="deactivating"} 0
wgns_confined_units{tunnel="wg",state="reloading"} 0
wgns_confined_units{tunnel="wg",state="inactive"} 0
wgns_confined_units{tunnel="wg",state="failed"} 1
wgns_confined_units{tunnel="tr",state="active"} 0
wgns_confined_units{tunnel="tr",state="activating"} 0
wgns_confined_units{tunnel="tr",state="deactivating"} 0
wgns_confined_units{tunnel="tr",state="reloading"} 0
wgns_confined_units{tunnel="tr",state="inactive"} 0
wgns_confined_units{tunnel="tr",state="failed"} 0
# HELP wgns_exposed_ports Ports of confined units exposed on the host (wgns expose).
# TYPE wgns_exposed_ports gauge
wgns_exposed_ports{tunnel="wg"} 1
wgns_exposed_ports{tunnel="tr"} 0
# HELP wgns_reached_ports Services outside that confined units reach (wgns reach).
# TYPE wgns_reached_ports gauge
wgns_reached_ports{tunnel="wg"} 2
wgns_reached_ports{tunnel="tr"} 0
# HELP wgns_forwarded_port The port forwarded over NAT-PMP (0: none yet), when on.
# TYPE wgns_forwarded_port gauge
wgns_forwarded_port{tunnel="wg"} 50051
# HELP wgns_port_forward_renewed_age_seconds Seconds since the port was last renewed.
# TYPE wgns_port_forward_renewed_age_seconds gauge
wgns_port_forward_renewed_age_seconds{tunnel="wg"} 7
# HELP wgns_watcher_restarts_total Restarts of the tunnel by the watcher, by reason.
# TYPE wgns_watcher_restarts_total counter
wgns_watcher_restarts_total{tunnel="wg",reason="link_gone"} 2
wgns_watcher_restarts_total{tunnel="wg",reason="netns_gone"} 0
wgns_watcher_restarts_total{tunnel="wg",reason="endpoint_moved"} 1
wgns_watcher_restarts_total{tunnel="wg",reason="backoff"} 0
wgns_watcher_restarts_total{tunnel="tr",reason="link_gone"} 0
wgns_watcher_restarts_total{tunnel="tr",reason="netns_gone"} 0
wgns_watcher_restarts_total{tunnel="tr",reason="endpoint_moved"} 0
wgns_watcher_restarts_total{tunnel="tr",reason="backoff"} 0
""".replace("@PUB@", PUB).replace("@PEER2@", PEER2)


# The text of tunnel("wg") alone, no restarts file: what the watcher writes
# after its header, and (twice, per family) what status --prometheus prints.
ONE_WG = """\
# HELP wgns_tunnel_up 1 when the tunnel's unit is active and its WireGuard link exists.
# TYPE wgns_tunnel_up gauge
wgns_tunnel_up{tunnel="wg"} 1
# HELP wgns_tunnel_info The tunnel's WireGuard implementation (none while down).
# TYPE wgns_tunnel_info gauge
wgns_tunnel_info{tunnel="wg",implementation="userspace"} 1
# HELP wgns_peer_latest_handshake_seconds Unix time of the latest handshake (0: never).
# TYPE wgns_peer_latest_handshake_seconds gauge
wgns_peer_latest_handshake_seconds{tunnel="wg",peer="@PUB@"} 1700000000
wgns_peer_latest_handshake_seconds{tunnel="wg",peer="@PEER2@"} 0
# HELP wgns_peer_handshake_age_seconds Seconds since the latest handshake (+Inf: never).
# TYPE wgns_peer_handshake_age_seconds gauge
wgns_peer_handshake_age_seconds{tunnel="wg",peer="@PUB@"} 12
wgns_peer_handshake_age_seconds{tunnel="wg",peer="@PEER2@"} +Inf
# HELP wgns_peer_receive_bytes_total Bytes received from the peer.
# TYPE wgns_peer_receive_bytes_total counter
wgns_peer_receive_bytes_total{tunnel="wg",peer="@PUB@"} 123456789012
wgns_peer_receive_bytes_total{tunnel="wg",peer="@PEER2@"} 0
# HELP wgns_peer_transmit_bytes_total Bytes sent to the peer.
# TYPE wgns_peer_transmit_bytes_total counter
wgns_peer_transmit_bytes_total{tunnel="wg",peer="@PUB@"} 42
wgns_peer_transmit_bytes_total{tunnel="wg",peer="@PEER2@"} 0
# HELP wgns_confined_units Units confined to the tunnel, by systemd active state.
# TYPE wgns_confined_units gauge
wgns_confined_units{tunnel="wg",state="active"} 2
wgns_confined_units{tunnel="wg",state="activating"} 0
wgns_confined_units{tunnel="wg",state="deactivating"} 0
wgns_confined_units{tunnel="wg",state="reloading"} 0
wgns_confined_units{tunnel="wg",state="inactive"} 0
wgns_confined_units{tunnel="wg",state="failed"} 1
# HELP wgns_exposed_ports Ports of confined units exposed on the host (wgns expose).
# TYPE wgns_exposed_ports gauge
wgns_exposed_ports{tunnel="wg"} 1
# HELP wgns_reached_ports Services outside that confined units reach (wgns reach).
# TYPE wgns_reached_ports gauge
wgns_reached_ports{tunnel="wg"} 2
# HELP wgns_forwarded_port The port forwarded over NAT-PMP (0: none yet), when on.
# TYPE wgns_forwarded_port gauge
wgns_forwarded_port{tunnel="wg"} 50051
# HELP wgns_port_forward_renewed_age_seconds Seconds since the port was last renewed.
# TYPE wgns_port_forward_renewed_age_seconds gauge
wgns_port_forward_renewed_age_seconds{tunnel="wg"} 7
# HELP wgns_watcher_restarts_total Restarts of the tunnel by the watcher, by reason.
# TYPE wgns_watcher_restarts_total counter
wgns_watcher_restarts_total{tunnel="wg",reason="link_gone"} 0
wgns_watcher_restarts_total{tunnel="wg",reason="netns_gone"} 0
wgns_watcher_restarts_total{tunnel="wg",reason="endpoint_moved"} 0
wgns_watcher_restarts_total{tunnel="wg",reason="backoff"} 0
""".replace("@PUB@", PUB).replace("@PEER2@", PEER2)


def tr_then_wg(text: str) -> str:
    """TEXT of tunnel wg with tunnel tr's identical samples before wg's, in
    every family (the order of the tunnels given)."""
    out: list[str] = []
    block: list[str] = []
    for line in text.splitlines():
        if line.startswith("# HELP") and block:
            out += block
            block = []
        if line.startswith("#"):
            out.append(line)
        else:
            out.append(line.replace('tunnel="wg"', 'tunnel="tr"'))
            block.append(line)
    return "\n".join(out + block) + "\n"


def down(name: str) -> dict:
    """A stopped tunnel: no namespace, no device, peers from its config."""
    return tunnel(name, state="inactive", namespace=None, interface=None, implementation=None,
                  peers=[], confined=[], exposed=[], reached=[], port_forward=None)


def test_render_exact_text(tmp_path):
    (tmp_path / "wg.restarts").write_text('{"link_gone": 2, "endpoint_moved": 1}\n')
    text = metrics.render([tunnel("wg"), down("tr")], run_dir=str(tmp_path))
    assert text == GOLDEN
    assert PRIV not in text
    assert metrics.render([], run_dir=str(tmp_path)) == ""


def test_forwarding_on_without_a_port_is_zero_and_off_is_absent(tmp_path):
    waiting = {"port": None, "renewed_age": None, "error": "no answer", "clients": []}
    text = metrics.render([tunnel(port_forward=waiting)], run_dir=str(tmp_path))
    assert 'wgns_forwarded_port{tunnel="wg"} 0\n' in text
    assert "wgns_port_forward_renewed_age_seconds" not in text
    text = metrics.render([tunnel(port_forward=None)], run_dir=str(tmp_path))
    assert "wgns_forwarded_port" not in text


def test_up_needs_the_active_unit_and_the_link(tmp_path):
    def up(**over) -> str:
        text = metrics.render([tunnel(**over)], run_dir=str(tmp_path))
        return re.search(r'^wgns_tunnel_up\{tunnel="wg"\} (\d)$', text, re.M).group(1)
    assert up() == "1"
    assert up(interface=None) == "0"
    assert up(state="activating") == "0"
    assert up(state="unknown") == "0"


def unescape(value: str) -> str:
    """The text format's label value, read back as Prometheus' parser does."""
    return re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), value,
                  flags=re.S)


def series(text: str) -> list[tuple[str, dict[str, str], str]]:
    """Parse sample lines strictly: name{label="value",...} value. Lines end
    at a line feed only, as in Prometheus' parser (not at str.splitlines'
    other separators)."""
    out = []
    for line in filter(None, text.split("\n")):
        if line.startswith("#"):
            assert re.fullmatch(r"# (HELP|TYPE) wgns_[a-z_]+ .*", line), line
            continue
        m = re.fullmatch(r'(wgns_[a-z_]+)\{((?:[a-z_]+="(?:[^"\\\n]|\\.)*",?)*)\} (\S+)', line,
                         flags=re.S)
        assert m, line
        labels = dict((k, unescape(v)) for k, v in re.findall(
            r'([a-z_]+)="((?:[^"\\]|\\.)*)"', m.group(2), flags=re.S))
        out.append((m.group(1), labels, m.group(3)))
    return out


HOSTILE = 'a"b\\c\nd} e="f'


def test_label_values_are_escaped(tmp_path):
    st_ = tunnel(HOSTILE, implementation=HOSTILE, confined=[
        {"unit": "x\\x2dy.service", "state": HOSTILE}])
    st_["peers"][0]["public_key"] = HOSTILE
    text = metrics.render([st_], run_dir=str(tmp_path))
    assert 'wgns_tunnel_up{tunnel="a\\"b\\\\c\\nd} e=\\"f"} 1\n' in text
    parsed = series(text)
    assert all(labels["tunnel"] == HOSTILE for _, labels, _ in parsed)
    assert ("wgns_tunnel_info", {"tunnel": HOSTILE, "implementation": HOSTILE}, "1") in parsed
    assert ("wgns_confined_units", {"tunnel": HOSTILE, "state": HOSTILE}, "1") in parsed
    assert ("wgns_peer_transmit_bytes_total", {"tunnel": HOSTILE, "peer": HOSTILE},
            "42") in parsed


@given(st.text())
def test_any_label_value_reads_back(value):
    line = f'wgns_tunnel_up{{tunnel="{metrics._label(value)}"}} 1'
    assert "\n" not in line
    assert series(line) == [("wgns_tunnel_up", {"tunnel": value}, "1")]


@pytest.mark.parametrize("content", [
    b"", b"garbage", b"[1, 2]", b"null", b'"link_gone"', b"\xff\xfe{}", b"{" * 100000,
    b'{"link_gone": "3", "netns_gone": -1, "endpoint_moved": 2.5, "backoff": true}',
    b'{"link_gone": null, "netns_gone": {}, "endpoint_moved": [], "backoff": 1e400}',
])
def test_a_garbage_restarts_file_counts_zero(tmp_path, content):
    (tmp_path / "wg.restarts").write_bytes(content)
    assert metrics.restarts("wg", str(tmp_path)) == dict.fromkeys(metrics.REASONS, 0)
    text = metrics.render([tunnel()], run_dir=str(tmp_path))
    assert 'wgns_watcher_restarts_total{tunnel="wg",reason="link_gone"} 0' in text


def test_the_restarts_file_is_read_only_when_it_is_a_plain_file(tmp_path):
    real = tmp_path / "elsewhere"
    real.write_text('{"link_gone": 5}')
    (tmp_path / "wg.restarts").symlink_to(real)
    assert metrics.restarts("wg", str(tmp_path))["link_gone"] == 0
    (tmp_path / "tr.restarts").mkdir()
    assert metrics.restarts("tr", str(tmp_path))["link_gone"] == 0
    os.mkfifo(tmp_path / "x.restarts")  # never blocks
    assert metrics.restarts("x", str(tmp_path))["link_gone"] == 0
    (tmp_path / "ok.restarts").write_text('{"backoff": 3, "surprise": 9, "link_gone": 0}')
    assert metrics.restarts("ok", str(tmp_path)) == {
        "link_gone": 0, "netns_gone": 0, "endpoint_moved": 0, "backoff": 3}
    assert metrics.restarts("absent", str(tmp_path)) == dict.fromkeys(metrics.REASONS, 0)


def test_the_restarts_file_is_found_in_run_dir_at_call_time(tmp_path, monkeypatch):
    """The default is looked up when called (tests and the watcher's
    callers never read another /run/wgns than the one meant)."""
    monkeypatch.setattr(metrics, "RUN_DIR", str(tmp_path))
    (tmp_path / "wg.restarts").write_text('{"netns_gone": 4}')
    assert metrics.restarts("wg")["netns_gone"] == 4
    assert 'reason="netns_gone"} 4\n' in metrics.render([tunnel()])


# -- the textfile --------------------------------------------------------------

def test_write_textfile_is_atomic_and_world_readable(tmp_path):
    old = os.umask(0o077)  # the watcher's UMask=
    try:
        path = tmp_path / "wgns-wg.prom"
        path.write_text("old\n")
        write_atomic(str(path), "new\n")
    finally:
        os.umask(old)
    assert path.read_text() == "new\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wgns-wg.prom"]


def test_write_textfile_failing_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "wgns-wg.prom"
    path.write_text("old\n")
    staged = []

    def refuse(src, dst):
        staged.append(os.path.basename(src))
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(core_files.os, "replace", refuse)
    with pytest.raises(OSError):
        write_atomic(str(path), "new\n")
    assert path.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wgns-wg.prom"]
    # node-exporter reads *.prom: a half-written temporary never matches it
    assert staged[0].startswith(".") and not staged[0].endswith(".prom")


@pytest.fixture
def gathered(monkeypatch):
    """state.gather replaced at the boundary (netlink, systemd, /etc)."""
    import wgns.admin.status
    calls = []

    def gather(record, sd, deep=True):
        calls.append((record.name, sd))
        return tunnel(record.name)
    monkeypatch.setattr(wgns.admin.status, "gather", gather)
    monkeypatch.setattr(writer, "gather", gather)
    monkeypatch.setattr(metrics, "RUN_DIR", "/nonexistent")
    return calls


def record(name: str, directory: str | None = None) -> Record:
    return Record(tunnel=parse_wgquick(GOOD, "x.conf", name), python="/usr/bin/python3",
                  helper="/x/helper.py", metrics_dir=directory)


def update(name: str, directory: str) -> bool:
    """The watcher's write of tunnel NAME's metrics into DIRECTORY."""
    return writer.update(record(name, directory), None)


def test_update_writes_one_file_per_tunnel(tmp_path, gathered):
    assert update("wg", str(tmp_path)) is True
    assert update("tr", str(tmp_path)) is True
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wgns-tr.prom", "wgns-wg.prom"]
    text = (tmp_path / "wgns-wg.prom").read_text()
    first, rest = text.split("\n", 1)
    assert first.startswith("# Generated by wgns ") and "tunnel wg" in first
    assert rest == ONE_WG
    assert PRIV not in text
    assert update("wg", str(tmp_path)) is True  # its own file: replaced


def test_update_without_the_directory_writes_nothing(tmp_path, gathered):
    assert update("wg", str(tmp_path / "absent")) is False
    assert gathered == [] and not (tmp_path / "absent").exists()


def test_update_and_remove_leave_a_foreign_file_alone(tmp_path, gathered):
    foreign = tmp_path / "wgns-wg.prom"
    foreign.write_text("# someone else's\nfoo 1\n")
    with pytest.raises(WgnsError, match="not written by wgns"):
        update("wg", str(tmp_path))
    assert metrics_dir.remove("wg", str(tmp_path)) is False
    assert foreign.read_text() == "# someone else's\nfoo 1\n"
    foreign.unlink()
    foreign.symlink_to(tmp_path / "target")
    with pytest.raises(WgnsError):
        update("wg", str(tmp_path))
    assert not (tmp_path / "target").exists()


def test_remove_takes_only_its_own_file(tmp_path, gathered):
    update("wg", str(tmp_path))
    (tmp_path / "node.prom").write_text("node 1\n")
    assert metrics_dir.remove("wg", str(tmp_path)) is True
    assert metrics_dir.remove("wg", str(tmp_path)) is False
    assert sorted(p.name for p in tmp_path.iterdir()) == ["node.prom"]


# -- wgns status --prometheus -------------------------------------------------

def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


class FakeSystemd:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


@pytest.fixture
def live(monkeypatch, gathered):
    """`wgns status` on a 'live system' with tunnels wg and tr: root, systemd
    and what status reads (netlink, /etc) replaced at their boundary."""
    import wgns.admin.status
    import wgns.admin.store
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(wgns.admin.status, "Systemd", FakeSystemd)
    monkeypatch.setattr(wgns.admin.status, "installed", lambda root: ["tr", "wg"])
    monkeypatch.setattr(wgns.admin.status, "load", lambda root, name: record(name))
    monkeypatch.setattr(wgns.admin.store, "require_tunnel", lambda root, name: None)
    return gathered


def test_status_prometheus_prints_the_text_format(live):
    r = invoke("status", "--prometheus")
    assert r.exit_code == 0, r.output
    assert r.output == tr_then_wg(ONE_WG)
    assert [name for name, _ in live] == ["tr", "wg"]
    r = invoke("status", "--prometheus", "--name", "wg")
    assert r.exit_code == 0 and 'tunnel="tr"' not in r.output and 'tunnel="wg"' in r.output
    assert PRIV not in r.output


def test_status_json_and_prometheus_exclude_each_other(live):
    for args in (("--json", "--prometheus"), ("--prometheus", "--json", "--name", "wg")):
        r = invoke("status", *args)
        assert r.exit_code == 2
        assert r.output == "wgns: error: --json and --prometheus exclude each other\n"
    assert live == []


# -- wgns install --metrics-dir -------------------------------------------------

def files(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() if p.is_file() else "dir"
            for p in sorted(root.rglob("*")) if not p.is_symlink()}


def install(root: Path, *extra):
    return invoke("install", "--conf", DATA / "protonvpn.conf", "--root", root, *extra)


DROPIN = "etc/systemd/system/wgns-watch.service.d/90-wgns-metrics-wg.conf"


def test_metrics_dir_drop_in_exact_text(root):
    (root / "srv/metrics").mkdir(parents=True)
    r = install(root, "--metrics-dir", "/srv/metrics")
    assert r.exit_code == 0, r.output
    assert r.output.splitlines()[-1] == (
        "the watcher writes the metrics of tunnel wg to /srv/metrics/wgns-wg.prom")
    dropin = root / DROPIN
    assert stat.S_IMODE(dropin.stat().st_mode) == 0o644
    assert dropin.read_text() == (
        "# Generated by wgns 0.2.0: wgns-watch.service may write the metrics of tunnel wg in "
        "/srv/metrics. Do not edit; wgns install --metrics-dir changes it, wgns uninstall "
        "removes it.\n"
        "[Service]\n"
        "ReadWritePaths=-/srv/metrics\n")
    assert load(str(root), "wg").metrics_dir == "/srv/metrics"


def test_metrics_dir_with_space_percent_and_dollar(root):
    odd = "/srv/wgns metrics 100%h $HOME"
    (root / odd.lstrip("/")).mkdir(parents=True)
    r = install(root, "--metrics-dir", odd)
    assert r.exit_code == 0, r.output
    text = (root / DROPIN).read_text()
    assert text.splitlines()[1:] == [
        "[Service]",
        'ReadWritePaths="-/srv/wgns metrics 100%%h $HOME"']  # no $ expansion
    assert load(str(root), "wg").metrics_dir == odd


def test_metrics_dir_with_a_single_quote(root):
    """Unquoted, systemd read the ' as the start of a quoted part and
    ignored both settings ("Failed to extract first word"); test_verify has
    systemd parse it, the metrics container scenario reads it back."""
    (root / "srv/it's").mkdir(parents=True)
    r = install(root, "--metrics-dir", "/srv/it's")
    assert r.exit_code == 0, r.output
    assert (root / DROPIN).read_text().splitlines()[2:] == ['ReadWritePaths="-/srv/it\'s"']
    assert load(str(root), "wg").metrics_dir == "/srv/it's"


@pytest.mark.parametrize("value,fragment", [
    ("srv/metrics", "must be an absolute path"),
    ("", "must be an absolute path"),
    ("/srv/metrics/", "trailing '/'"),
    ("/srv/../srv/metrics", "'..'"),
    ("/srv/missing", "No such file or directory (hint: create it first)"),
    ("/srv/link", "symbolic link"),
    ("/srv/via/metrics", "symbolic link"),
    ("/srv/file", "not a directory"),
    ("/srv/me\ntrics", "control character"),
    ("/srv/me\rtrics", "control character"),
    ('/srv/me"trics', "quote or a backslash"),
    ("/srv/me\\trics", "quote or a backslash"),
    ("/", "sandbox cannot write there"),
    ("/tmp/metrics", "sandbox cannot write there"),
    ("/home/me", "sandbox cannot write there"),
    ("/etc", "holds /etc/"),
    ("/etc/systemd", "is /etc/systemd, where"),
    # below wgns's own folders and systemd's (the watcher was given them)
    ("/etc/wgns/wg", "is inside /etc/wgns"),
    ("/etc/wgns", "is /etc/wgns"),
    ("/etc/systemd/system/sshd.service.d", "is inside /etc/systemd"),
    ("/etc/systemd/system/multi-user.target.wants", "is inside /etc/systemd"),
    ("/etc/systemd/system/wg.service.wants", "is inside /etc/systemd"),
    ("/usr/lib/systemd/system", "is inside /usr/lib/systemd"),
    ("/etc/wireguard", "is /etc/wireguard"),
    ("/usr/local/lib/systemd/system", "is inside /usr/local/lib/systemd"),
    ("/usr/local/bin", "is /usr/local/bin"),
])
def test_bad_metrics_dir_is_one_line_and_writes_nothing(root, value, fragment):
    for d in ("etc/wgns/wg", "etc/systemd/system/sshd.service.d", "etc/wireguard",
              "etc/systemd/system/multi-user.target.wants", "usr/lib/systemd/system",
              "etc/systemd/system/wg.service.wants", "usr/local/lib/systemd/system",
              "usr/local/bin"):
        (root / d).mkdir(parents=True, exist_ok=True)
    srv = root / "srv"
    (srv / "metrics").mkdir(parents=True)
    (srv / "file").write_text("x")
    (srv / "link").symlink_to("metrics")
    (srv / "via").symlink_to(".")
    before = files(root)
    r = invoke("install", "--conf", DATA / "protonvpn.conf", "--root", root,
               "--metrics-dir", value)
    assert r.exit_code == 1, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wgns: error: --metrics-dir"), r.output
    assert fragment in lines[0]
    assert "Traceback" not in r.output
    assert files(root) == before


def test_the_live_system_wants_a_root_owned_directory(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    with pytest.raises(WgnsError, match="sandbox"):  # /tmp: hidden from the watcher
        metrics_dir.check_dir(str(d), "/", "/usr/bin/python3")
    os.chown(d, 65534, 65534)
    mirror = tmp_path / "root"
    (mirror / "srv").mkdir(parents=True)
    (mirror / "srv/m").mkdir()
    os.chown(mirror / "srv/m", 65534, 65534)
    # an image's owners may be set later: not checked below --root
    assert metrics_dir.check_dir("/srv/m", str(mirror), "/usr/bin/python3") == "/srv/m"


def test_the_package_and_interpreter_directories_are_refused():
    import sysconfig
    with pytest.raises(WgnsError, match="holds /"):
        metrics_dir.check_dir("/usr", "/", "/usr/bin/python3")
    package = os.path.dirname(os.path.dirname(metrics_dir.__file__))
    for inside in (package, package + "/units", "/usr/bin/x",
                   sysconfig.get_paths()["stdlib"] + "/json"):
        # (a pyenv build's stdlib under /root is refused as hidden first)
        with pytest.raises(WgnsError, match="is (inside )?/|sandbox cannot write"):
            metrics_dir.check_dir(inside, "/", "/usr/bin/python3")


def test_reinstall_keeps_the_directory_and_uninstall_removes_the_drop_in(root):
    before = files(root)
    (root / "srv/metrics").mkdir(parents=True)
    assert install(root, "--metrics-dir", "/srv/metrics").exit_code == 0
    assert install(root).exit_code == 0  # an update without the option keeps it
    assert load(str(root), "wg").metrics_dir == "/srv/metrics"
    r = invoke("uninstall", "--root", root)
    assert r.exit_code == 0, r.output
    (root / "srv/metrics").rmdir()
    (root / "srv").rmdir()
    assert files(root) == before


def test_a_foreign_drop_in_is_never_overwritten(root):
    (root / "srv").mkdir()
    foreign = root / DROPIN
    foreign.parent.mkdir(parents=True)
    foreign.write_text("[Service]\nEnvironment=X=1\n")
    r = install(root, "--metrics-dir", "/srv")
    assert r.exit_code == 1 and "not written by wgns" in r.output
    assert not (root / "etc/wgns/wg.conf").exists()
    assert foreign.read_text() == "[Service]\nEnvironment=X=1\n"


def test_a_new_metrics_dir_is_where_the_watcher_writes_next(tmp_path, gathered):
    """install --metrics-dir NEW on a running tunnel: the old file goes,
    and the watcher, which reads the directory from the record each time
    it writes, writes the new one and never the old one again (with a
    directory in its environment, it wrote the old file back within 2
    minutes, and node-exporter served frozen metrics for ever)."""
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    new.mkdir()
    update("wg", str(old))
    metrics_dir.moved("wg", str(old), str(new))
    update("wg", str(new))               # the watcher's next write, from the record
    assert not (old / "wgns-wg.prom").exists() and (new / "wgns-wg.prom").exists()


class WatchUnit:
    """systemd at its boundary for the watcher's restart after an install:
    a real process stands for the running watcher, and a restart ends it
    (as the stop half of a restart job does, before the new one starts)."""

    def __init__(self, running: bool) -> None:
        import subprocess
        self.proc = subprocess.Popen(["sleep", "60"]) if running else None
        self.calls: list[str] = []

    def main_pid(self, unit):
        return self.proc.pid if self.proc and self.proc.poll() is None else 0

    def _end(self):
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait()

    def restart(self, unit, wait=True):
        self.calls.append(f"restart {unit}")
        self._end()
        return "queued"

    def restart_if_running(self, unit):
        self.calls.append(f"try-restart {unit}")
        self._end()


class InstallUnits(WatchUnit):
    """What else a live install asks of systemd: the tunnel starts."""

    def known(self, unit):
        return False

    def reload(self):
        self.calls.append("reload")

    def try_restart(self, unit):
        self.calls.append(f"try-restart {unit}")
        return "active"


@pytest.mark.parametrize("start", [True, False])
def test_a_reinstall_with_a_new_metrics_dir_restarts_the_watcher(tmp_path, gathered, start):
    """With or without --no-start, the watcher is restarted on the new
    ReadWritePaths= (without it, the one of an install --no-start could not
    write the new directory and wrote nothing), and the file in the old
    one goes once the old process has ended."""
    from wgns.admin import tunnels
    root, old, new = tmp_path / "root", tmp_path / "old", tmp_path / "new"
    for d in (root, old, new):
        d.mkdir()
    tunnel = parse_wgquick(GOOD, "x.conf", "wg")
    tunnels.install(tunnel, str(root), "/usr/bin/python3", None, metrics=str(old))
    update("wg", str(old))
    sd = InstallUnits(running=True)
    tunnels.install(tunnel, str(root), "/usr/bin/python3", sd, start=start, metrics=str(new))
    watcher = [c for c in sd.calls if c.endswith("wgns-watch.service")]
    assert watcher == [("restart" if start else "try-restart") + " wgns-watch.service"]
    assert not (old / "wgns-wg.prom").exists()


def test_a_failed_removal_leaves_the_watcher_restarted(tmp_path, gathered, monkeypatch):
    """The removal of the old file failing (an immutable file, a read-only
    mount) comes after the watcher's restart: it is never left stopped."""
    from wgns.admin import tunnels
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    new.mkdir()
    update("wg", str(old))
    sd = WatchUnit(running=True)

    def refuse(name, directory):
        raise PermissionError(1, "Operation not permitted", f"{directory}/wgns-{name}.prom")
    monkeypatch.setattr(metrics_dir, "remove", refuse)
    with pytest.raises(PermissionError):
        tunnels._watcher_to(sd, record("wg", str(old)), record("wg", str(new)), False)
    assert sd.calls == ["restart wgns-watch.service"]


# -- the watcher's write races a command ----------------------------------------

@pytest.fixture
def installed_as(monkeypatch):
    """What /etc/wgns says when the watcher's write looks again."""
    now: dict[str, Record] = {}
    monkeypatch.setattr(writer, "installed", lambda root: sorted(now))
    monkeypatch.setattr(writer, "load", lambda root, name: now[name])
    monkeypatch.setattr(writer, "LOCK_WAIT", 0.3)
    return now


def test_a_tunnel_uninstalled_while_gathered_gets_no_file_back(tmp_path, installed_as):
    rec = record("wg", str(tmp_path))
    installed_as["wg"] = rec
    assert writer.write_current(rec, "wgns_tunnel_up 1\n") is True
    (tmp_path / "wgns-wg.prom").unlink()            # uninstall removed it...
    del installed_as["wg"]                          # ...and the record
    assert writer.write_current(rec, "wgns_tunnel_up 1\n") is False
    assert list(tmp_path.iterdir()) == []


def test_a_new_metrics_dir_while_gathered_leaves_the_old_one_empty(tmp_path, installed_as):
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    new.mkdir()
    installed_as["wg"] = record("wg", str(new))
    assert writer.write_current(record("wg", str(old)), "x 1\n") is False
    assert list(old.iterdir()) == []


def test_a_busy_writers_lock_defers_the_write(tmp_path, installed_as):
    import fcntl
    rec = record("wg", str(tmp_path))
    installed_as["wg"] = rec
    fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)              # a wgns command holds it
        assert writer.write_current(rec, "x 1\n") is None
    finally:
        os.close(fd)
    assert list(tmp_path.iterdir()) == []

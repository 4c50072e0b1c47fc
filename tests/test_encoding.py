"""Values that are not UTF-8 (issue 19, finding 9). A byte of another
encoding in argv (a Latin-1 directory name, \\xff in a command) reaches
Python as a lone surrogate; written into a unit or a settings file it ended
in a UnicodeEncodeError traceback (the rollback worked). Every option that
takes text now says so in one line, and nothing changes on disk."""

from __future__ import annotations

import pytest

from wgns.admin import store

from .conftest import DATA
from .test_adversarial import assert_same_tree, error_line, invoke, run_wgns, snapshot

LATIN1 = "r\udce9al"      # 'réal' in Latin-1, as Python decodes argv
FF = "\udcff"


@pytest.fixture
def installed(root, tmp_path):
    (root / "etc/systemd/system/app.service").write_text("[Service]\nExecStart=/bin/true\n")
    for args in (("install", "--conf", DATA / "protonvpn.conf"), ("confine", "app")):
        r = invoke(*args, "--root", root)
        assert r.exit_code == 0, r.output
    (root / "srv" / LATIN1).mkdir(parents=True)
    return root


CASES = {
    "metrics-dir": ("install", "--conf", DATA / "protonvpn.conf", "--metrics-dir",
                    f"/srv/{LATIN1}"),
    "name": ("install", "--conf", DATA / "protonvpn.conf", "--name", f"w{FF}"),
    "address": ("install", "--address", f"10.0.0.{FF}/32", "--private-key-file", "/x",
                "--peer", "p", "--endpoint", "h:1"),
    "endpoint": ("install", "--address", "10.0.0.2/32", "--private-key-file",
                 DATA / "protonvpn.conf", "--peer", "p", "--endpoint", f"h{FF}:1"),
    "dns": ("install", "--address", "10.0.0.2/32", "--private-key-file", "/x", "--peer", "p",
            "--endpoint", "h:1", "--dns", f"1.1.1.{FF}"),
    "confine": ("confine", f"a{FF}pp"),
    "unconfine": ("unconfine", f"a{FF}pp"),
    "expose-unit": ("expose", f"a{FF}pp", "80"),
    "expose-listen": ("expose", "app", "80", "--listen", f"127.0.0.{FF}:80"),
    "reach": ("reach", f"db{FF}.lan:5432"),
    "reach-at": ("reach", "db.lan:5432", "--at", f"127.0.0.{FF}:1"),
    "gateway": ("port-forward", "--gateway", f"10.2.0.{FF}"),
    "qbittorrent": ("port-forward", "--qbittorrent", f"http://127.0.0.1:8080/{FF}"),
    "transmission": ("port-forward", "--transmission", f"http://127.0.0.1:9091/{FF}"),
    "exec": ("port-forward", "--exec", f"echo {FF}"),
    "credentials": ("port-forward", "--qbittorrent", "http://127.0.0.1:8080",
                    "--credentials", f"/nonexistent/{FF}"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_value_that_is_not_utf8_is_one_line(installed, case):
    before = snapshot(installed)
    r = invoke(*CASES[case], "--root", installed)
    line = error_line(r, code=r.exit_code if r.exit_code in (1, 2) else 1)
    assert line.isprintable(), line
    assert_same_tree(before, snapshot(installed))


def test_an_interpreter_path_that_is_not_utf8_is_one_line(root, monkeypatch):
    monkeypatch.setattr(store, "python_path", lambda: f"/opt/{LATIN1}/bin/python3")
    before = snapshot(root)
    r = invoke("install", "--conf", DATA / "protonvpn.conf", "--root", root)
    assert "not valid UTF-8" in error_line(r)
    assert_same_tree(before, snapshot(root))


def test_a_latin1_byte_in_argv_is_one_line(installed):
    """The same through a real argv (bytes) and a real stderr."""
    before = snapshot(installed)
    p = run_wgns("install", "--conf", DATA / "protonvpn.conf", "--metrics-dir",
                 f"/srv/{LATIN1}", "--root", installed)
    assert "not valid UTF-8" in error_line(p)
    assert_same_tree(before, snapshot(installed))

"""What an error message shows (issue 19, finding 10). The rule: no output
ever holds 12 consecutive characters of a key or a password that wgns read
(from any file, whole or wrapped); values that are not secrets, such as
paths and names given on the command line, are shown. Before, any run of
12 letters, digits, '+' or '/' was hidden as "key material":
/var/lib/prometheus/node-exporter, /etc/systemd and most real paths."""

from __future__ import annotations

import os

import pytest

from .conftest import DATA
from .test_adversarial import (
    KEY,
    KEY_LINES,
    assert_same_tree,
    error_line,
    invoke,
    leaked,
    snapshot,
)

PASSWORD = "Tr0ub4dor&3-correct-horse"


@pytest.fixture
def installed(root):
    (root / "etc/systemd/system/app.service").write_text("[Service]\nExecStart=/bin/true\n")
    for args in (("install", "--conf", DATA / "protonvpn.conf"), ("confine", "app")):
        r = invoke(*args, "--root", root)
        assert r.exit_code == 0, r.output
    (root / "srv").mkdir()
    return root


SHOWN = {
    "missing-node-exporter-dir": (
        ("install", "--conf", DATA / "protonvpn.conf", "--metrics-dir",
         "/var/lib/prometheus/node-exporter"), "/var/lib/prometheus/node-exporter"),
    "protected-dir": (("install", "--conf", DATA / "protonvpn.conf", "--metrics-dir",
                       "/etc/systemd"), "/etc/systemd"),
    "relative-dir": (("install", "--conf", DATA / "protonvpn.conf", "--metrics-dir",
                      "var/lib/prometheus"), "var/lib/prometheus"),
    "unit-name": (("confine", "/etc/systemd/system/transmission.service"),
                  "/etc/systemd/system/transmission.service"),
    "reach-at": (("reach", "nas.lan:445", "--at", "192.168.100.200:445"),
                 "192.168.100.200:445"),
    "listen": (("expose", "app", "80", "--listen", "transmissiondaemon:80"),
               "transmissiondaemon"),
    "gateway": (("port-forward", "--gateway", "gatewayofmyprovider"), "gatewayofmyprovider"),
    "url": (("port-forward", "--qbittorrent", "ftp://qbittorrentwebui/"),
            "ftp://qbittorrentwebui/"),
}


@pytest.mark.parametrize("case", sorted(SHOWN))
def test_an_ordinary_value_is_shown(installed, case):
    args, value = SHOWN[case]
    before = snapshot(installed)
    line = error_line(invoke(*args, "--root", installed))
    assert repr(value) in line, line
    assert_same_tree(before, snapshot(installed))


def test_a_key_pasted_where_a_path_goes_is_not_shown(root):
    r = invoke("install", "--address", "10.2.0.2/32", "--private-key-file", KEY, "--peer",
               "Pt7r+VTb1O41rnoK2YlztUwTcjDRUCucx3VVwHf5hmU=", "--endpoint", "h:1",
               "--root", root)
    error_line(r)
    assert not leaked(r.output), r.output


@pytest.mark.parametrize("case", sorted(KEY_LINES))
def test_a_key_in_a_broken_wg_quick_file_never_shows_12_of_its_characters(tmp_path, root,
                                                                         case):
    conf = tmp_path / "bad.conf"
    conf.write_text(KEY_LINES[case])
    r = invoke("install", "--conf", conf, "--root", root)
    assert not leaked(r.output, n=12), r.output


LOGINS = {
    "twice": f"username=admin\npassword={PASSWORD}\npassword={PASSWORD}\n",
    "no-equals": f"username=admin\n{PASSWORD}\n",
    "wrapped": f"username=admin\npassword={PASSWORD[:12]}\n{PASSWORD[12:]}\n",
    "as-key": f"username=admin\n{PASSWORD}=x\n",
    "control": f"username=admin\npassword={PASSWORD}\x1b\n",
    "no-username": f"password={PASSWORD}\n",
}


@pytest.mark.parametrize("case", sorted(LOGINS))
@pytest.mark.parametrize("mode", [0o600, 0o644])
def test_a_password_never_shows(installed, tmp_path, case, mode):
    login = tmp_path / "login"
    login.write_text(LOGINS[case])
    os.chmod(login, mode)
    before = snapshot(installed)
    r = invoke("port-forward", "--qbittorrent", "http://127.0.0.1:8080", "--credentials",
               login, "--root", installed)
    error_line(r)
    assert not leaked(r.output, (PASSWORD,), n=12), r.output
    assert_same_tree(before, snapshot(installed))

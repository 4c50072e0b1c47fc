"""Hostile review (after 0.2.0): records and /etc/wgns as a careless or
hostile admin leaves them. Each bad input is one line and changes nothing;
one tunnel's trouble never blocks the commands of another."""

from __future__ import annotations

import json
import shutil

import pytest

from .test_adversarial import (  # noqa: F401  (write_guard: the autouse guard)
    assert_same_tree,
    error_line,
    install_ok,
    invoke,
    snapshot,
    write_guard,
)

RECORD = "etc/wgns/wg/record.json"


def _installed(root):
    install_ok(root)
    r = invoke("confine", "app.service", "--root", root)
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("copy", ["wg.old.conf", "WG.conf", "...conf",
                                  "wgns-x.conf"])
def test_a_stray_copy_in_etc_wgns_is_no_tunnel_and_blocks_nothing(root, copy):
    """`cp wg.conf wg.old.conf` in /etc/wgns: before, every writing command
    (uninstall of the real tunnel included) failed with "--name: invalid
    tunnel name 'wg.old'", an option nobody gave."""
    _installed(root)
    shutil.copy(root / "etc/wgns/wg.conf", root / "etc/wgns" / copy)
    for args in (["unconfine", "app.service"], ["migrate"], ["confine", "app.service"],
                 ["uninstall", "--name", "wg"]):
        r = invoke(*args, "--root", root)
        assert r.exit_code == 0, (args, r.output)
    assert (root / "etc/wgns" / copy).is_file()     # not wgns's to remove


def _break(root, how: str) -> None:
    p = root / RECORD
    text = p.read_text()
    if how == "not utf-8":
        p.write_bytes(text.encode()[:-3] + b"\xff\xfe\n")
    elif how == "huge":
        p.write_text(text.rstrip() + " " * (1 << 20) + "\n")
    elif how == "symlink":
        (root / "elsewhere.json").write_text(text)
        p.unlink()
        p.symlink_to(root / "elsewhere.json")
    elif how == "no marker":
        p.write_text(text.split("\n", 1)[1])
    elif how == "fifo":
        import os
        p.unlink()
        os.mkfifo(p, 0o600)


@pytest.mark.parametrize("how", ["not utf-8", "huge", "symlink", "no marker", "fifo"])
@pytest.mark.parametrize("args", [["migrate", "--downgrade"], ["migrate"],
                                  ["confine", "app2.service"], ["uninstall"]])
def test_a_record_that_cannot_be_read_is_one_line_and_nothing_changes(root, how, args):
    """Before, a record.json wgns could not read (a link, too large, not
    UTF-8) was taken for none: the tunnel was adopted again from its files
    as an older wgns's, and `migrate --downgrade` removed the record."""
    (root / "etc/systemd/system/app2.service").write_text("[Service]\nExecStart=/bin/true\n")
    _installed(root)
    _break(root, how)
    before = snapshot(root)
    line = error_line(invoke(*args, "--root", root))
    assert "/etc/wgns/wg/record.json: " in line and str(root) not in line, line
    assert_same_tree(before, snapshot(root))


FORGED_FORWARD = {
    "a file URL": {"qbittorrent": "file:///etc/shadow"},
    "a login in a URL": {"transmission": "http://u:p@127.0.0.1:9091/transmission/rpc"},
    "an rTorrent URL of another scheme": {"rtorrent": "gopher://127.0.0.1:70"},
    "a gateway that is not one": {"gateway": "127.0.0.1"},
    "an --exec with a NUL": {"command": "echo\x00hi"},
    "a username with a newline": {"login": ["admin\npassword=x", "secret-pw"]},
    "a password with a newline": {"logins": {"deluge": ["", "secret-pw\nusername=x"]},
                                  "deluge": "http://127.0.0.1:8112"},
}


@pytest.mark.parametrize("case", sorted(FORGED_FORWARD))
def test_a_forged_forward_in_a_record_is_one_line_and_nothing_is_written(root, case):
    """record.json's port forwarding is checked as `wgns port-forward` checks
    its options: before, a forged one was rendered as it was (a file://
    URL, a login whose newline made a line of its own in forward.login),
    for the unit to fail on at its start."""
    (root / "etc/systemd/system/app2.service").write_text("[Service]\nExecStart=/bin/true\n")
    _installed(root)
    p = root / RECORD
    head, body = p.read_text().split("\n", 1)
    data = json.loads(body)
    data["format"] = 2
    data["forward"] = {"method": "natpmp", "gateway": "10.2.0.1", "port": None,
                       "qbittorrent": "http://127.0.0.1:8080", **FORGED_FORWARD[case]}
    p.write_text(head + "\n" + json.dumps(data) + "\n")
    before = snapshot(root)
    line = error_line(invoke("confine", "app2.service", "--root", root))
    assert line.startswith("wgns: error: /etc/wgns/wg/record.json: "), line
    assert "secret-pw" not in line
    assert_same_tree(before, snapshot(root))


@pytest.mark.parametrize("key,value", [("confined", ["wg.service"]),
                                       ("confined", ["netns@wg.service"]),
                                       ("confined", ["wgns-watch.service"]),
                                       ("metrics_dir", "relative/dir")])
def test_a_forged_record_that_confines_wgns_itself_is_one_line(root, key, value):
    (root / "etc/systemd/system/app2.service").write_text("[Service]\nExecStart=/bin/true\n")
    _installed(root)
    p = root / RECORD
    head, body = p.read_text().split("\n", 1)
    data = json.loads(body)
    data[key] = value
    p.write_text(head + "\n" + json.dumps(data) + "\n")
    before = snapshot(root)
    line = error_line(invoke("confine", "app2.service", "--root", root))
    assert line.startswith("wgns: error: /etc/wgns/wg/record.json: "), line
    assert_same_tree(before, snapshot(root))


def test_a_downgrade_killed_half_way_is_healed_by_the_next_migrate(root, monkeypatch):
    """Killed after the older watchers were written and before the records
    went: before, `wgns migrate` said every tunnel was this version's and
    left wgns-watch@NAME.service enabled beside wgns-watch.service (two
    watchers healing each tunnel from the next boot), and no command took
    them away."""
    import wgns.admin.migrate as migrate
    install_ok(root)
    units = root / "etc/systemd/system"
    before = snapshot(root)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(migrate, "remove_owned", killed)
    invoke("migrate", "--downgrade", "--root", root)
    monkeypatch.undo()
    assert (units / "multi-user.target.wants/wgns-watch@wg.service").is_symlink()
    r = invoke("migrate", "--root", root)
    assert r.exit_code == 0, r.output
    assert_same_tree(before, snapshot(root))

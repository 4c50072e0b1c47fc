"""Hostile review (after 0.2.0): records and /etc/wgns as a careless or
hostile admin leaves them. Each bad input is one line and changes nothing;
one tunnel's trouble never blocks the commands of another."""

from __future__ import annotations

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

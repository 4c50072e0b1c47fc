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

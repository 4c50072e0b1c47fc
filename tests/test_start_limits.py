"""systemd's default start limit (5 starts in 10 s, then the unit fails
with start-limit-hit and stays down) against what restarts wgns's units.
Every restart of a tunnel restarts every unit bound to it (BindsTo=): port
forwarding, each bridge's socket and its running proxy. Six quick
restarts of the tunnel (a script re-running `wgns install`; several
`wgns port-forward` settings in a row restart the forwarder itself) left
them failed while the tunnel ran and the command said all was well. The
tunnel, its namespace and the watcher already had no limit; every other
unit wgns writes is restarted by them, so none has one (a crash loop is
paced by RestartSec=, or by a socket's trigger limit)."""

from __future__ import annotations

from pathlib import Path

import pytest

from wgns.core.paths import MARKER

GOLDEN = Path(__file__).parent / "golden"


def text(golden: Path) -> str:
    """A golden file's text (its first line is the file's mode)."""
    return golden.read_text().split("\n", 1)[1]


UNITS = sorted(p for p in GOLDEN.glob("*/etc/systemd/system/*")
               if p.suffix in (".service", ".socket") and p.is_file()
               and text(p).startswith(MARKER))


def test_the_golden_trees_hold_every_kind_of_unit():
    names = {p.name for p in UNITS}
    for kind in ("-forward.service", "-expose-8080.socket", "-expose-8080.service",
                 "-reach-5432.socket", "-reach-5432.service", "-expose-udp-27015.service",
                 "-reach-udp-53.service", "netns@.service", "wgns-watch.service"):
        assert any(n.endswith(kind) for n in names), kind


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: f"{p.parts[-5]}/{p.name}")
def test_no_unit_wgns_writes_has_a_start_limit(unit):
    unit_section = text(unit).split("\n[", 2)[1]
    assert unit_section.startswith("Unit]")
    assert "\nStartLimitIntervalSec=0\n" in unit_section, (
        f"{unit.name}: restarted with its tunnel, it fails after 5 restarts in 10 s")

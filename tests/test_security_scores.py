"""docs/units.md's sandboxing table against live `systemd-analyze security`
scores. The guest scenarios record a score per kind of unit
(security.record: info lines "security:KIND"); here, on the host, each is
compared with the table's column for the guest's systemd version, within
0.3. A score that could not be read, a kind that a scenario should have
measured and did not, or a version without a column, fails.

The table has one score column per systemd version ("systemd 252",
"systemd 257", ...): a further version is a further column, read without
changing this file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .harness import security

UNITS_DOC = Path(__file__).resolve().parents[1] / "docs" / "units.md"
TOLERANCE = 0.3

# What each scenario measures (tests/harness: distro.py's units, scenario.py,
# hardening.py, ops.py with bridges.py, forward_steps.py), and where it runs:
# every boot of test_e2e.BOOTS that runs it.
MEASURES = {
    "units": set(security.KINDS),
    "core": {"tunnel", "namespace", "watcher"},
    "hardening": {"tunnel", "namespace", "watcher", "TCP expose"},
    "ops": {"TCP expose", "UDP expose", "TCP reach, an address", "TCP reach, a name",
            "UDP reach, an address", "UDP reach, a name"},
    "forward": {"port forwarding"},
}


def boots() -> list[tuple[str, str, str]]:
    from .test_e2e import BOOTS as E2E
    return sorted({(key[0], key[1], s) for key, plan in E2E.items() for s in plan
                   if s in MEASURES})


def parse_table(text: str) -> dict[str, dict[int, float]]:
    """{kind: {systemd version: score}} from the first table of the
    "## Sandboxing" section: the kind is the last parenthesised part of a
    row's first cell, the versions are the header's "systemd N" columns."""
    lines = text.split("\n## Sandboxing\n", 1)[1].splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("|"))
    rows = []
    for ln in lines[start:]:
        if not ln.startswith("|"):
            break
        rows.append(ln)
    header = [c.strip() for c in rows[0].strip("|").split("|")]
    versions = {i: int(m.group(1)) for i, c in enumerate(header)
                if (m := re.fullmatch(r"systemd (\d+)", c))}
    if not versions:
        raise ValueError(f"no 'systemd N' column in {header}")
    table: dict[str, dict[int, float]] = {}
    for row in rows[2:]:
        cells = [c.strip() for c in row.strip("|").split("|")]
        m = re.search(r"\(([^()]*)\)\s*$", cells[0])
        if not m:
            raise ValueError(f"a row without its kind in parentheses: {cells[0]}")
        table[m.group(1)] = {v: float(cells[i]) for i, v in versions.items()}
    return table


def problems(info: dict, table: dict[str, dict[int, float]], expected: set[str]) -> list[str]:
    """What is wrong with one report's recorded scores (see the module)."""
    version = int(str(info["systemd"]).split()[1])
    recorded = {k.split(":", 1)[1]: v for k, v in info.items() if k.startswith("security:")}
    out = [f"{k}: not measured" for k in sorted(expected - set(recorded))]
    for kind, got in sorted(recorded.items()):
        documented = table.get(kind, {}).get(version)
        if "score" not in got:
            out.append(f"{kind} ({got.get('unit')}): no score: {got.get('error')}")
        elif documented is None:
            out.append(f"{kind}: no score documented for systemd {version} (measured "
                       f"{got['score']})")
        elif abs(got["score"] - documented) > TOLERANCE:
            out.append(f"{kind} ({got['unit']}): {got['score']} on systemd {version}, "
                       f"docs/units.md says {documented}")
    return out


# -- the table itself (no boot) ------------------------------------------------

def test_the_table_has_every_kind_and_a_score_per_version():
    table = parse_table(UNITS_DOC.read_text())
    assert sorted(table) == sorted(security.KINDS)
    versions = {v for scores in table.values() for v in scores}
    assert {247, 252, 257, 262} <= versions
    assert all(0 <= s <= 10 for scores in table.values() for s in scores.values())
    assert set().union(*MEASURES.values()) == set(security.KINDS)


def test_further_version_columns_are_read():
    text = ("x\n## Sandboxing\n\nabout\n\n"
            "| unit | systemd 247 | systemd 252 | systemd 262 | why |\n|---|---|---|---|---|\n"
            "| `NAME.service` (tunnel) | 3.1 | 2.3 | 2.2 | root |\n"
            "| `a (b)` (TCP reach, a name) | 1.4 | 1.1 | 1.0 | x (y) |\n\nafter\n| not | it |\n")
    assert parse_table(text) == {"tunnel": {247: 3.1, 252: 2.3, 262: 2.2},
                                 "TCP reach, a name": {247: 1.4, 252: 1.1, 262: 1.0}}


def test_what_is_compared():
    table = {"tunnel": {252: 2.3}, "watcher": {252: 2.4}}
    info = {"systemd": "systemd 252 (252.39-1~deb12u2)",
            "security:tunnel": {"unit": "wg.service", "score": 2.5},
            "security:watcher": {"unit": "wgns-watch.service", "score": 2.8}}
    assert problems(info, table, {"tunnel", "watcher"}) == [
        "watcher (wgns-watch.service): 2.8 on systemd 252, docs/units.md says 2.4"]
    info["security:tunnel"] = {"unit": "wg.service", "error": "RuntimeError: exit 1"}
    assert problems(info, table, {"tunnel"})[0].startswith("tunnel (wg.service): no score")
    assert problems({"systemd": "systemd 257 (257.9)"}, table, {"tunnel"}) == [
        "tunnel: not measured"]
    info = {"systemd": "systemd 262 (262)", "security:tunnel": {"unit": "x", "score": 2.3}}
    assert "no score documented for systemd 262" in problems(info, table, {"tunnel"})[0]


# -- the live scores (from the container boots of test_e2e) ----------------------

@pytest.mark.container
@pytest.mark.parametrize("system,flavour,scenario", boots())
def test_live_scores_are_the_documented_ones(system, flavour, scenario):
    from .harness import machine
    from .test_e2e import report
    rep = report(system, flavour, scenario)
    assert rep.ran(scenario), machine.format_report(rep)
    found = problems(rep.info, parse_table(UNITS_DOC.read_text()), MEASURES[scenario])
    assert not found, found

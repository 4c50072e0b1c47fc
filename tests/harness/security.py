"""Guest side: live `systemd-analyze security` scores of the units wgns writes.

Run inside a booted guest (the units must be loaded, e.g. after
`wgns install`), as the scenarios do, or by hand:

    python3 security.py wg.service netns@wg.service wgns-watch.service

`scores(units)` returns {unit: overall exposure} (0.0 best, 10.0 worst), as
systemd-analyze prints it in "Overall exposure level for UNIT: 2.2 OK";
`failing(unit)` lists the settings it still counts against the unit. The
numbers come from the running manager, so they can differ from
`systemd-analyze security --offline=yes FILE` on a rendered unit (the
offline mode of systemd 252 does not count NetworkNamespacePath= as a
private network, for one). Stdlib only.
"""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Protocol

OVERALL = re.compile(r"Overall exposure level for (\S+): (\d+(?:\.\d+)?)")
# Every kind of unit wgns writes, as the README's sandboxing table names
# them (the last parentheses of a row's first cell). The scenarios record a
# live score per kind; the host test (tests/test_security_scores.py)
# compares each with the table's column for the guest's systemd.
KINDS = ("tunnel", "namespace", "watcher", "TCP expose", "UDP expose",
         "TCP reach, an address", "TCP reach, a name", "UDP reach, an address",
         "UDP reach, a name", "port forwarding")


def _analyze(unit: str) -> str:
    p = subprocess.run(["systemd-analyze", "security", "--no-pager", unit],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"systemd-analyze security {unit}: exit {p.returncode}: "
                           f"{p.stdout.strip()[-500:]}")
    return p.stdout


def parse(text: str, unit: str) -> float:
    """The overall exposure of UNIT in systemd-analyze's output."""
    for m in OVERALL.finditer(text):
        if m.group(1) == unit:
            return float(m.group(2))
    raise ValueError(f"no overall exposure level for {unit} in: {text.strip()[-300:]}")


def scores(units: list[str]) -> dict[str, float]:
    """{unit: overall exposure level} for each unit (one call each: with
    several units systemd-analyze prints a table without the overall line)."""
    return {unit: parse(_analyze(unit), unit) for unit in units}


class Recorder(Protocol):
    def info(self, name: str, value: object) -> None: ...


def record(rec: Recorder, units: dict[str, str]) -> None:
    """The live score of each of UNITS ({kind: unit}) as an info line
    "security:KIND". A score that cannot be read is recorded as the error:
    the host test fails on it (nothing is swallowed here)."""
    for kind, unit in units.items():
        if kind not in KINDS:
            raise ValueError(f"unknown kind of unit {kind!r}: one of {KINDS}")
        try:
            value: dict[str, object] = {"unit": unit, "score": parse(_analyze(unit), unit)}
        except (RuntimeError, ValueError, OSError) as e:
            value = {"unit": unit, "error": f"{type(e).__name__}: {e}"}
        rec.info(f"security:{kind}", value)


def failing(unit: str) -> list[str]:
    """The settings systemd-analyze counts against UNIT ("✗" lines), each as
    its name and exposure, e.g. "PrivateNetwork= 0.5"."""
    out = []
    for line in _analyze(unit).splitlines():
        if line.startswith("✗"):
            parts = line[1:].split()
            out.append(f"{parts[0]} {parts[-1]}")
    return out


def main(argv: list[str]) -> int:
    for unit, score in scores(argv).items():
        print(f"{unit}: {score}")
        for item in failing(unit):
            print(f"    {item}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

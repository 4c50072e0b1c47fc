"""The support table (docs/distributions.md) says of each booted system the
systemd and Python that tests/test_e2e.py's EXPECTED holds the live guests
to, and names every guest the boots run; the Pythons run-tests takes from
pyenv are the table's too."""

import re

from .conftest import REPO
from .test_e2e import BOOTS, EXPECTED

DOC = (REPO / "docs/distributions.md").read_text()
ROWS = [[c.strip() for c in line.strip("|").split("|")]
        for line in DOC.split("## Support table", 1)[1].split("\n##", 1)[0].splitlines()
        if line.startswith("| ") and not line.startswith("| system booted")]
NAMES = {"debian11": "Debian 11 (bullseye), container",
         "debian12": "Debian 12 (bookworm), container",
         "debian13": "Debian 13 (trixie), container",
         "debian13r": "Debian 13 with systemd-resolved, container",
         "sid": "Debian sid, container, rebuilt every week"}


def test_every_booted_system_has_its_row_with_its_versions():
    rows = {r[0]: r for r in ROWS}
    for system in {k[0] for k in BOOTS}:
        row = rows[NAMES[system]]
        want = EXPECTED[system]
        systemd = re.match(r"\d+", row[1])
        assert systemd and int(systemd.group()) == want["systemd"] or system == "sid", row
        assert row[2] == want["python"], row


def test_the_pythons_the_unit_tests_run_under_are_the_docs():
    script = (REPO / "run-tests").read_text()
    pyenv = re.search(r"OTHERS=\((3\.[0-9. ]+)\); fi", script)
    assert pyenv, "run-tests names no Pythons"
    said = re.search(r"pyenv's ([0-9., and]+) and Debian's 3\.11", DOC)
    assert said, "the docs name no Pythons"
    assert re.findall(r"3\.\d+", said.group(1)) == pyenv.group(1).split()

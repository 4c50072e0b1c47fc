"""One version everywhere (the rule is in CHANGELOG.md, "Version bumps"):
wgns.__version__, the package metadata pyproject.toml declares, the top
entry of debian/changelog, the man page, CHANGELOG.md and the README's .deb
name, so the .deb and the Python package never disagree."""

import re
import sys

import wgns

from .conftest import REPO

if sys.version_info >= (3, 11):
    import tomllib
else:  # the test extra brings tomli to older Pythons
    import tomli as tomllib

VERSION = wgns.__version__


def test_version_is_semver():
    assert re.fullmatch(r"\d+\.\d+\.\d+", VERSION), VERSION


def test_pyproject_takes_the_version_from_the_package():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    if "version" in project["project"]:
        assert project["project"]["version"] == VERSION
    else:
        assert "version" in project["project"]["dynamic"]
        attr = project["tool"]["setuptools"]["dynamic"]["version"]["attr"]
        assert attr == "wgns.__version__", attr


def test_debian_changelog_top_entry_is_the_version():
    top = (REPO / "debian/changelog").read_text().splitlines()[0]
    m = re.match(r"wgns \(([^)]+)\) ", top)
    assert m, top
    assert m.group(1) == VERSION, f"debian/changelog says {m.group(1)}, wgns says {VERSION}"


def test_man_page_and_readme_name_the_version():
    th = next(ln for ln in (REPO / "man/wgns.8").read_text().splitlines()
              if ln.startswith(".TH "))
    assert f'"wgns {VERSION}"' in th, th
    debs = set(re.findall(r"wgns_([0-9.]+)_all\.deb", (REPO / "README.md").read_text()))
    assert debs == {VERSION}, debs


def test_changelog_has_the_version_and_an_unreleased_section():
    text = (REPO / "CHANGELOG.md").read_text()
    sections = re.findall(r"^## \[([^\]]+)\]", text, re.M)
    assert sections[0] == "Unreleased", sections
    assert sections[1] == VERSION, f"newest release in CHANGELOG.md: {sections[1]}"

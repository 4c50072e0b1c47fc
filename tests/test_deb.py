"""The Debian package builds from this checkout and lintian finds no errors.
(Its end-to-end test is the `deb` flavour in test_e2e.py.)"""

import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

import pytest

from .conftest import REPO
from .harness import machine
from .harness.ci import tier_unavailable

pytestmark = pytest.mark.container


def package_files() -> set[str]:
    """Every module of the package in this checkout (wgns/**/*.py)."""
    return {str(p.relative_to(REPO)) for p in (REPO / "wgns").rglob("*.py")}


def test_the_wheel_carries_every_module_and_template_and_nothing_else():
    machine.CACHE.mkdir(parents=True, exist_ok=True)
    out = Path(tempfile.mkdtemp(dir=machine.CACHE))
    try:
        with zipfile.ZipFile(machine.build_wheel(out)) as whl:
            names = set(whl.namelist())
        assert {n for n in names if n.endswith(".py")} == package_files()
        templates = {f"wgns/units/{p.name}" for p in (REPO / "units").iterdir()}
        assert templates <= names and len(templates) >= 10, sorted(templates - names)
        assert "wgns/core/pia-ca.rsa.4096.crt" in names   # install --provider pia's default
    finally:
        shutil.rmtree(out, ignore_errors=True)


def test_deb_builds_and_lintian_has_no_errors():
    if shutil.which("lintian") is None or shutil.which("dpkg-buildpackage") is None:
        tier_unavailable("dpkg-dev, debhelper and lintian are not installed")
    machine.CACHE.mkdir(parents=True, exist_ok=True)
    out = Path(tempfile.mkdtemp(dir=machine.CACHE))
    try:
        deb = machine.build_deb(out)
        listing = subprocess.run(["dpkg-deb", "-c", str(deb)], check=True, text=True,
                                 stdout=subprocess.PIPE).stdout
        for path in ("./usr/bin/wgns", "/wgns/helper.py", "/wgns/units/netns@.service",
                     "./usr/share/man/man8/wgns.8.gz",
                     "./usr/share/bash-completion/completions/wgns"):
            assert path in listing, path
        shipped = {ln.split("dist-packages/", 1)[1] for ln in listing.splitlines()
                   if "dist-packages/wgns/" in ln and ln.endswith(".py")}
        assert shipped == package_files(), sorted(shipped ^ package_files())
        fields = subprocess.run(["dpkg-deb", "-f", str(deb), "Depends", "Recommends",
                                 "Suggests"], check=True, text=True,
                                stdout=subprocess.PIPE).stdout
        for dep in ("python3-typer", "python3-pyroute2", "python3-pystemd", "iproute2",
                    "Recommends: wireguard-tools", "Suggests: wireguard-go"):
            assert dep in fields, fields
        lint = subprocess.run(["lintian", "--no-tag-display-limit", str(deb)], text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        errors = [ln for ln in lint.stdout.splitlines() if ln.startswith("E:")]
        assert not errors, lint.stdout
        print(lint.stdout)
    finally:
        shutil.rmtree(out, ignore_errors=True)

"""Golden files: `wgns install` and `wgns confine` under --root write exactly
these files, with exactly this text and these modes."""

import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from wgns.admin import store
from wgns.cli import app
from wgns.core import paths

from .conftest import DATA

GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE = os.environ.get("WGNS_UPDATE_GOLDEN") == "1"
# Where the units' interpreter and package are said to live: the sandboxing
# depends on it (a venv under /var/tmp, a clone under /home), so the golden
# files are rendered as for a system-wide install wherever the tests run.
PYTHON = "/usr/lib/wgns-golden/bin/python3"
PKG = "/usr/lib/wgns-golden/wgns"


@pytest.fixture(autouse=True)
def _system_wide_paths(monkeypatch):
    monkeypatch.setattr(store, "python_path", lambda: PYTHON)
    monkeypatch.setattr(paths, "helper_path", lambda: PKG + "/helper.py")


def tree(root: Path) -> dict[str, tuple[str, str]]:
    """{relative path: (mode or link, text with the interpreter's path made generic)}"""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = ("link", os.readlink(p))
        elif p.is_file():
            text = p.read_text().replace(PYTHON, "@PYTHON@")
            out[rel] = (oct(stat.S_IMODE(p.stat().st_mode)), text.replace(PKG, "@PKG@"))
    return out


def check_golden(name: str, root: Path) -> None:
    got = tree(root)
    gdir = GOLDEN / name
    if UPDATE:
        # The golden tree becomes exactly what was written: files no longer
        # written are deleted (they would be compared, and fail, for ever).
        keep = {gdir / (rel + ".link" if mode == "link" else rel) for rel, (mode, _) in got.items()}
        for p in sorted(gdir.rglob("*"), reverse=True) if gdir.exists() else []:
            if p.is_file() and p not in keep:
                p.unlink()
            elif p.is_dir() and not any(p.iterdir()):
                p.rmdir()
        for rel, (mode, text) in got.items():
            dest = gdir / (rel + ".link" if mode == "link" else rel)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(text if mode == "link" else f"{mode}\n{text}")
    want = {}
    for p in sorted(gdir.rglob("*")):
        if p.is_file():
            rel = str(p.relative_to(gdir))
            if rel.endswith(".link"):
                want[rel[:-5]] = ("link", p.read_text())
            else:
                mode, _, text = p.read_text().partition("\n")
                want[rel] = (mode, text)
    assert sorted(got) == sorted(want)
    for rel in want:
        assert got[rel] == want[rel], rel


@pytest.fixture
def nsswitch(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/nsswitch.conf").write_text(
        "passwd: files systemd\ngroup: files systemd\nhosts: files resolve [!UNAVAIL=return] "
        "myhostname mdns4_minimal dns\nnetworks: files\n")
    return root


def renders_back(root: Path, name: str) -> None:
    """The tunnel's record, rendered again, is every file it wrote, byte for
    byte: nothing of it lives anywhere but in the record."""
    from wgns.core.installed import load
    from wgns.render.tunnel import render, shared
    record = load(str(root), name)
    for path, item in {**render(record), **shared(record)}.items():
        dest = root / path.lstrip("/")
        if hasattr(item, "target"):
            assert os.readlink(dest) == item.target, path
        else:
            assert dest.read_text() == item.text, path
            assert stat.S_IMODE(dest.stat().st_mode) == item.mode, path


def test_install_from_file(nsswitch):
    r = CliRunner().invoke(app, ["install", "--conf", str(DATA / "multi.conf"),
                                 "--root", str(nsswitch)])
    assert r.exit_code == 0, r.output
    check_golden("install-multi", nsswitch)
    renders_back(nsswitch, "wg")


def test_install_from_options_then_confine(nsswitch, tmp_path):
    key = tmp_path / "key"
    key.write_text("kOE8djlEXW0ULFbMoyqfOVxKwgRjn2lZr4t6S7khzF8=\n")
    (nsswitch / "etc/systemd/system").mkdir(parents=True)
    (nsswitch / "etc/systemd/system/qbittorrent.service").write_text("[Service]\n")
    r = CliRunner().invoke(app, [
        "install", "--name", "vpn", "--address", "10.0.0.2/32", "--address", "fd00::2/128",
        "--private-key-file", str(key), "--peer", "Pt7r+VTb1O41rnoK2YlztUwTcjDRUCucx3VVwHf5hmU=",
        "--endpoint", "198.51.100.1:51820", "--dns", "10.0.0.1", "--keepalive", "25",
        "--root", str(nsswitch)])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["confine", "qbittorrent", "--name", "vpn",
                                 "--root", str(nsswitch)])
    assert r.exit_code == 0, r.output
    check_golden("install-options-confine", nsswitch)
    renders_back(nsswitch, "vpn")


def test_bridges(nsswitch, monkeypatch):
    """TCP and UDP exposes and reaches. Whether the relay runs as a dynamic
    user depends on who can read this copy of wgns: a dynamic user here."""
    monkeypatch.setattr(store, "dynamic_user_can_run", lambda python, helper: True)
    units = nsswitch / "etc/systemd/system"
    units.mkdir(parents=True)
    (units / "game.service").write_text("[Service]\n")
    for args in (["install", "--conf", str(DATA / "protonvpn.conf"), "--name", "p-1"],
                 ["confine", "game", "--name", "p-1"],
                 ["expose", "game", "27015", "--udp", "--listen", "0.0.0.0:27015",
                  "--name", "p-1"],
                 ["expose", "game", "8080", "--name", "p-1"],
                 ["reach", "db_1.lan:5432", "--name", "p-1"],
                 ["reach", "[fd00::5]:9696", "--at", "127.0.0.2:9696", "--name", "p-1"],
                 ["reach", "192.168.1.2:53", "--udp", "--at", "127.0.0.53:53", "--name", "p-1"]):
        r = CliRunner().invoke(app, [*args, "--root", str(nsswitch)])
        assert r.exit_code == 0, r.output
    check_golden("bridges", nsswitch)
    renders_back(nsswitch, "p-1")


def test_update_mode_deletes_stale_golden_files(tmp_path, monkeypatch):
    """In update mode the golden tree was only ever added to: a file wgns no
    longer writes stayed, and the next normal run failed on it."""
    import sys
    module = sys.modules[__name__]
    monkeypatch.setattr(module, "GOLDEN", tmp_path / "golden")
    monkeypatch.setattr(module, "UPDATE", True)
    stale = tmp_path / "golden/case/etc/old/stale.service"
    stale.parent.mkdir(parents=True)
    stale.write_text("0o644\nold\n")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/new.service").write_text("new\n")
    check_golden("case", root)
    assert not stale.exists() and not stale.parent.exists()
    assert (tmp_path / "golden/case/etc/new.service").exists()

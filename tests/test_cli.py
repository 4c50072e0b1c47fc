"""CLI exit codes and messages; every failure leaves the root as it was."""

import os
from pathlib import Path

from typer.testing import CliRunner

from wgns import __version__
from wgns.cli import app

from .conftest import DATA

PRIV = "kOE8djlEXW0ULFbMoyqfOVxKwgRjn2lZr4t6S7khzF8="
PUB = "Pt7r+VTb1O41rnoK2YlztUwTcjDRUCucx3VVwHf5hmU="


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def error_line(result) -> str:
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("wgns: error: ")
    return lines[0]


def test_version_and_help():
    assert invoke("--version").output.strip() == f"wgns {__version__}"
    for flag in ("-h", "--help"):
        r = invoke(flag)
        assert r.exit_code == 0 and "confine" in r.output and "uninstall" in r.output
    r = invoke("install", "-h")
    assert r.exit_code == 0 and "--conf" in r.output and "--private-key-file" in r.output


def test_usage_errors_exit_2(root):
    assert invoke("install", "--bogus").exit_code == 2
    assert invoke("confine").exit_code == 2
    assert invoke("install", "--root", root).exit_code == 2
    r = invoke("install", "--conf", DATA / "multi.conf", "--peer", PUB, "--root", root)
    assert r.exit_code == 2 and "--peer" in r.output
    assert files(root) == ["etc", "etc/systemd", "etc/systemd/system",
                           "etc/systemd/system/app.service"]


def test_bad_file_exit_1_one_line_nothing_written(root, tmp_path):
    before = files(root)
    bad = tmp_path / "bad.conf"
    bad.write_text((DATA / "protonvpn.conf").read_text().replace("10.2.0.2/32", "10.2.0.2/40"))
    r = invoke("install", "--conf", bad, "--root", root)
    assert r.exit_code == 1
    assert f"{bad}:9: Address '10.2.0.2/40'" in error_line(r)
    r = invoke("install", "--conf", tmp_path / "missing.conf", "--root", root)
    assert r.exit_code == 1 and "cannot read" in error_line(r)
    assert files(root) == before


def test_bad_key_file_never_echoes_the_key(root, tmp_path):
    key = tmp_path / "key"
    key.write_text(PRIV[:-2] + "!\n")
    r = invoke("install", "--address", "10.0.0.2/32", "--private-key-file", key,
               "--peer", PUB, "--endpoint", "198.51.100.1:51820", "--root", root)
    assert r.exit_code == 1 and "not valid base64" in error_line(r)
    assert PRIV[:20] not in r.output


def test_foreign_unit_is_never_overwritten(root):
    foreign = root / "etc/systemd/system/wg.service"
    foreign.write_text("[Service]\nExecStart=/bin/true\n")
    before = files(root)
    r = invoke("install", "--conf", DATA / "protonvpn.conf", "--root", root)
    assert r.exit_code == 1 and "was not written by wgns" in error_line(r)
    assert foreign.read_text() == "[Service]\nExecStart=/bin/true\n"
    assert files(root) == before


def test_foreign_netns_template_is_never_overwritten(root):
    (root / "etc/systemd/system/netns@.service").write_text("[Service]\n")
    r = invoke("install", "--conf", DATA / "protonvpn.conf", "--root", root)
    assert r.exit_code == 1 and "netns@.service exists" in error_line(r)
    assert not (root / "etc/wgns").exists()


def test_reinstall_updates_in_place(root, tmp_path):
    assert invoke("install", "--conf", DATA / "protonvpn.conf", "--root", root).exit_code == 0
    r = invoke("install", "--conf", DATA / "mullvad.conf", "--root", root)
    assert r.exit_code == 0 and "updated tunnel wg" in r.output
    assert "10.64.1.2/32" in (root / "etc/wgns/wg.conf").read_text()


def test_confine_unconfine_round_trip(root):
    assert invoke("install", "--conf", DATA / "protonvpn.conf", "--root", root).exit_code == 0
    after_install = files(root)
    r = invoke("confine", "nosuch", "--root", root)
    assert r.exit_code == 1 and "does not know nosuch.service" in error_line(r)
    r = invoke("confine", "app", "nosuch", "--root", root)
    assert r.exit_code == 1 and files(root) == after_install  # all or nothing
    r = invoke("confine", "app", "later.service", "--force", "--root", root)
    assert r.exit_code == 0, r.output
    assert (root / "etc/systemd/system/later.service.d/90-wgns.conf").exists()
    r = invoke("confine", "app.socket", "--root", root)
    assert r.exit_code == 1 and "only .service units" in error_line(r)
    r = invoke("confine", "wg", "--root", root)
    assert r.exit_code == 1 and "belongs to wgns" in error_line(r)
    r = invoke("confine", "app", "--name", "other", "--root", root)
    assert r.exit_code == 1 and "no tunnel named 'other'" in error_line(r)
    r = invoke("unconfine", "app", "later", "--root", root)
    assert r.exit_code == 0, r.output
    assert files(root) == after_install
    r = invoke("unconfine", "app", "--root", root)
    assert r.exit_code == 1 and "is not confined" in error_line(r)


def test_confined_to_one_tunnel_only(root):
    assert invoke("install", "--conf", DATA / "protonvpn.conf", "--root", root).exit_code == 0
    assert invoke("install", "--conf", DATA / "mullvad.conf", "--name", "wg2",
                  "--root", root).exit_code == 0
    assert invoke("confine", "app", "--root", root).exit_code == 0
    r = invoke("confine", "app", "--name", "wg2", "--root", root)
    assert r.exit_code == 1 and "confined to tunnel 'wg'" in error_line(r)


def test_uninstall_leaves_root_as_before(root):
    before = files(root)
    assert invoke("install", "--conf", DATA / "multi.conf", "--root", root).exit_code == 0
    assert invoke("install", "--conf", DATA / "mullvad.conf", "--name", "wg2",
                  "--root", root).exit_code == 0
    assert invoke("confine", "app", "--root", root).exit_code == 0
    r = invoke("uninstall", "--root", root)
    assert r.exit_code == 0, r.output
    # the other tunnel keeps the shared namespace template
    assert (root / "etc/systemd/system/netns@.service").exists()
    assert not (root / "etc/systemd/system/app.service.d").exists()
    assert invoke("uninstall", "--name", "wg2", "--root", root).exit_code == 0
    assert files(root) == before
    r = invoke("uninstall", "--root", root)
    assert r.exit_code == 1 and "no tunnel named 'wg'" in error_line(r)


def test_uninstall_keeps_files_wgns_did_not_write(root):
    assert invoke("install", "--conf", DATA / "protonvpn.conf", "--root", root).exit_code == 0
    mine = root / "etc/wgns/wg/notes.txt"
    mine.write_text("mine\n")
    assert invoke("uninstall", "--root", root).exit_code == 0
    assert mine.read_text() == "mine\n"


def test_writing_commands_need_root(root, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    r = invoke("install", "--conf", DATA / "protonvpn.conf")
    assert r.exit_code == 1 and "needs root" in error_line(r)
    r = invoke("confine", "app")
    assert r.exit_code == 1 and "needs root" in error_line(r)
    # --root works for anyone who can write there
    assert invoke("install", "--conf", DATA / "protonvpn.conf", "--root", root).exit_code == 0


def test_debug_shows_the_traceback(root):
    r = invoke("--debug", "uninstall", "--root", root)
    assert r.exit_code == 1 and r.exception is not None
    assert type(r.exception).__name__ == "WgnsError"


def test_unit_helper_usage_and_bad_names(capsys):
    from wgns import helper
    assert helper.main([]) == 2
    assert helper.main(["link", "sideways", "wg"]) == 2
    assert helper.main(["link", "up", "../etc"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("wgns: ../etc link up: --name: invalid tunnel name")


def test_install_without_conf_imports_the_wg_quick_file(root):
    """`wgns install` alone: the tunnel the user runs with wg-quick today."""
    r = invoke("install", "--root", root)
    assert r.exit_code == 2
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and "--conf FILE" in lines[0] and "--address" in lines[0], r.output
    assert files(root) == ["etc", "etc/systemd", "etc/systemd/system",
                           "etc/systemd/system/app.service"]
    (root / "etc/wireguard").mkdir()
    (root / "etc/wireguard/vpn.conf").write_text((DATA / "protonvpn.conf").read_text())
    r = invoke("install", "--name", "vpn", "--root", root)
    assert r.exit_code == 0, r.output
    assert "importing /etc/wireguard/vpn.conf" in r.output
    assert (root / "etc/wgns/vpn.conf").is_file()
    assert invoke("install", "--root", root).exit_code == 2  # no wg.conf there

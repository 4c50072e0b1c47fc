"""`systemd-analyze verify` of every unit wgns renders: the tunnel, the
namespace and watch templates (as instances), a confined unit with its
drop-in, TCP and UDP expose pairs, TCP and UDP reach pairs, a port
forwarding unit and the watcher's metrics drop-in; for a hyphenated tunnel
name and an instance unit. systemd parses each file and every warning fails
the test."""

import os
import shutil
import subprocess

import pytest
from typer.testing import CliRunner

from wgns.cli import app

from .conftest import DATA
from .harness.ci import tier_unavailable

ANALYZE = shutil.which("systemd-analyze")


@pytest.fixture(autouse=True)
def _needs_systemd_analyze():
    if ANALYZE is None:
        tier_unavailable("systemd-analyze is not installed (Debian package systemd)")


def invoke(*args):
    r = CliRunner().invoke(app, [str(a) for a in args])
    assert r.exit_code == 0, r.output
    return r


@pytest.mark.parametrize("name", ["wg", "proton-ch", "a_b-0"])
def test_every_rendered_unit_verifies_without_a_warning(tmp_path, name):
    root = tmp_path / "root"
    units = root / "etc/systemd/system"
    units.mkdir(parents=True)
    for unit in ("app.service", "worker@a-b.service"):
        (units / unit).write_text("[Service]\nExecStart=/bin/sleep infinity\n")
    odd = root / "srv/wgns metrics 100%h $HOME"  # the watcher's metrics drop-in
    odd.mkdir(parents=True)
    invoke("install", "--conf", DATA / "protonvpn.conf", "--name", name, "--root", root,
           "--metrics-dir", "/" + str(odd.relative_to(root)))
    invoke("confine", "app", "worker@a-b", "--name", name, "--root", root)
    invoke("expose", "app", "8080", "--listen", "[::1]:8081", "--name", name, "--root", root)
    invoke("expose", "app", "5353", "--udp", "--listen", "0.0.0.0:5353", "--name", name,
           "--root", root)
    invoke("reach", "db_1.lan:5432", "--name", name, "--root", root)
    invoke("reach", "[::1]:53", "--udp", "--at", "127.0.0.2:53", "--name", name, "--root", root)
    login = tmp_path / "login"
    login.write_text("username=admin\npassword=x y%h$z\n")
    login.chmod(0o600)
    invoke("port-forward", "--qbittorrent", "http://[::1]:8080", "--credentials", login,
           "--exec", "echo $WGNS_PORT %h", "--name", name, "--root", root)
    to_verify = [f"{name}.service", f"netns@{name}.service", "wgns-watch.service",
                 "app.service", "worker@a-b.service",
                 f"wgns-{name}-expose-8081.socket", f"wgns-{name}-expose-8081.service",
                 f"wgns-{name}-forward.service",
                 f"wgns-{name}-expose-udp-5353.socket", f"wgns-{name}-expose-udp-5353.service",
                 f"wgns-{name}-reach-5432.socket", f"wgns-{name}-reach-5432.service",
                 f"wgns-{name}-reach-udp-53.socket", f"wgns-{name}-reach-udp-53.service"]
    env = dict(os.environ, SYSTEMD_UNIT_PATH=f"{units}:", SYSTEMD_LOG_LEVEL="notice")
    p = subprocess.run([ANALYZE, "verify", "--man=no", *to_verify], env=env,
                       capture_output=True, text=True)
    assert p.returncode == 0 and not (p.stdout + p.stderr).strip(), p.stdout + p.stderr


def test_a_metrics_dir_with_a_single_quote_verifies(tmp_path):
    """systemd itself parses the drop-in: unquoted, a ' made it ignore
    ReadWritePaths= and Environment= ("Failed to extract first word")."""
    root = tmp_path / "root"
    units = root / "etc/systemd/system"
    units.mkdir(parents=True)
    (root / "srv/it's").mkdir(parents=True)
    invoke("install", "--conf", DATA / "protonvpn.conf", "--root", root,
           "--metrics-dir", "/srv/it's")
    env = dict(os.environ, SYSTEMD_UNIT_PATH=f"{units}:", SYSTEMD_LOG_LEVEL="notice")
    p = subprocess.run([ANALYZE, "verify", "--man=no", "wgns-watch.service"], env=env,
                       capture_output=True, text=True)
    assert p.returncode == 0 and not (p.stdout + p.stderr).strip(), p.stdout + p.stderr


ODD_PYTHON_DIRS = ["my env", "100%h", "a;b %%i"]


@pytest.mark.parametrize("odd", ODD_PYTHON_DIRS)
def test_an_interpreter_path_that_needs_quoting_verifies(tmp_path, monkeypatch, odd):
    """The units of an interpreter at an odd path (a venv there): systemd
    parses every ExecStart= and finds the program (it must exist)."""
    from wgns.admin import store
    python = tmp_path / odd / "python3"
    python.parent.mkdir()
    python.symlink_to(os.path.realpath("/usr/bin/python3"))
    monkeypatch.setattr(store, "python_path", lambda: str(python))
    root = tmp_path / "root"
    units = root / "etc/systemd/system"
    units.mkdir(parents=True)
    (units / "app.service").write_text("[Service]\nExecStart=/bin/sleep infinity\n")
    invoke("install", "--conf", DATA / "protonvpn.conf", "--root", root)
    invoke("confine", "app", "--root", root)
    invoke("expose", "app", "5353", "--udp", "--root", root)
    invoke("port-forward", "--root", root)
    env = dict(os.environ, SYSTEMD_UNIT_PATH=f"{units}:", SYSTEMD_LOG_LEVEL="notice")
    p = subprocess.run([ANALYZE, "verify", "--man=no", "wg.service", "netns@wg.service",
                        "wgns-watch.service", "wgns-wg-forward.service",
                        "wgns-wg-expose-udp-5353.service"], env=env, capture_output=True,
                       text=True)
    assert p.returncode == 0 and not (p.stdout + p.stderr).strip(), p.stdout + p.stderr


@pytest.mark.parametrize("odd", ["it's", 'a"b', "a\\b"])
def test_systemd_refuses_a_program_path_with_a_quote_or_backslash(tmp_path, odd):
    """Why wgns refuses them (test_adversarial): however it is quoted,
    systemd will not run a program whose path holds one."""
    units = tmp_path / "units"
    units.mkdir()
    word = '"' + odd.replace("\\", "\\\\").replace('"', '\\"') + '"'
    (units / "x.service").write_text(f"[Service]\nExecStart=/opt/{word}/python3 -I\n")
    env = dict(os.environ, SYSTEMD_UNIT_PATH=f"{units}:", SYSTEMD_LOG_LEVEL="notice")
    p = subprocess.run([ANALYZE, "verify", "--man=no", "x.service"], env=env,
                       capture_output=True, text=True)
    assert p.returncode != 0 and "special characters" in p.stdout + p.stderr, p.stdout + p.stderr

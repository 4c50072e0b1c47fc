"""wgns itself run against the fake PIA API (tests/harness/pia.py), in the
namespace standing in for a guest's root: `wgns install --provider pia
--root DIR` as a subprocess there, the API's name in that namespace's
hosts file (/etc/netns/NAME/hosts, which `ip netns exec` mounts over
/etc/hosts), the API's timeout shortened for the slow cases."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from ..conftest import REPO
from ..harness import pia as piamod

RUN = """
import sys
sys.path.insert(0, sys.argv[1])
from wgns.core import pia_http
pia_http.TIMEOUT = float(sys.argv[2])
from wgns.cli.main import run
sys.argv = ["wgns"] + sys.argv[3:]
run()
"""


class Hosts:
    """/etc/netns/ROOT/hosts naming the API, gone again at close()."""

    def __init__(self, root_ns: str, api_ip: str) -> None:
        self.dir = Path("/etc/netns") / root_ns
        self.made_parent = not self.dir.parent.exists()
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "hosts").write_text(f"127.0.0.1 localhost\n{api_ip} {piamod.API_HOST}\n")

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        if self.made_parent:   # /etc/netns as it was: absent
            try:
                self.dir.parent.rmdir()
            except OSError:
                pass


def wgns(root_ns: str, *args: object, timeout: float = 3.0) -> subprocess.CompletedProcess:
    """wgns ARGS in ROOT_NS: its exit status and output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    return subprocess.run(["ip", "netns", "exec", root_ns, sys.executable, "-c", RUN,
                           str(REPO), str(timeout), *map(str, args)],
                          capture_output=True, text=True, timeout=120, env=env)


def install(root_ns: str, pia, target: Path, account: Path, *more: object,  # type: ignore[no-untyped-def]
            region: str = "se_stockholm", timeout: float = 3.0) -> subprocess.CompletedProcess:
    return wgns(root_ns, "install", "--provider", "pia", "--region", region, "--account",
                account, "--pia-api", pia.url, "--pia-ca", pia.ca, "--root", target, "--name",
                "pia", *more, timeout=timeout)

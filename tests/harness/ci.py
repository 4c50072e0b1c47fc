"""What a test does when a whole tier cannot run here (not root, a tool
missing, /dev/net/tun missing, no qemu, no .deb tooling).

On a developer's machine it skips, with the reason. Under CI (`CI=true`, as
GitHub Actions, GitLab CI and most others set it) it fails with the same
reason: a green CI run must mean the real tests ran. Per-test skips that say
a case is meaningless here (e.g. root ignores file modes) stay plain skips.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from typing import NoReturn

import pytest


def under_ci(env: Mapping[str, str] | None = None) -> bool:
    value = (os.environ if env is None else env).get("CI", "")
    return value.strip().lower() in ("true", "1", "yes")


def tier_unavailable(reason: str) -> NoReturn:
    """Skip (or, under CI, fail) the calling test because its tier cannot run."""
    if under_ci():
        pytest.fail(f"{reason} (CI=true: a tier that cannot run fails the run)", pytrace=False)
    pytest.skip(reason)


def can_make_links() -> tuple[bool, str]:
    """Whether this process may make network links (root with
    CAP_NET_ADMIN: not in an unprivileged container), tried with a veth
    pair in a throwaway network namespace; and why not."""
    if os.geteuid() != 0:
        return False, "needs root (network namespaces and links)"
    if shutil.which("ip") is None or shutil.which("unshare") is None:
        return False, "needs ip and unshare (Debian packages iproute2, util-linux)"
    p = subprocess.run(["unshare", "-n", "ip", "link", "add", "wgnsp0", "type", "veth",
                        "peer", "name", "wgnsp1"], capture_output=True, text=True)
    if p.returncode != 0:
        return False, ("cannot create network links here (no CAP_NET_ADMIN: an unprivileged "
                       f"container?): {p.stderr.strip()[:200]}")
    return True, ""

"""Where a copy of wgns lives, and what that means for the units that run
it: the sandbox must not hide it (a venv under /root, /home or /tmp), and
a dynamic user can run it only when every user can read it and it is not
below /tmp or /var/tmp (DynamicUser= implies PrivateTmp=, which nothing
turns off). Where the interpreter really is counts too: a venv's python is
often a link to a pyenv build under /root."""

from __future__ import annotations

import os
import stat
from pathlib import Path

PROXYD = ("/usr/lib/systemd/systemd-socket-proxyd", "/lib/systemd/systemd-socket-proxyd")


def _paths(python: str, helper: str) -> tuple[str, ...]:
    return (python, os.path.realpath(python), helper, os.path.realpath(helper))


def sandbox_values(python: str, helper: str) -> dict[str, str]:
    """ProtectHome= and PrivateTmp= for units of the copy at PYTHON and HELPER."""
    paths = _paths(python, helper)

    def below(*dirs: str) -> bool:
        return any(p == d or p.startswith(d + "/") for p in paths for d in dirs)

    return {
        "protect_home": "read-only" if below("/root", "/home", "/run/user") else "yes",
        "private_tmp": "no" if below("/tmp", "/var/tmp") else "yes",
    }


def in_private_tmp(python: str, helper: str) -> bool:
    return sandbox_values(python, helper)["private_tmp"] == "no"


def readable_by_all(path: str) -> bool:
    """Whether an unprivileged user can open PATH: every directory on the
    way searchable by others, the file readable by them; on the way to
    where PATH really is too."""
    try:
        for p in {Path(path), Path(os.path.realpath(path))}:
            if not os.stat(p).st_mode & stat.S_IROTH:
                return False
            for d in p.parents:
                if not os.stat(d).st_mode & stat.S_IXOTH:
                    return False
    except OSError:
        return False
    return True


def dynamic_user_can_run(python: str, helper: str) -> bool:
    return (readable_by_all(python) and readable_by_all(helper)
            and not in_private_tmp(python, helper))


def proxyd_path(root: str) -> str:
    """systemd-socket-proxyd where this system has it (below ROOT)."""
    return next((p for p in PROXYD if os.path.exists(os.path.join(root, p.lstrip("/")))),
                PROXYD[0])

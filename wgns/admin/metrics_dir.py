"""`wgns install --metrics-dir DIR`: which directories the watcher may be
given to write a tunnel's metrics in, and the tunnel's textfile moved or
removed when the directory changes or the tunnel goes. (The watcher writes
the file itself: runtime/metrics.py.)"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

from ..core.errors import WgnsError
from ..core.files import is_ours
from ..core.names import printable, setting
from ..core.paths import CONF_DIR, METRICS_DIR, WG_QUICK_DIR, helper_path, prom_path

DEFAULT_DIR = METRICS_DIR
# What the watcher's sandbox hides or replaces (ProtectHome=, PrivateTmp=,
# the API file systems): a metrics directory there would never be written.
HIDDEN = ("/home", "/root", "/run/user", "/tmp", "/var/tmp", "/proc", "/sys", "/dev")


# Where systemd reads units and drop-ins, and where root finds its programs
# (the forwarder's --exec runs with this PATH).
SYSTEM_DIRS = ("/etc/systemd", "/run/systemd", "/usr/lib/systemd", "/lib/systemd",
               "/usr/local/lib/systemd", "/usr/local/sbin", "/usr/local/bin", "/usr/sbin",
               "/usr/bin", "/sbin", "/bin")


def protected(python: str) -> list[str]:
    """Directories the watcher must never be given to write, nor anything
    below them or above them: wgns's configuration (keys, logins), systemd's
    units and drop-ins (a unit written there runs as root), root's PATH,
    the keys of wg-quick, this copy of wgns and the interpreter with every
    directory it imports from (a module put there runs in every unit)."""
    dirs = [CONF_DIR, WG_QUICK_DIR, *SYSTEM_DIRS, os.path.dirname(helper_path()),
            os.path.dirname(python),
            os.path.dirname(os.path.realpath(python))]
    dirs += [os.path.normpath(p) for p in sys.path if os.path.isabs(p) and os.path.isdir(p)]
    return sorted({d for d in dirs if d != "/"})


def check_dir(value: str, root: str, python: str) -> str:
    """--metrics-dir: an absolute, normalised path of an existing directory
    (below ROOT), reached without a symbolic link, that root without
    capabilities (the watcher) may write in (checked on the live system; an
    image's owners may be set later), outside what its sandbox hides,
    neither holding nor inside a protected directory (its configuration,
    systemd's units, the package, the interpreter PYTHON). A double quote
    or a backslash is refused: ReadWritePaths= cannot carry them exactly."""
    what = f"--metrics-dir {printable(value, 'path')}"
    setting(value, "--metrics-dir")  # no control characters
    if '"' in value or "\\" in value:
        raise WgnsError(f"{what} holds a double quote or a backslash; systemd cannot "
                        "take it back exactly", hint="pick a directory without them")
    if not value.startswith("/") or os.path.normpath(value) != value or value.startswith("//"):
        raise WgnsError(f"{what} must be an absolute path without '.', '..' or a "
                        "trailing '/'")
    if value == "/" or any(value == h or value.startswith(h + "/") for h in HIDDEN):
        raise WgnsError(f"{what}: the watcher's sandbox cannot write there",
                        hint=f"use a directory of its own, e.g. {DEFAULT_DIR}")
    for k in protected(python):
        if k == value or value.startswith(k + "/"):
            raise WgnsError(f"{what} is {'' if k == value else 'inside '}{k}, where wgns, "
                            "systemd or the interpreter keep their files: the watcher "
                            "would be allowed to write there",
                            hint=f"use a directory of its own, e.g. {DEFAULT_DIR}")
        if k.startswith(value + "/"):
            raise WgnsError(f"{what} holds {k}: the watcher would be allowed to "
                            f"write there", hint=f"use a directory of its own, e.g. {DEFAULT_DIR}")
    real_root = os.path.realpath(root)
    full = os.path.join(real_root, value.lstrip("/"))
    try:
        st = os.lstat(full)
    except OSError as e:
        raise WgnsError(f"{what}: {e.strerror}", hint="create it first") from None
    if stat.S_ISLNK(st.st_mode) or os.path.realpath(full) != full:
        raise WgnsError(f"{what} is or goes through a symbolic link",
                        hint="give the real path of the directory")
    if not stat.S_ISDIR(st.st_mode):
        raise WgnsError(f"{what} is not a directory")
    if root == "/" and (st.st_uid != 0 or not st.st_mode & 0o200):
        raise WgnsError(f"{what} is not owned and writable by root (the watcher runs "
                        "without capabilities to override file modes)",
                        hint=f"chown root {value}; chmod u+w {value}")
    return value


def remove(name: str, directory: str) -> bool:
    """Remove DIRECTORY/wgns-NAME.prom when wgns wrote it."""
    path = prom_path(directory, name)
    if not os.path.lexists(path) or not is_ours(Path(path)):
        return False
    os.unlink(path)
    return True


def where(name: str, directory: str | None) -> str:
    return (f"the watcher writes the metrics of tunnel {name} to "
            f"{prom_path(directory or DEFAULT_DIR, name)}")


def moved(name: str, before: str | None, after: str | None) -> None:
    """After an install that changed --metrics-dir, on the live system: the
    tunnel's file in the directory used before goes. The watcher reads the
    directory from the record each time it writes, so it never writes the
    old one again."""
    before, after = before or DEFAULT_DIR, after or DEFAULT_DIR
    if before != after:
        remove(name, before)


def forget(name: str, directory: str | None, live: bool) -> None:
    """For uninstall, on the live system: the tunnel's .prom files (in the
    configured directory and in DEFAULT_DIR)."""
    for d in sorted({directory or DEFAULT_DIR, DEFAULT_DIR}) if live else []:
        remove(name, d)

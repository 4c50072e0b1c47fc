"""The one writer: puts a plan on disk atomically, all or nothing, and
removes only files wgns wrote.

A plan is checked whole before anything is written: a path that exists and
does not carry wgns's marker is a conflict and nothing is touched. Files are
written to a temporary name in their own directory, fsynced, then renamed
into place; if anything fails, every rename is undone and every directory
created is removed again.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

from ..core.errors import ConflictError, WgnsError
from ..core.files import TMP_TAG, fsync_dir, is_ours, lookup, read_owned, stage, under
from ..core.paths import CONF_DIR, UNIT_DIR
from ..core.plan import File, Link, Plan

__all__ = ["lookup", "read_owned", "under", "write_plan", "remove_owned", "locked",
           "check_root", "require_root", "conflicts", "refuse_conflicts"]


def check_root(root: str) -> None:
    """--root must name an existing directory wgns can write in, and not the
    live system (whose units need systemd told)."""
    if os.path.realpath(root) == "/":
        raise WgnsError("--root / is the live system; leave --root out to change it")
    if not os.path.isdir(root):
        raise WgnsError(f"--root {root}: not an existing directory")
    if not os.access(root, os.W_OK | os.X_OK):
        raise WgnsError(f"--root {root}: not writable")


@contextlib.contextmanager
def locked(root: str) -> Iterator[None]:
    """Serialise every run that writes below ROOT (an flock on the root
    directory itself: no lock file to leave behind), then sweep the
    temporary files of runs that were killed mid-write: with the lock
    held, any that exist are stale, and one may hold a key."""
    from ..core.safeio import dir_lock
    with dir_lock(root):
        sweep_temporaries(root)
        yield


def sweep_temporaries(root: str) -> list[str]:
    removed = []
    dirs = [under(root, UNIT_DIR), under(root, CONF_DIR)]
    for base in list(dirs):
        if base.is_dir() and not base.is_symlink():
            dirs += [d for d in base.iterdir() if d.is_dir() and not d.is_symlink()]
    for d in dirs:
        if not d.is_dir() or d.is_symlink():
            continue
        for p in d.iterdir():
            if p.name.startswith(".") and TMP_TAG in p.name and (
                    p.is_symlink() or p.is_file()):  # never a directory
                p.unlink()
                removed.append(str(p))
    return removed


def conflicts(root: str, plan: Plan) -> list[str]:
    """Paths in the plan that exist and are not wgns's own."""
    bad = []
    for path, item in plan.items():
        dest = under(root, path)
        if (dest.exists() or dest.is_symlink()) and not is_ours(dest, item):
            bad.append(path)
    return sorted(bad)


def refuse_conflicts(root: str, plan: Plan) -> None:
    for path, item in sorted(plan.items()):
        text = item.text if isinstance(item, File) else item.target
        if any("\ud800" <= c <= "\udfff" for c in text):  # checked where it came in, too
            raise WgnsError(f"{path} would hold text that is not UTF-8; nothing was written")
    bad = conflicts(root, plan)
    if bad:
        raise ConflictError(
            f"{bad[0]} exists and was not written by wgns; refusing to overwrite it",
            hint="move it away, or pick another tunnel with --name")


def _makedirs(d: Path, created: list[Path]) -> None:
    missing = []
    while not os.path.lexists(d):
        missing.append(d)
        d = d.parent
    for m in reversed(missing):
        m.mkdir(mode=0o755)
        os.chmod(m, 0o755)
        created.append(m)


def _snapshot(dest: Path) -> File | Link | None:
    if dest.is_symlink():
        return Link(os.readlink(dest))
    if dest.exists():
        from ..core.safeio import read_text
        return File(read_text(str(dest), 1 << 20, follow=False),
                    dest.stat().st_mode & 0o7777)
    return None


def write_plan(root: str, plan: Plan) -> list[str]:
    """Write every file of the plan, or none. Returns the paths written."""
    refuse_conflicts(root, plan)
    created: list[Path] = []
    staged: list[tuple[str, Path]] = []
    replaced: list[tuple[Path, File | Link | None]] = []
    try:
        # The tunnel's config first: a run killed part way leaves a tunnel
        # that 'wgns uninstall' can find and remove.
        for path, item in sorted(plan.items(), key=lambda kv: (
                not kv[0].startswith(CONF_DIR + "/"), kv[0])):
            dest = under(root, path)
            _makedirs(dest.parent, created)
            staged.append((stage(dest, item), dest))
        for tmp, dest in staged:
            before = _snapshot(dest)
            os.replace(tmp, dest)
            replaced.append((dest, before))
        for d in {dest.parent for _, dest in staged}:
            fsync_dir(d)
    except BaseException:
        for tmp, _ in staged:
            if os.path.lexists(tmp):
                os.unlink(tmp)
        for dest, before in reversed(replaced):
            os.unlink(dest)
            if before is not None:
                _stage_back(dest, before)
        for d in reversed(created):
            if d.exists() and not any(d.iterdir()):
                d.rmdir()
        raise
    return sorted(plan)


def _stage_back(dest: Path, before: File | Link) -> None:
    os.replace(stage(dest, before), dest)


def remove_owned(root: str, paths: list[str], prune: tuple[str, ...] | list[str] = ()
                 ) -> list[str]:
    """Remove the given paths where they are wgns's own; then remove each
    directory in `prune` if it is left empty. Returns what was removed."""
    removed = []
    for path in [*paths, *prune]:
        under(root, path)  # refuses a symlinked directory before anything is removed
    for path in paths:
        dest = under(root, path)
        if dest.is_symlink() or dest.is_file():
            if dest.is_symlink() or is_ours(dest):
                dest.unlink()
                removed.append(path)
    for d in prune:
        dest = under(root, d)
        try:
            dest.rmdir()
            removed.append(d)
        except FileNotFoundError:
            pass
        except OSError:
            pass  # not empty: someone else's files are there
    return removed


def require_root(root: str | None) -> None:
    if root is None and os.geteuid() != 0:
        raise WgnsError(
            "this command changes the system and needs root",
            hint="run it with sudo, or write into a directory with --root DIR")

"""The one writer: puts a plan on disk atomically, all or nothing, and
removes only files wgns wrote.

A plan is checked whole before anything is written: a path that exists and
does not carry wgns's marker is a conflict and nothing is touched. Files are
written to a temporary name in their own directory, fsynced, then renamed
into place; if anything fails, every rename is undone and every directory
created is removed again.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import ConflictError, WgnsError
from .render import MARKER, File, Link, Plan


def under(root: str, path: str) -> Path:
    return Path(root) / path.lstrip("/")


def is_ours(dest: Path, item: File | Link | None = None) -> bool:
    """A file wgns wrote (marker on its first line), or a link that points
    where wgns would point it."""
    if dest.is_symlink():
        return isinstance(item, Link) and os.readlink(dest) == item.target
    try:
        with open(dest, encoding="utf-8", errors="replace") as f:
            return f.readline().startswith(MARKER)
    except (FileNotFoundError, IsADirectoryError):
        return False


def conflicts(root: str, plan: Plan) -> list[str]:
    """Paths in the plan that exist and are not wgns's own."""
    bad = []
    for path, item in plan.items():
        dest = under(root, path)
        if (dest.exists() or dest.is_symlink()) and not is_ours(dest, item):
            bad.append(path)
    return sorted(bad)


def refuse_conflicts(root: str, plan: Plan) -> None:
    bad = conflicts(root, plan)
    if bad:
        raise ConflictError(
            f"{bad[0]} exists and was not written by wgns; refusing to overwrite it",
            hint="move it away, or pick another tunnel with --name")


def _fsync_dir(d: Path) -> None:
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _makedirs(d: Path, created: list[Path]) -> None:
    missing = []
    while not d.exists():
        missing.append(d)
        d = d.parent
    for m in reversed(missing):
        m.mkdir(mode=0o755)
        os.chmod(m, 0o755)
        created.append(m)


def _stage(dest: Path, item: File | Link) -> str:
    if isinstance(item, Link):
        tmp = str(dest.parent / f".{dest.name}.wgns-{os.getpid()}")
        os.symlink(item.target, tmp)
        return tmp
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    try:
        os.fchmod(fd, item.mode)
        os.write(fd, item.text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return tmp


def _snapshot(dest: Path) -> File | Link | None:
    if dest.is_symlink():
        return Link(os.readlink(dest))
    if dest.exists():
        return File(dest.read_text(), dest.stat().st_mode & 0o7777)
    return None


def write_plan(root: str, plan: Plan) -> list[str]:
    """Write every file of the plan, or none. Returns the paths written."""
    refuse_conflicts(root, plan)
    created: list[Path] = []
    staged: list[tuple[str, Path]] = []
    replaced: list[tuple[Path, File | Link | None]] = []
    try:
        for path, item in sorted(plan.items()):
            dest = under(root, path)
            _makedirs(dest.parent, created)
            staged.append((_stage(dest, item), dest))
        for tmp, dest in staged:
            before = _snapshot(dest)
            os.replace(tmp, dest)
            replaced.append((dest, before))
        for d in {dest.parent for _, dest in staged}:
            _fsync_dir(d)
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
    os.replace(_stage(dest, before), dest)


def remove_owned(root: str, paths: list[str], prune: tuple[str, ...] | list[str] = ()
                 ) -> list[str]:
    """Remove the given paths where they are wgns's own; then remove each
    directory in `prune` if it is left empty. Returns what was removed."""
    removed = []
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


def read_owned(root: str, path: str) -> str | None:
    """The text of a wgns file, or None when absent or not wgns's."""
    dest = under(root, path)
    if dest.is_file() and not dest.is_symlink() and is_ours(dest):
        return dest.read_text()
    return None


def require_root(root: str | None) -> None:
    if root is None and os.geteuid() != 0:
        raise WgnsError(
            "this command changes the system and needs root",
            hint="run it with sudo, or write into a directory with --root DIR")

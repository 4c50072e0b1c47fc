"""A tunnel's record in and out, for the commands: load it (or adopt what
an older wgns wrote), render the old and the new record, write what
changed and remove what is no longer declared, as one step of the one
writer. Also what every writing command shares: its report, its lock, the
copy of wgns the units will run.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

from ..core import paths
from ..core.config import Tunnel
from ..core.copy import dynamic_user_can_run, proxyd_path
from ..core.errors import ConfigError, WgnsError
from ..core.files import is_ours, under
from ..core.installed import installed, load, stored
from ..core.plan import File, Link, Plan
from ..core.record import Record
from ..core.safeio import read_bytes
from ..render.tunnel import render, shared
from .writer import locked, remove_owned, write_plan

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Report:
    """What a command did, line by line, for the CLI to print."""
    lines: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def say(self, line: str) -> None:
        self.lines.append(line)


def serialised(fn: F) -> F:
    """Run a writing command under the root's lock (writer.locked), after
    the files of tunnels an older wgns installed were brought to this
    version's (adopt_older)."""
    return _locked(fn, adopt=True)


def serialised_as_found(fn: F) -> F:
    """The same, leaving an older wgns's files as they are."""
    return _locked(fn, adopt=False)


def _locked(fn: F, adopt: bool) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        arguments = inspect.signature(fn).bind(*args, **kwargs).arguments
        root = arguments["root"]
        with locked(root):
            if adopt:
                adopt_older(root, arguments.get("sd"))
            return fn(*args, **kwargs)
    return wrapper  # type: ignore[return-value]


def older(root: str) -> list[str]:
    """The tunnels an older wgns installed (no record.json yet)."""
    return [n for n in installed(root) if stored(root, n) is None]


def adopt_older(root: str, sd: Any) -> list[str]:
    """Every tunnel an older wgns installed gets its record, read once from
    its files, and the files this version renders from it (the one
    watcher instead of one per tunnel); the older watchers stop and the one
    watcher starts. Run by every writing command and by `wgns migrate`
    (the .deb's postinst): until then, the older units run this copy's
    helpers, which read the older files (legacy.py)."""
    names = older(root)
    for name in names:
        record = load(root, name)
        save(root, record, record)
    left = leftover_watchers(root)
    if left:
        remove_owned(root, sorted({p for ps in left.values() for p in ps}),
                     prune=prunable([p for ps in left.values() for p in ps]))
    if sd is not None and (names or left):
        for name in sorted({*names, *left}):
            sd.stop(paths.legacy_watch_instance(name))
        sd.reload()
        sd.restart(paths.WATCH_UNIT, wait=False)
    return names


def leftover_watchers(root: str) -> dict[str, list[str]]:
    """{tunnel: the older wgns's watcher files still there} of tunnels that
    have their record: what a `migrate --downgrade` killed half way left
    (the older watchers written, the records not yet removed)."""
    out: dict[str, list[str]] = {}
    for name in installed(root):
        found = [p for p in legacy_files(root, name) if os.path.lexists(under(root, p))]
        if found:
            out[name] = found
    return out


def python_path() -> str:
    """The interpreter the units run the helpers with: the CLI's own, so
    that pip, pipx, venv and .deb installs each call their own wgns."""
    return str(Path(sys.executable))


def require_tunnel(root: str, name: str) -> Record:
    """The record of installed tunnel NAME (adopted from an older wgns's
    files when it has none yet), or a one-line error."""
    from ..core.config import check_name
    check_name(name)
    if name not in installed(root):
        raise WgnsError(f"no tunnel named {name!r} is installed",
                        hint="run 'wgns install' first, or pick one with --name")
    return load(root, name)


def confined_units(root: str) -> dict[str, str]:
    """{unit: tunnel} of every tunnel's record."""
    return {u: name for name in installed(root) for u in load(root, name).confined}


def host_nsswitch(root: str) -> str | None:
    """The host's nsswitch.conf (bytes that are not UTF-8 become U+FFFD:
    only its hosts: line matters, and wgns rewrites that one)."""
    p = under(root, "/etc/nsswitch.conf")
    if not os.path.lexists(p):
        return None
    try:
        return read_bytes(str(p), 1 << 20).decode("utf-8", "replace")
    except ConfigError as e:
        raise WgnsError(f"cannot copy the host's name service switch: {e}") from None


def this_copy(record: Record, root: str, python: str) -> Record:
    """RECORD, its units to run this copy of wgns (PYTHON and its helper)."""
    helper = paths.helper_path()
    return record.change(python=python, helper=helper, proxyd=proxyd_path(root),
                         dynamic_user=dynamic_user_can_run(python, helper))


def new_record(tunnel: Tunnel, root: str, python: str) -> Record:
    return this_copy(Record(tunnel=tunnel, python=python, helper=""), root, python).change(
        nsswitch=host_nsswitch(root))


def legacy_files(root: str, name: str) -> list[str]:
    """What an older wgns wrote for tunnel NAME that no record renders: its
    own watcher instance (and its metrics drop-in) or its timer; and, once
    no tunnel is left on them, the templates."""
    own = [f"{paths.WANTS}/{paths.legacy_watch_instance(name)}",
           paths.legacy_metrics_dropin(name),
           f"{paths.UNIT_DIR}/timers.target.wants/wgns-watch@{name}.timer"]
    others = [n for n in installed(root) if n != name and stored(root, n) is None]
    if not others:
        own += [f"{paths.UNIT_DIR}/{paths.LEGACY_WATCH_TEMPLATE}",
                f"{paths.UNIT_DIR}/{paths.LEGACY_WATCH_TIMER}"]
    return own


def _unchanged(root: str, path: str, item: File | Link) -> bool:
    dest = under(root, path)
    if isinstance(item, Link):
        return dest.is_symlink() and os.readlink(dest) == item.target
    if dest.is_symlink() or not dest.is_file() or not is_ours(dest):
        return False
    try:
        same = dest.read_bytes() == item.text.encode()
    except OSError:
        return False
    return same and (dest.stat().st_mode & 0o7777) == item.mode


def plan_of(root: str, record: Record | None) -> Plan:
    """Every file of RECORD's tunnel, and the shared ones."""
    if record is None:
        return {}
    return {**render(record), **shared(record)}


def save(root: str, before: Record | None, after: Record | None,
         keep_shared: bool = True) -> list[str]:
    """Write AFTER's files where they differ, then remove what BEFORE had
    and AFTER has not (an older wgns's own files too, the first time). The
    shared files go only with the last tunnel (KEEP_SHARED False). Returns
    the paths written."""
    name = (after or before).name  # type: ignore[union-attr]
    legacy = before is not None and stored(root, name) is None
    new = plan_of(root, after) if after is not None else {}
    old = plan_of(root, before)
    if after is None and keep_shared and before is not None:
        old = render(before)
    changed = {p: item for p, item in new.items() if not _unchanged(root, p, item)}
    stale = [p for p in old if p not in new]
    if legacy:
        stale += legacy_files(root, name)
    for path in stale:
        under(root, path)   # a symlinked directory: refused before anything is written
    write_plan(root, changed)
    remove_owned(root, stale, prune=prunable(stale + [paths.conf_path(name)]))
    return sorted(changed)


def prunable(removed: list[str]) -> list[str]:
    """The directories REMOVED leaves that wgns may take away when they are
    empty (deepest first): those below the unit directory (drop-in and
    .wants folders), a tunnel's own folder, and /etc/wgns itself."""
    dirs = {os.path.dirname(p) for p in removed}
    keep = {d for d in dirs if d.startswith(paths.UNIT_DIR + "/")
            or d == paths.CONF_DIR or d.startswith(paths.CONF_DIR + "/")}
    return sorted(keep, reverse=True)

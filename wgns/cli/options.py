"""What every command of the CLI shares: the --name and --root options,
turning an error into one line and an exit code (0 success, 1 error, 2
usage; a traceback only with --debug), numbers in ASCII digits, the
systemd connection (none under --root), a report printed.

Written in the `x: T = typer.Option(...)` style so that it runs on
Debian 12's typer 0.7 as well as on current typer."""

from __future__ import annotations

import functools
import re
from typing import Any, Callable, Optional, TypeVar

import typer

from ..core.errors import WgnsError
from ..core.text import one_line

STATE = {"debug": False}
ROOT_HELP = "Write the files below DIR and do not call systemd (images, packaging)."
NAME_HELP = "Tunnel name: unit NAME.service, namespace NAME, /etc/wgns/NAME.conf."
F = TypeVar("F", bound=Callable[..., Any])


def _root_option(value: Optional[str]) -> Optional[str]:
    if value is not None and not value:
        raise typer.BadParameter("an empty --root would mean the live system; "
                                 "leave --root out for that")
    return value


# The two options most commands take, declared once (typer reads them as
# markers: one instance serves every command).
NAME_OPTION = typer.Option("wg", "--name", help=NAME_HELP)
ROOT_OPTION = typer.Option(None, "--root", metavar="DIR", help=ROOT_HELP,
                           callback=_root_option)


def fail(e: Exception) -> None:
    """One line for the user (a traceback with --debug). OSError comes from
    the file system (a path too long, a full disk): its text names the path."""
    if STATE["debug"]:
        raise e
    if isinstance(e, OSError):
        where = f"{e.filename}: " if e.filename else ""
        e = WgnsError(f"{where}{e.strerror or e}")
    typer.echo(f"wgns: error: {one_line(str(e))}", err=True)
    raise typer.Exit(1)


def handled(fn: F) -> F:
    """A command whose WgnsError and OSError become fail()'s one line."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (WgnsError, OSError) as e:
            fail(e)
    return wrapper  # type: ignore[return-value]


def usage(message: str) -> None:
    typer.echo(f"wgns: error: {message}", err=True)
    raise typer.Exit(2)


def number(value: Optional[str], what: str, lo: int, hi: int) -> Optional[int]:
    """An option or argument in ASCII digits (click's int() would take
    '+80', '8_0' or Arabic-Indic digits)."""
    if value is None:
        return None
    if not re.fullmatch(r"[0-9]{1,5}", value) or not lo <= int(value) <= hi:
        raise typer.BadParameter(f"{what} must be a whole number from {lo} to {hi}")
    return int(value)


def systemd(root: Optional[str]) -> Any:
    """The systemd connection of a writing command (None under --root)."""
    from ..admin.writer import check_root, require_root
    require_root(root)
    if root is not None:
        check_root(root)
        return None
    from ..core.systemd import Systemd
    return Systemd()


def emit(report: Any) -> None:
    for w in report.warnings:
        typer.echo(f"wgns: warning: {one_line(w)}", err=True)
    for line in report.lines:
        typer.echo(one_line(line))

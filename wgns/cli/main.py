"""The `wgns` command: the typer app, its global options (--version,
--debug), every command registered from tunnel.py and ports.py, and `run`,
the entry point. Importing the app imports no admin module: each command
imports what it does when it runs (`wgns --version` stays quick)."""

from __future__ import annotations

import sys

import typer

from .. import __version__
from . import ports, tunnel
from .options import STATE

app = typer.Typer(
    help="Confine systemd services to a network namespace whose only way out "
    "is a WireGuard tunnel.",
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"wgns {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True,
        help="Print the version and exit."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors."),
) -> None:
    """Confine systemd services to a namespace whose only way out is WireGuard."""
    STATE["debug"] = debug


for command in (tunnel.install, tunnel.confine, tunnel.unconfine, tunnel.status,
                tunnel.check, tunnel.uninstall, tunnel.migrate, ports.expose, ports.unexpose,
                ports.reach, ports.unreach):
    app.command()(command)
app.command("port-forward")(ports.port_forward)


def run() -> None:
    try:
        app(prog_name="wgns")
    except KeyboardInterrupt:
        sys.exit(130)

"""The command line (typer): options, output, exit codes. `run` is the
`wgns` command's entry point."""

from .main import app, run

__all__ = ["app", "run"]

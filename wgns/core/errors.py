"""Exception types. Only cli.py turns them into messages and exit codes."""

from __future__ import annotations


class WgnsError(Exception):
    """An error the user can act on: one line, plus an optional hint."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} (hint: {self.hint})"
        return self.message


class ConfigError(WgnsError):
    """A wg-quick file or option that cannot be used."""

    def __init__(
        self, source: str, message: str, line: int | None = None,
        hint: str | None = None,
    ) -> None:
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {message}", hint)


class ConflictError(WgnsError):
    """A file wgns would write already exists and is not wgns's own."""


class SystemdError(WgnsError):
    """systemd refused or failed an operation."""


class TunnelError(WgnsError):
    """Bringing a tunnel up or down failed."""

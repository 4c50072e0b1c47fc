"""wgns: confine systemd services to a network namespace whose only way out
is a WireGuard tunnel."""

__version__ = "0.2.0"

"""The command line: a thin typer layer over ops.py and status.py.

Written in the `x: T = typer.Option(...)` style so that it runs on
Debian 12's typer 0.7 as well as on current typer. Only this module turns
exceptions into messages and exit codes: 0 success, 1 error, 2 usage.
"""

from __future__ import annotations

import json
import sys
from typing import List, Optional

import typer

from .. import __version__
from ..core.errors import WgnsError
from ..core.text import one_line

app = typer.Typer(
    help="Confine systemd services to a network namespace whose only way out "
    "is a WireGuard tunnel.",
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

STATE = {"debug": False}

ROOT_HELP = "Write the files below DIR and do not call systemd (images, packaging)."
NAME_HELP = "Tunnel name: unit NAME.service, namespace NAME, /etc/wgns/NAME.conf."


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


def _fail(e: Exception) -> None:
    """One line for the user (a traceback with --debug). OSError comes from
    the file system (a path too long, a full disk): its text names the path."""
    if STATE["debug"]:
        raise e
    if isinstance(e, OSError):
        where = f"{e.filename}: " if e.filename else ""
        e = WgnsError(f"{where}{e.strerror or e}")
    typer.echo(f"wgns: error: {one_line(str(e))}", err=True)
    raise typer.Exit(1)




def _number(value: Optional[str], what: str, lo: int, hi: int) -> Optional[int]:
    """An option or argument in ASCII digits (click's int() would take
    '+80', '8_0' or Arabic-Indic digits)."""
    import re
    if value is None:
        return None
    if not re.fullmatch(r"[0-9]{1,5}", value) or not lo <= int(value) <= hi:
        raise typer.BadParameter(f"{what} must be a whole number from {lo} to {hi}")
    return int(value)


def _systemd(root: Optional[str]):  # type: ignore[no-untyped-def]
    from ..admin.writer import check_root, require_root
    require_root(root)
    if root is not None:
        check_root(root)
        return None
    from ..core.systemd import Systemd
    return Systemd()


def _emit(report) -> None:  # type: ignore[no-untyped-def]
    for w in report.warnings:
        typer.echo(f"wgns: warning: {one_line(w)}", err=True)
    for line in report.lines:
        typer.echo(one_line(line))


@app.command()
def install(
    conf: Optional[str] = typer.Option(
        None, "--conf", metavar="FILE", help="A wg-quick file from your VPN provider."),
    name: str = NAME_OPTION,
    address: Optional[List[str]] = typer.Option(
        None, "--address", metavar="CIDR", help="Tunnel address (repeat for IPv4 and IPv6)."),
    private_key_file: Optional[str] = typer.Option(
        None, "--private-key-file", metavar="FILE", help="File holding the private key."),
    peer: Optional[str] = typer.Option(
        None, "--peer", metavar="PUBKEY", help="The server's public key."),
    endpoint: Optional[str] = typer.Option(
        None, "--endpoint", metavar="HOST:PORT", help="The server's address and port."),
    allowed_ips: Optional[List[str]] = typer.Option(
        None, "--allowed-ips", metavar="CIDR",
        help="Routed through the tunnel (repeatable; default 0.0.0.0/0 and ::/0)."),
    preshared_key_file: Optional[str] = typer.Option(
        None, "--preshared-key-file", metavar="FILE", help="File holding a preshared key."),
    keepalive: Optional[str] = typer.Option(
        None, "--keepalive", metavar="SECONDS", help="Persistent keepalive interval."),
    dns: Optional[List[str]] = typer.Option(
        None, "--dns", metavar="IP", help="DNS server for confined units (repeatable)."),
    mtu: Optional[str] = typer.Option(None, "--mtu", metavar="BYTES", help="Tunnel MTU."),
    no_start: bool = typer.Option(False, "--no-start", help="Install but do not start."),
    metrics_dir: Optional[str] = typer.Option(
        None, "--metrics-dir", metavar="DIR", help="Where the watcher writes wgns-NAME.prom "
        "for node-exporter (default: /var/lib/prometheus/node-exporter when it exists)."),
    root: Optional[str] = ROOT_OPTION,
) -> None:
    """Install a tunnel from a wg-quick file (--conf) or from options, and start it."""
    from ..admin import metrics, ops
    from ..core import config
    try:
        if conf is None and not any((address, private_key_file, peer, endpoint)):
            conf = _wg_quick_file(config.check_name(name), root)
        if conf is not None:
            extra = [o for o, v in (("--address", address), ("--peer", peer),
                                    ("--endpoint", endpoint),
                                    ("--private-key-file", private_key_file)) if v]
            if extra:
                raise typer.BadParameter(f"{extra[0]} cannot be combined with --conf")
            tunnel = config.read_conf(conf, config.check_name(name))
        else:
            missing = [o for o, v in (("--address", address),
                                      ("--private-key-file", private_key_file),
                                      ("--peer", peer), ("--endpoint", endpoint)) if not v]
            if missing:
                raise typer.BadParameter(
                    f"{missing[0]} is required without --conf (or import a provider's "
                    "file with --conf FILE)")
            assert private_key_file and peer and endpoint and address
            tunnel = config.from_options(
                name, list(address), config.read_key_file(private_key_file, "private key"),
                peer, endpoint, list(allowed_ips or []),
                config.read_key_file(preshared_key_file, "preshared key")
                if preshared_key_file else None,
                _number(keepalive, "--keepalive", 0, 65535), list(dns or []),
                _number(mtu, "--mtu", 1280, 65535))
        sd = _systemd(root)
        if metrics_dir is not None:
            metrics_dir = metrics.check_dir(metrics_dir, root or "/", ops.python_path())
        before = metrics.configured_dir(root or "/", tunnel.name)
        _emit(ops.install(tunnel, root or "/", ops.python_path(), sd, start=not no_start,
                          metrics_dir=metrics_dir))
        if metrics_dir is not None:
            typer.echo(one_line(metrics.moved(tunnel.name, before, metrics_dir, sd)))
    except (WgnsError, OSError) as e:
        _fail(e)


def _wg_quick_file(name: str, root: Optional[str]) -> str:
    """`wgns install` with neither --conf nor options: the tunnel a user
    already runs with wg-quick, /etc/wireguard/NAME.conf, when there is one."""
    import os

    from ..render.units import WG_QUICK_DIR
    path = f"{WG_QUICK_DIR}/{name}.conf"
    where = os.path.join(root, path.lstrip("/")) if root else path
    if not os.path.lexists(where):
        typer.echo(f"wgns: error: no {path} to import; give a provider's wg-quick file "
                   "with --conf FILE, or the tunnel with --address, --private-key-file, "
                   "--peer and --endpoint", err=True)
        raise typer.Exit(2)
    typer.echo(f"importing {path} (wg-quick's configuration of {name})", err=True)
    return where


@app.command()
def confine(
    units: List[str] = typer.Argument(..., metavar="UNIT...", help="Services to confine."),
    name: str = NAME_OPTION,
    force: bool = typer.Option(
        False, "--force", help="Confine a unit systemd does not know yet."),
    no_restart: bool = typer.Option(
        False, "--no-restart", help="Do not restart running units."),
    root: Optional[str] = ROOT_OPTION,
) -> None:
    """Confine services to a tunnel (running ones are restarted into it)."""
    from ..admin import ops
    try:
        sd = _systemd(root)
        _emit(ops.confine(list(units), name, root or "/", sd, force, not no_restart))
    except (WgnsError, OSError) as e:
        _fail(e)


@app.command()
def unconfine(
    units: List[str] = typer.Argument(..., metavar="UNIT...", help="Services to release."),
    no_restart: bool = typer.Option(
        False, "--no-restart", help="Do not restart running units."),
    root: Optional[str] = ROOT_OPTION,
) -> None:
    """Remove the confinement drop-in from services."""
    from ..admin import ops
    try:
        sd = _systemd(root)
        _emit(ops.unconfine(list(units), root or "/", sd, not no_restart))
    except (WgnsError, OSError) as e:
        _fail(e)


@app.command()
def status(
    name: Optional[str] = typer.Option(
        None, "--name", help="Only this tunnel (default: every installed tunnel)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    prometheus: bool = typer.Option(
        False, "--prometheus", help="The Prometheus text format (the watcher's metrics)."),
) -> None:
    """Show tunnels: state, namespace, peers, handshakes, transfer, DNS, confined units."""
    from ..admin import ops
    from ..admin.writer import require_root
    if as_json and prometheus:
        typer.echo("wgns: error: --json and --prometheus exclude each other", err=True)
        raise typer.Exit(2)
    try:
        require_root(None)
        names = [name] if name else ops.installed_tunnels("/")
        if name:
            ops.require_tunnel("/", name)
        from ..admin import status as st
        from ..core.systemd import Systemd
        with Systemd() as sd:
            result = [st.gather(n, sd) for n in names]
        if as_json:
            typer.echo(json.dumps({"tunnels": result}, indent=2))
        elif prometheus:
            from ..admin.metrics import render
            typer.echo(render(result), nl=False)
        elif not result:
            typer.echo("no tunnels installed; add one with: wgns install --conf FILE")
        else:
            typer.echo("\n\n".join(st.format_text(r) for r in result))
    except (WgnsError, OSError) as e:
        _fail(e)


@app.command()
def check(
    name: str = NAME_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    max_handshake_age: int = typer.Option(
        180, "--max-handshake-age", metavar="SECONDS",
        help="Fail when a peer's latest handshake is older."),
) -> None:
    """Leak test: interfaces, routes, DNS, resolver sockets, drop-ins, handshake."""
    from ..admin import ops
    from ..admin.writer import require_root
    try:
        require_root(None)
        ops.require_tunnel("/", name)
        from ..admin.check import as_json as to_json
        from ..admin.check import run_checks
        from ..render.units import helper_path
        from ..runtime.link import load
        checks = run_checks(load(name), ops.python_path(), helper_path(), max_handshake_age)
    except (WgnsError, OSError) as e:
        _fail(e)
        return
    if as_json:
        typer.echo(to_json(name, checks))
    else:
        for c in checks:
            typer.echo(f"{'PASS' if c.ok else 'FAIL'}  {c.name:<17} {c.detail}")
    if not all(c.ok for c in checks):
        raise typer.Exit(1)


@app.command()
def uninstall(
    name: str = NAME_OPTION,
    root: Optional[str] = ROOT_OPTION,
) -> None:
    """Stop a tunnel and remove everything wgns wrote for it."""
    from ..admin import ops
    try:
        sd = _systemd(root)
        _emit(ops.uninstall(name, root or "/", sd))
    except (WgnsError, OSError) as e:
        _fail(e)


# The commands about ports (expose, unexpose, port-forward) live next door.
from . import ports as cli_ports  # noqa: E402,F401


def run() -> None:
    try:
        app(prog_name="wgns")
    except KeyboardInterrupt:
        sys.exit(130)

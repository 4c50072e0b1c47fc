"""The commands about a tunnel itself: install, confine, unconfine,
status, check, uninstall (typer only: options, output, exit codes; what
each does is in admin/, imported when the command runs)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Dict, List, Optional

import typer

from .options import NAME_OPTION, ROOT_OPTION, emit, handled, number, systemd, usage

if TYPE_CHECKING:
    from ..core.config import Tunnel

# install --provider pia's options (here: install would be too long a function).
PROVIDER_OPTION = typer.Option(
    None, "--provider", metavar="PROVIDER", help="Make the tunnel through a provider's "
    "API instead of a file: pia (Private Internet Access).")
REGION_OPTION = typer.Option(
    None, "--region", metavar="REGION", help="With --provider pia: the region's id in "
    "PIA's server list (e.g. de-frankfurt, swiss).")
ACCOUNT_OPTION = typer.Option(
    None, "--account", metavar="FILE", help="With --provider pia: 'username=' and "
    "'password=' lines of the PIA account, in a 0600 file.")
PIA_API_OPTION = typer.Option(
    None, "--pia-api", metavar="URL", help="With --provider pia: another API base for "
    "the token and the server list (default: PIA's own).")
PIA_CA_OPTION = typer.Option(
    None, "--pia-ca", metavar="FILE", help="With --provider pia: the authority of the "
        "servers' certificates (default: PIA's, shipped with wgns).")


@handled
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
    provider: Optional[str] = PROVIDER_OPTION,
    region: Optional[str] = REGION_OPTION,
    account: Optional[str] = ACCOUNT_OPTION,
    pia_api: Optional[str] = PIA_API_OPTION,
    pia_ca: Optional[str] = PIA_CA_OPTION,
    root: Optional[str] = ROOT_OPTION,
) -> None:
    """Install a tunnel from a wg-quick file (--conf), from options or through a
    provider's API (--provider pia), and start it."""
    from ..admin import metrics_dir as metrics
    from ..admin import store, tunnels
    pia_options = {"--region": region, "--account": account, "--pia-api": pia_api,
                   "--pia-ca": pia_ca}
    _provider_options(provider, pia_options, conf=conf, address=address,
                      private_key_file=private_key_file, peer=peer, endpoint=endpoint,
                      allowed_ips=allowed_ips, preshared_key_file=preshared_key_file,
                      dns=dns, keepalive=keepalive)
    sd = systemd(root)
    if metrics_dir is not None:
        metrics_dir = metrics.check_dir(metrics_dir, root or "/", store.python_path())
    made = None
    if provider is not None:   # asked only once every option passed and the name is free
        from ..admin import pia
        from ..core.config import check_name
        tunnels.name_free(root or "/", check_name(name), sd)
        made = pia.tunnel(name, region or "", account or "", pia_api, pia_ca,
                          number(mtu, "--mtu", 1280, 65535))
    tunnel = made[0] if made else _from_file_or_options(
        conf, name, root, address, private_key_file, peer, endpoint, allowed_ips,
        preshared_key_file, keepalive, dns, mtu)
    emit(tunnels.install(tunnel, root or "/", store.python_path(), sd, start=not no_start,
                         metrics=metrics_dir, provider=made[1] if made else None))


def _from_file_or_options(conf: Optional[str], name: str, root: Optional[str],
                          address: Optional[List[str]], private_key_file: Optional[str],
                          peer: Optional[str], endpoint: Optional[str],
                          allowed_ips: Optional[List[str]], preshared_key_file: Optional[str],
                          keepalive: Optional[str], dns: Optional[List[str]],
                          mtu: Optional[str]) -> Tunnel:
    from ..core import config
    if conf is None and not any((address, private_key_file, peer, endpoint)):
        conf = _wg_quick_file(config.check_name(name), root)
    if conf is not None:
        extra = [o for o, v in (("--address", address), ("--peer", peer),
                                ("--endpoint", endpoint),
                                ("--private-key-file", private_key_file)) if v]
        if extra:
            raise typer.BadParameter(f"{extra[0]} cannot be combined with --conf")
        return config.read_conf(conf, config.check_name(name))
    return _from_options(name, address, private_key_file, peer, endpoint, allowed_ips,
                         preshared_key_file, keepalive, dns, mtu)


def _provider_options(provider: Optional[str], options: Dict[str, Optional[str]],
                      **others: object) -> None:
    """--provider pia's options checked: its own given, no tunnel options;
    without --provider, none of its own."""
    given = [o for o, v in options.items() if v is not None]
    if provider is None:
        if given:
            usage(f"{given[0]} goes with --provider pia")
        return
    if provider != "pia":
        usage(f"--provider {provider[:40]!r}: the provider wgns knows is pia")
    clash = [f"--{k.replace('_', '-')}" for k, v in others.items() if v not in (None, [], ())]
    if clash:
        usage(f"{clash[0]} cannot be combined with --provider: the provider's API gives "
              "the tunnel")
    for option in ("--region", "--account"):
        if not options[option]:
            usage(f"--provider pia needs {option}")


def _from_options(name: str, address: Optional[List[str]], private_key_file: Optional[str],
                  peer: Optional[str], endpoint: Optional[str],
                  allowed_ips: Optional[List[str]], preshared_key_file: Optional[str],
                  keepalive: Optional[str], dns: Optional[List[str]],
                  mtu: Optional[str]) -> Tunnel:
    """The tunnel `wgns install` describes with options instead of --conf."""
    from ..core import config
    missing = [o for o, v in (("--address", address),
                              ("--private-key-file", private_key_file),
                              ("--peer", peer), ("--endpoint", endpoint)) if not v]
    if missing:
        raise typer.BadParameter(
            f"{missing[0]} is required without --conf (or import a provider's "
            "file with --conf FILE)")
    assert private_key_file and peer and endpoint and address
    return config.from_options(
        name, list(address), config.read_key_file(private_key_file, "private key"),
        peer, endpoint, list(allowed_ips or []),
        config.read_key_file(preshared_key_file, "preshared key")
        if preshared_key_file else None,
        number(keepalive, "--keepalive", 0, 65535), list(dns or []),
        number(mtu, "--mtu", 1280, 65535))


def _wg_quick_file(name: str, root: Optional[str]) -> str:
    """`wgns install` with neither --conf nor options: the tunnel a user
    already runs with wg-quick, /etc/wireguard/NAME.conf, when there is one."""
    import os

    from ..core.paths import WG_QUICK_DIR
    path = f"{WG_QUICK_DIR}/{name}.conf"
    where = os.path.join(root, path.lstrip("/")) if root else path
    if not os.path.lexists(where):
        usage(f"no {path} to import; give a provider's wg-quick file with --conf FILE, "
              "or the tunnel with --address, --private-key-file, --peer and --endpoint")
    typer.echo(f"importing {path} (wg-quick's configuration of {name})", err=True)
    return where


@handled
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
    from ..admin.confine import confine as do_confine
    emit(do_confine(list(units), name, root or "/", systemd(root), force, not no_restart))


@handled
def unconfine(
    units: List[str] = typer.Argument(..., metavar="UNIT...", help="Services to release."),
    no_restart: bool = typer.Option(
        False, "--no-restart", help="Do not restart running units."),
    root: Optional[str] = ROOT_OPTION,
) -> None:
    """Remove the confinement drop-in from services."""
    from ..admin.confine import unconfine as do_unconfine
    emit(do_unconfine(list(units), root or "/", systemd(root), not no_restart))


@handled
def status(
    name: Optional[str] = typer.Option(
        None, "--name", help="Only this tunnel (default: every installed tunnel)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    prometheus: bool = typer.Option(
        False, "--prometheus", help="The Prometheus text format (the watcher's metrics)."),
) -> None:
    """Show tunnels: state, namespace, peers, handshakes, transfer, DNS, confined units."""
    from ..admin import status as st
    from ..admin.store import require_tunnel
    from ..admin.writer import require_root
    if as_json and prometheus:
        usage("--json and --prometheus exclude each other")
    require_root(None)
    if name:
        require_tunnel("/", name)
    result = st.tunnels([name] if name else None)
    if as_json:
        typer.echo(json.dumps({"tunnels": result}, indent=2))
    elif prometheus:
        typer.echo(st.metrics(result), nl=False)
    elif not result:
        typer.echo("no tunnels installed; add one with: wgns install --conf FILE")
    else:
        typer.echo("\n\n".join(st.format_text(r) for r in result))


@handled
def check(
    name: str = NAME_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    max_handshake_age: int = typer.Option(
        180, "--max-handshake-age", metavar="SECONDS",
        help="Fail when a peer's latest handshake is older."),
) -> None:
    """Leak test: interfaces, routes, DNS, resolver sockets, drop-ins, handshake."""
    from ..admin.check import as_json as to_json
    from ..admin.check import run_checks
    from ..admin.store import python_path, require_tunnel
    from ..admin.writer import require_root
    from ..core.paths import helper_path
    require_root(None)
    checks = run_checks(require_tunnel("/", name), python_path(), helper_path(),
                        max_handshake_age)
    if as_json:
        typer.echo(to_json(name, checks))
    else:
        for c in checks:
            typer.echo(f"{'PASS' if c.ok else 'FAIL'}  {c.name:<17} {c.detail}")
    if not all(c.ok for c in checks):
        raise typer.Exit(1)


@handled
def uninstall(
    name: str = NAME_OPTION,
    root: Optional[str] = ROOT_OPTION,
) -> None:
    """Stop a tunnel and remove everything wgns wrote for it."""
    from ..admin.tunnels import uninstall as do_uninstall
    emit(do_uninstall(name, root or "/", systemd(root)))


@handled
def migrate(
    downgrade: bool = typer.Option(
        False, "--downgrade", help="Back to the files of wgns before 0.2 (a watcher per "
        "tunnel), before installing that version."),
    root: Optional[str] = ROOT_OPTION,
) -> None:
    """Bring every tunnel's files to this version's (every writing command does first)."""
    from ..admin import migrate as do
    emit((do.downgrade if downgrade else do.upgrade)(root or "/", systemd(root)))

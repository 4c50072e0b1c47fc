"""The commands about ports: expose and unexpose (into the namespace from
the host), reach and unreach (from the namespace to the host or the LAN)
and port-forward (from the provider's gateway). Typer only, as tunnel.py."""

from __future__ import annotations

from typing import List, Optional

import typer

from .options import NAME_OPTION, ROOT_OPTION, emit, handled, number, systemd, usage


@handled
def expose(
    unit: str = typer.Argument(..., help="A confined service."),
    port: str = typer.Argument(..., help="The port it listens on inside the tunnel."),
    listen: Optional[str] = typer.Option(
        None, "--listen", metavar="ADDR:PORT",
        help="Where the host listens (default 127.0.0.1:PORT; 0.0.0.0:PORT for the LAN)."),
    udp: bool = typer.Option(False, "--udp", help="A UDP port (relayed by wgns's relay)."),
    name: str = NAME_OPTION,
    root: Optional[str] = ROOT_OPTION,
) -> None:
    """Make a port of a confined service reachable from the host (no veth, no NAT)."""
    from ..admin.bridges import expose as do_expose
    sd = systemd(root)
    if listen == "":
        raise typer.BadParameter("--listen needs ADDRESS:PORT")
    emit(do_expose(unit, number(port, "PORT", 1, 65535) or 0, listen, name, root or "/", sd,
                   udp))


@handled
def unexpose(
    unit: str = typer.Argument(..., help="A confined service."),
    port: str = typer.Argument(..., help="The port given to 'wgns expose'."),
    udp: bool = typer.Option(False, "--udp", help="The UDP port, not the TCP one."),
    name: str = NAME_OPTION,
    root: Optional[str] = ROOT_OPTION,
) -> None:
    """Stop exposing a port and remove its units."""
    from ..admin.bridges import unexpose as do_unexpose
    emit(do_unexpose(unit, number(port, "PORT", 1, 65535) or 0, name, root or "/",
                     systemd(root), udp))


@handled
def reach(
    target: str = typer.Argument(..., metavar="HOST:PORT",
                                 help="A service outside: an address or a name the host "
                                 "resolves, e.g. 127.0.0.1:5432, nas.lan:445, [::1]:9696."),
    at: Optional[str] = typer.Option(
        None, "--at", metavar="ADDR:PORT",
        help="Where confined units connect, a loopback address inside the namespace "
        "(default 127.0.0.1:PORT)."),
    udp: bool = typer.Option(False, "--udp", help="UDP (relayed by wgns's relay), not TCP."),
    name: str = NAME_OPTION,
    root: Optional[str] = ROOT_OPTION,
) -> None:
    """Let confined units reach one service on the host or the LAN (no route, no veth)."""
    from ..admin.bridges import reach as do_reach
    emit(do_reach(target, at, udp, name, root or "/", systemd(root)))


@handled
def unreach(
    target: str = typer.Argument(..., metavar="HOST:PORT", help="As given to 'wgns reach'."),
    udp: bool = typer.Option(False, "--udp", help="The UDP bridge, not the TCP one."),
    name: str = NAME_OPTION,
    root: Optional[str] = ROOT_OPTION,
) -> None:
    """Stop reaching HOST:PORT from the tunnel and remove its units."""
    from ..admin.bridges import unreach as do_unreach
    emit(do_unreach(target, udp, name, root or "/", systemd(root)))


@handled
def port_forward(
    name: str = NAME_OPTION,
    gateway: Optional[str] = typer.Option(
        None, "--gateway", metavar="IP",
        help="The provider's NAT-PMP gateway (default: the first address of the "
        "tunnel's IPv4 subnet, a /24 for a /32: 10.2.0.1 for ProtonVPN)."),
    static: Optional[str] = typer.Option(
        None, "--static", metavar="PORT",
        help="A port the provider reserved for the account (AirVPN and others): keep "
        "the clients on PORT, without NAT-PMP."),
    qbittorrent: Optional[str] = typer.Option(
        None, "--qbittorrent", metavar="URL",
        help="Keep qBittorrent's listening port in sync (its Web UI, e.g. "
        "http://127.0.0.1:8080)."),
    transmission: Optional[str] = typer.Option(
        None, "--transmission", metavar="URL",
        help="Keep Transmission's peer port in sync (its RPC, e.g. "
        "http://127.0.0.1:9091/transmission/rpc)."),
    deluge: Optional[str] = typer.Option(
        None, "--deluge", metavar="URL",
        help="Keep Deluge's listening port in sync (deluge-web, e.g. http://127.0.0.1:8112)."),
    rtorrent: Optional[str] = typer.Option(
        None, "--rtorrent", metavar="URL",
        help="Keep rTorrent's port range on the port (its XML-RPC: scgi://127.0.0.1:5000 "
        "or an HTTP URL); it listens there from its next start."),
    credentials: Optional[List[str]] = typer.Option(
        None, "--credentials", metavar="[CLIENT=]FILE",
        help="A login: 'username=' and 'password=' lines in a 0600 file. FILE: every "
        "client's; CLIENT=FILE (qbittorrent, transmission, deluge, rtorrent): that "
        "client's own. Repeatable."),
    command: Optional[str] = typer.Option(
        None, "--exec", metavar="CMD",
        help="Run CMD (sh -c) with WGNS_PORT and WGNS_TUNNEL set when the port changes."),
    off: bool = typer.Option(False, "--off", help="Turn port forwarding off."),
    root: Optional[str] = ROOT_OPTION,
) -> None:
    """Get an incoming port from the provider (NAT-PMP, or a reserved one) and keep
    clients on it."""
    from ..admin import forward
    static_port = number(static, "--static PORT", 1, 65535)
    sd = systemd(root)
    urls = {"qbittorrent": qbittorrent, "transmission": transmission, "deluge": deluge,
            "rtorrent": rtorrent}
    if off:
        given = [o for o, v in (("--gateway", gateway), ("--static", static),
                                *((f"--{c}", u) for c, u in urls.items()),
                                ("--credentials", credentials), ("--exec", command))
                 if v not in (None, [], ())]   # typer 0.7 gives an empty list for none
        if given:
            usage(f"--off takes no {given[0]}; run 'wgns port-forward --off' alone")
        emit(forward.disable(name, root or "/", sd))
        return
    emit(forward.enable(name, root or "/", sd, gateway, urls, command, credentials or [],
                        static=static_port))

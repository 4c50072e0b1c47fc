"""The files a tunnel's registration with its provider decides, rendered
from the record: the tunnel itself (/etc/wgns/NAME.conf, its key), the
record, the DNS confined units see and, when a port is forwarded by PIA's
method, the forwarding settings (the server's gateway and name). The
renderer (render/) writes them with every other file of the tunnel; the
watcher (runtime/rereg.py) writes these alone when PIA forgot the key and
a new one was registered: the same bytes `wgns install` would write."""

from __future__ import annotations

from .. import __version__
from . import paths, portconf
from .config import Tunnel, to_wgquick
from .paths import CONF_DIR, MARKER
from .plan import File, Plan
from .portconf import Settings
from .provider import Pia
from .record import Forward, Record, to_json


def stored_tunnel(tunnel: Tunnel) -> str:
    return (f"{MARKER} {__version__}: tunnel {tunnel.name}. Holds keys: root only (0600).\n"
            + to_wgquick(tunnel))


def resolv_conf(tunnel: Tunnel) -> str:
    lines = [f"{MARKER} {__version__}: DNS of tunnel {tunnel.name}, for confined units."]
    lines += [f"nameserver {d}" for d in tunnel.dns]
    if tunnel.search:
        lines.append("search " + " ".join(tunnel.search))
    return "\n".join(lines) + "\n"


def forward_settings(forward: Forward, provider: Pia | None = None) -> Settings:
    assert (forward.gateway is None) == (forward.method == "static")
    pia = provider if forward.method == "pia" else None
    return Settings(pia=pia.hostname if pia else None, pia_api=pia.api if pia else None,
                    gateway=forward.gateway, qbittorrent=forward.qbittorrent,
                    transmission=forward.transmission, command=forward.command,
                    static=forward.port, deluge=forward.deluge, rtorrent=forward.rtorrent)


def forward_conf(record: Record, forward: Forward) -> str:
    header = f"{MARKER} {__version__}: port forwarding of tunnel {record.name}."
    return portconf.render(forward_settings(forward, record.provider),
                           header + " Do not edit; wgns port-forward changes it.")


def registered(record: Record) -> Plan:
    """The files of RECORD that a new registration changes."""
    name = record.name
    plan: Plan = {
        paths.conf_path(name): File(stored_tunnel(record.tunnel), 0o600),
        paths.record_path(name): File(to_json(record), 0o600),
        f"{CONF_DIR}/{name}/resolv.conf": File(resolv_conf(record.tunnel), 0o644),
    }
    if record.forward is not None:
        plan[paths.forward_conf_path(name)] = File(forward_conf(record, record.forward), 0o600)
    return plan

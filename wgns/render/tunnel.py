"""Everything wgns writes for a tunnel, from its record alone: render it
and get every file, byte for byte (a test renders each record back and
compares). `shared` is what every tunnel shares (the namespace template,
the one watcher), in the copy of wgns of the record last written."""

from __future__ import annotations

from .. import __version__
from ..core import paths
from ..core.paths import CONF_DIR, UNIT_DIR, WANTS, tunnel_unit
from ..core.plan import File, Link, Plan
from ..core.provider import render_account
from ..core.record import Record
from ..core.tunnel_files import registered
from . import bridges, units
from .forward import forward
from .units import shared

__all__ = ["render", "shared"]


def render(record: Record) -> Plan:
    name, unit = record.name, tunnel_unit(record.name)
    plan: Plan = {
        **registered(record),   # the tunnel, its record, its DNS (and forward.conf)
        f"{CONF_DIR}/{name}/nsswitch.conf": File(
            units.nsswitch_conf(record.nsswitch, name), 0o644),
        **units.unit("tunnel.service", units.copy_values(record), f"{UNIT_DIR}/{unit}"),
        f"{WANTS}/{unit}": Link(f"{UNIT_DIR}/{unit}"),
    }
    for u in record.confined:
        plan[paths.dropin_path(u)] = File(units.dropin(u, name), 0o644)
    for e in record.exposes:
        plan.update(bridges.expose(record, e))
    for r in record.reaches:
        plan.update(bridges.reach(record, r))
    plan.update(forward(record))
    if record.provider is not None:
        header = f"{paths.MARKER} {__version__}: the PIA account of tunnel {name}: root only."
        plan[paths.pia_account_path(name)] = File(render_account(record.provider, header),
                                                  0o600)
        plan[paths.pia_ca_path(name)] = File(
            f"{paths.MARKER} {__version__}: the authority of PIA's servers for tunnel "
            + (f"{name}, from {record.provider.ca_source!r}.\n" if record.provider.ca_source
               else f"{name}: PIA's own, as wgns ships it.\n") + record.provider.ca_pem, 0o644)
    if record.metrics_dir is not None:
        plan[paths.metrics_dropin_path(name)] = File(
            units.metrics_dropin(name, record.metrics_dir), 0o644)
    return plan

"""What wgns wrote before 0.2 and 0.2 does not: a watcher per tunnel (the
template wgns-watch@.service, an instance enabled per tunnel, its metrics
drop-in with the directory in its environment). Rendered only for `wgns
migrate --downgrade`, so that the older wgns finds its watchers where it
left them: the watcher's template is the older version's own
(units/legacy-wgns-watch@.service, the last before 0.2).
"""

from __future__ import annotations

from .. import __version__
from ..core import paths
from ..core.plan import File, Link, Plan
from ..core.record import Record
from .units import copy_values, metrics_word, template

LEGACY_TEMPLATE = "legacy-wgns-watch@.service"   # as the older wgns wrote it


def watcher_template(record: Record) -> str:
    return template(LEGACY_TEMPLATE).substitute(copy_values(record))


def metrics_dropin(name: str, directory: str) -> str:
    return (f"{paths.MARKER} {__version__}: where wgns-watch@{name}.service writes the "
            f"metrics of tunnel {name}. Do not edit; wgns install --metrics-dir changes it, "
            "wgns uninstall removes it.\n"
            "[Service]\n"
            f"ReadWritePaths={metrics_word('-' + directory)}\n"
            f"Environment={metrics_word('WGNS_METRICS_DIR=' + directory)}\n")


def watcher(record: Record) -> Plan:
    """The older wgns's watcher of RECORD's tunnel: the template, its
    instance enabled, and its metrics drop-in when a directory was set."""
    name = record.name
    template_path = f"{paths.UNIT_DIR}/{paths.LEGACY_WATCH_TEMPLATE}"
    plan: Plan = {
        template_path: File(watcher_template(record), 0o644),
        f"{paths.WANTS}/{paths.legacy_watch_instance(name)}": Link(template_path),
    }
    if record.metrics_dir is not None:
        plan[paths.legacy_metrics_dropin(name)] = File(
            metrics_dropin(name, record.metrics_dir), 0o644)
    return plan

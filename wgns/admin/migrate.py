"""`wgns migrate`: the files of the tunnels brought to this version's, or,
with --downgrade, to those of wgns before 0.2, whose code reads them.

Upwards, every writing command does the same first (store.adopt_older);
the .deb's postinst runs it when it upgrades from an older version, so
that the older watchers are replaced at once. Downwards, what the older
version reads is in the files this one writes (comment headers, the port
forwarding settings, the tunnel's units), except its watchers: a watcher
per tunnel comes back (render/legacy.py) in place of the one watcher, and
the records go (an upgrade after the older version changed things adopts
them again from its files). The .deb's prerm runs it when it is replaced
by an older version; with pip, run it before installing the older one.
"""

from __future__ import annotations

from ..core import paths
from ..core.errors import WgnsError
from ..core.installed import installed, load
from ..core.plan import Plan
from ..core.systemd import Systemd
from ..render.legacy import watcher
from .store import Report, adopt_older, prunable, serialised_as_found
from .writer import refuse_conflicts, remove_owned, write_plan


@serialised_as_found
def upgrade(root: str, sd: Systemd | None) -> Report:
    report = Report()
    done = adopt_older(root, sd)
    report.say("every tunnel's files are this version's" + (f" ({', '.join(done)})"
                                                            if done else ""))
    return report


@serialised_as_found
def downgrade(root: str, sd: Systemd | None) -> Report:
    report = Report()
    names = installed(root)
    plan: Plan = {}
    for record in [load(root, n) for n in names]:
        if record.provider is not None:   # its record is all that says so
            raise WgnsError(f"tunnel {record.name} was made through PIA's API, which wgns "
                            "before 0.2 does not know: its account would be left behind",
                            hint=f"uninstall it first: wgns uninstall --name {record.name}")
        if record.forward is not None and record.forward.newer():
            raise WgnsError(f"tunnel {record.name} forwards a port in a way wgns before 0.2 "
                            "does not know (--static, --deluge, --rtorrent or a client's own "
                            "--credentials)", hint="change it with 'wgns port-forward' (or "
                            "--off) first")
        plan.update(watcher(record))
    refuse_conflicts(root, plan)
    stale = [paths.record_path(n) for n in names] + [paths.metrics_dropin_path(n)
                                                     for n in names]
    stale += [f"{paths.UNIT_DIR}/{paths.WATCH_UNIT}", f"{paths.WANTS}/{paths.WATCH_UNIT}"]
    write_plan(root, plan)
    if sd is not None:
        sd.stop(paths.WATCH_UNIT)
    remove_owned(root, stale, prune=prunable(stale))
    if sd is not None:
        sd.reload()
        for n in names:
            sd.enqueue_start(paths.legacy_watch_instance(n))
    for n in names:
        report.say(f"tunnel {n}: its own watcher, {paths.legacy_watch_instance(n)}, as wgns "
                   "before 0.2 runs it; its record removed")
    report.say("install the older wgns now; `wgns migrate` (or any command of this "
               "version) brings the files back")
    return report

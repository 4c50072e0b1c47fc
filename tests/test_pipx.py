"""The pipx route of the README, end to end on a real systemd: `sudo pipx
install` (a venv under /root) on Debian 12's pipx 1.1 and Debian 13's 1.7,
and `sudo pipx install --global` (/opt/pipx, /usr/local/bin) on Debian 13
(pipx 1.5 and newer have it). One short boot per system, both routes in it
(tests/harness/pipx_route.py): install, tunnel, a confined DynamicUser probe
that reaches the provider only through the tunnel, the watch service,
`wgns check`, uninstall.

Needs what the container tests need (tests/setup-host installs it); skipped
when it is missing, failed instead under CI (`CI=true`).
"""

import pytest

from .harness import machine, scenario  # noqa: F401 (scenario: the guest modules' path)
from .harness.ci import tier_unavailable

pytestmark = pytest.mark.container

# Debian 12: wgns's dependencies from PyPI's wheels (its python3-typer is
# older than pip would like to resolve offline); Debian 13: its own
# (`pipx install --system-site-packages`: the PyPI wheelhouse is built for
# this machine's Python 3.11, Debian 13 has 3.13).
TARGETS = [("debian12", "pypi", ("pipx",)), ("debian13", "system", ("pipx", "pipx_global"))]


def _checks(routes: tuple) -> tuple:
    from .harness import pipx_route  # guest-side module; its imports resolve via scenario
    return tuple(c for r in routes for c in pipx_route.checks(r))


def report(system: str, flavour: str) -> machine.Report:
    rep = machine.cached_report((system, flavour, "pipx_route"),
                                lambda: machine.run_scenario(system, flavour, "pipx_route"))
    if isinstance(rep, machine.Unavailable):
        tier_unavailable(f"container tests cannot run here: {rep}")
    return rep


@pytest.mark.parametrize("system,flavour,check", [
    (s, f, c) for s, f, routes in TARGETS for c in ("scenario_ran_to_the_end",) + _checks(routes)])
def test_pipx(system, flavour, check):
    rep = report(system, flavour)
    routes = next(r for s, f, r in TARGETS if (s, f) == (system, flavour))
    if check == "scenario_ran_to_the_end":
        assert rep.finished, machine.format_report(rep)
        assert set(rep.checks) == set(_checks(routes)), sorted(
            set(rep.checks) ^ set(_checks(routes)))
        return
    assert check in rep.checks, f"{check} was not reported; " + machine.format_report(rep)
    assert rep.checks[check]["ok"], rep.checks[check]["detail"]

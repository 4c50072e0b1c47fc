"""End to end on a real systemd: boot a container per (system, flavour), run
the core scenario in it (fake provider, real wireguard-go, a DynamicUser
probe), and turn each of its checks into a test.

Needs root, systemd-nspawn, wireguard-go, dnsmasq: `tests/setup-host` installs
them. Skipped when they are missing, failed instead under CI (`CI=true`).
"""

import pytest

from .harness import machine
from .harness.ci import tier_unavailable
from .harness.scenario import CORE_CHECKS, DEB_CHECKS

pytestmark = pytest.mark.container

# Debian 12's own libraries run the core scenario through the .deb (the
# route a Debian user takes); a venv over them (flavour "system") would run
# the same checks on the same libraries again.
TARGETS = [("debian12", "pypi"), ("debian13", "system"),
           ("debian12", "deb"), ("debian13", "deb")]


def expected(flavour: str) -> tuple:
    return CORE_CHECKS + (DEB_CHECKS if flavour == "deb" else ())


def report(system: str, flavour: str, scenario: str = "core") -> machine.Report:
    rep = machine.cached_report((system, flavour, scenario),
                                lambda: machine.run_scenario(system, flavour, scenario))
    if isinstance(rep, machine.Unavailable):
        tier_unavailable(f"container tests cannot run here: {rep}")
    return rep


@pytest.mark.parametrize("system,flavour", TARGETS)
def test_scenario_ran_to_the_end(system, flavour):
    rep = report(system, flavour)
    assert rep.finished, machine.format_report(rep)
    unexpected = set(rep.checks) - set(expected(flavour))
    assert not unexpected, f"checks the test list does not know: {sorted(unexpected)}"


@pytest.mark.parametrize("system,flavour,check", [
    (s, f, c) for s, f in TARGETS for c in expected(f)])
def test_core(system, flavour, check):
    rep = report(system, flavour)
    assert check in rep.checks, f"{check} was not reported; " + machine.format_report(rep)
    assert rep.checks[check]["ok"], rep.checks[check]["detail"]


@pytest.mark.parametrize("system,flavour", TARGETS)
def test_private_mounts_regression_is_caught_where_it_can_be(system, flavour):
    """A namespace unit without PrivateMounts=no: broken on systemd >= 254
    (Debian 13), where this tier must see it fail; systemd 252 (Debian 12)
    cannot show the regression, which is why Debian 13 is in the matrix."""
    rep = report(system, flavour)
    binds = rep.info.get("broken_netns_unit_binds")
    assert binds is not None, machine.format_report(rep)
    systemd_version = int(str(rep.info["systemd"]).split()[1])
    assert binds == (systemd_version < 254), (
        f"systemd {systemd_version}: the unit without PrivateMounts=no "
        f"{'bound' if binds else 'did not bind'} its namespace")


# Operations (expose, check, self-healing): on the newest libraries and on
# the oldest systemd, and on Debian 13's own packages and systemd 257.
OPS_TARGETS = [("debian12", "pypi"), ("debian13", "system")]


def _ops_checks() -> tuple:
    from .harness import ops  # guest-side module; its imports resolve via scenario
    return ops.OPS_CHECKS


@pytest.mark.parametrize("system,flavour,check", [
    (s, f, c) for s, f in OPS_TARGETS for c in ("scenario_ran_to_the_end",) + _ops_checks()])
def test_ops(system, flavour, check):
    rep = report(system, flavour, "ops")
    if check == "scenario_ran_to_the_end":
        assert rep.finished, machine.format_report(rep)
        assert set(rep.checks) <= set(_ops_checks()), sorted(
            set(rep.checks) - set(_ops_checks()))
        return
    assert check in rep.checks, f"{check} was not reported; " + machine.format_report(rep)
    assert rep.checks[check]["ok"], rep.checks[check]["detail"]


# Hardening (odd names, faults, races, sandboxing scores): on the newest
# libraries with systemd 252, and on Debian 13's own packages with 257.
HARDENING_TARGETS = [("debian12", "pypi"), ("debian13", "system")]


def _hardening_checks() -> tuple:
    from .harness import hardening  # guest-side module; its imports resolve via scenario
    return hardening.HARDENING_CHECKS


@pytest.mark.parametrize("system,flavour,check", [
    (s, f, c) for s, f in HARDENING_TARGETS
    for c in ("scenario_ran_to_the_end",) + _hardening_checks()])
def test_hardening(system, flavour, check):
    rep = report(system, flavour, "hardening")
    if check == "scenario_ran_to_the_end":
        assert rep.finished, machine.format_report(rep)
        assert set(rep.checks) <= set(_hardening_checks()), sorted(
            set(rep.checks) - set(_hardening_checks()))
        return
    assert check in rep.checks, f"{check} was not reported; " + machine.format_report(rep)
    assert rep.checks[check]["ok"], rep.checks[check]["detail"]


# Port forwarding with the real qBittorrent and Transmission from Debian, the
# fake provider's NAT-PMP gateway forwarding for real: on the newest
# libraries with systemd 252 and on Debian 13's own packages.
FORWARD_TARGETS = [("debian12", "pypi"), ("debian13", "system")]


def _forward_checks() -> tuple:
    from .harness import forward  # guest-side module; its imports resolve via scenario
    return forward.FORWARD_CHECKS


@pytest.mark.parametrize("system,flavour,check", [
    (s, f, c) for s, f in FORWARD_TARGETS
    for c in ("scenario_ran_to_the_end",) + _forward_checks()])
def test_forward(system, flavour, check):
    rep = report(system, flavour, "forward")
    if check == "scenario_ran_to_the_end":
        assert rep.finished, machine.format_report(rep)
        assert set(rep.checks) <= set(_forward_checks()), sorted(
            set(rep.checks) - set(_forward_checks()))
        return
    assert check in rep.checks, f"{check} was not reported; " + machine.format_report(rep)
    assert rep.checks[check]["ok"], rep.checks[check]["detail"]


# Metrics: Debian's real prometheus-node-exporter scraping the watcher's
# textfiles, compared with status --json and --prometheus, as the tunnel
# goes down and comes back: on the newest libraries with systemd 252 and on
# Debian 13's own packages (node-exporter 1.5 and Debian 13's).
METRICS_TARGETS = [("debian12", "pypi"), ("debian13", "system")]


def _metrics_checks() -> tuple:
    from .harness import metrics  # guest-side module; its imports resolve via scenario
    return metrics.METRICS_CHECKS


@pytest.mark.parametrize("system,flavour,check", [
    (s, f, c) for s, f in METRICS_TARGETS
    for c in ("scenario_ran_to_the_end",) + _metrics_checks()])
def test_metrics(system, flavour, check):
    rep = report(system, flavour, "metrics")
    if check == "scenario_ran_to_the_end":
        assert rep.finished, machine.format_report(rep)
        assert set(rep.checks) <= set(_metrics_checks()), sorted(
            set(rep.checks) - set(_metrics_checks()))
        return
    assert check in rep.checks, f"{check} was not reported; " + machine.format_report(rep)
    assert rep.checks[check]["ok"], rep.checks[check]["detail"]

"""End to end on a real systemd: boot a container per entry of BOOTS, run
its scenarios one after the other in it (fake provider, real wireguard-go,
real clients), and turn each check they report into a test.

Needs root, systemd-nspawn, wireguard-go, dnsmasq: `tests/setup-host` installs
them. Skipped when they are missing, failed instead under CI (`CI=true`).
"""

import pytest

from .harness import machine
from .harness.ci import tier_unavailable
from .harness.scenario import CORE_CHECKS, DEB_CHECKS

pytestmark = pytest.mark.container

# The boots, (system, flavour): the scenarios each runs, in order. A
# system is a guest (harness/systems.py); a flavour how wgns goes in:
# `pypi` (pip into a venv, the newest libraries from PyPI), `system` (a
# venv on the distribution's own libraries), `deb` (the .deb built on
# this machine, on the distribution's own libraries). Scenarios share a
# boot where that keeps the suite short; each reports when it ran to its
# end, and one that breaks off does not stop the next.
BOOTS = {
    # Debian 11 (systemd 247, Python 3.9): pip, pystemd compiled in the guest
    ("debian11", "pypi"): ("units", "core", "ops"),
    # Debian 12 (systemd 252, Python 3.11): the newest libraries ...
    ("debian12", "pypi"): ("units", "core"),
    ("debian12", "pypi", "ops"): ("ops",),
    ("debian12", "pypi", "hardening"): ("hardening",),
    ("debian12", "pypi", "forward"): ("forward", "forward_clients", "metrics", "pia"),
    # from the last commit before issue 20, by pip and by the .deb, and back
    ("debian12", "pypi", "upgrade"): ("upgrade",),
    # ... and its own, through the .deb
    ("debian12", "deb"): ("core",),
    # Debian 13 (systemd 257, Python 3.13): its own libraries
    ("debian13", "system"): ("units", "unittests", "core"),
    ("debian13", "system", "ops"): ("ops",),
    ("debian13", "system", "hardening"): ("hardening",),
    ("debian13", "system", "forward"): ("forward", "metrics", "pia"),
    # Debian 13 with systemd-resolved as the host's resolver, the .deb
    ("debian13r", "deb"): ("resolved", "core"),
    # sid (systemd 262, Python 3.14): the .deb on its own libraries; pip
    ("sid", "deb"): ("units", "unittests", "core"),
    ("sid", "pypi"): ("ops", "forward"),
}


def _checks(scenario: str, flavour: str) -> tuple:
    """What a scenario reports (guest-side modules; their imports resolve
    via the harness directory, which importing scenario puts on the path)."""
    from .harness import (
        bridges,
        distro,
        forward,
        forward_clients,
        hardening,
        metrics,
        ops,
        pia_scenario,
        providers,
        upgrade,
    )
    return {
        "core": CORE_CHECKS + (DEB_CHECKS if flavour == "deb" else ()),
        "ops": ops.OPS_CHECKS, "hardening": hardening.HARDENING_CHECKS,
        "forward": forward.FORWARD_CHECKS, "metrics": metrics.METRICS_CHECKS,
        "forward_clients": forward_clients.FORWARD_CLIENTS_CHECKS,
        "units": distro.UNITS_CHECKS, "unittests": distro.UNITTEST_CHECKS,
        "resolved": distro.RESOLVED_CHECKS, "bridges": bridges.BRIDGE_CHECKS,
        "providers": providers.PROVIDERS_CHECKS, "upgrade": upgrade.UPGRADE_CHECKS,
        "pia": pia_scenario.PIA_CHECKS,
    }[scenario]


def boot_of(system: str, flavour: str, scenario: str) -> tuple:
    return next(k for k, v in BOOTS.items() if k[:2] == (system, flavour) and scenario in v)


def report(system: str, flavour: str, scenario: str = "core") -> machine.Report:
    """The report of the boot that ran SCENARIO on (SYSTEM, FLAVOUR): one
    boot for the whole test session."""
    key = boot_of(system, flavour, scenario)
    plan = "+".join(BOOTS[key])
    rep = machine.cached_report((system, flavour, plan),
                                lambda: machine.run_scenario(system, flavour, plan))
    if isinstance(rep, machine.Unavailable):
        tier_unavailable(f"container tests cannot run here: {rep}")
    return rep


def cases(scenario: str, with_end: bool = True) -> list:
    """(system, flavour, check) for every boot that runs SCENARIO."""
    out = []
    for key, plan in BOOTS.items():
        if scenario in plan:
            checks = _checks(scenario, key[1])
            out += [(key[0], key[1], c) for c in
                    (("scenario_ran_to_the_end",) if with_end else ()) + checks]
    return out


def assert_check(system: str, flavour: str, scenario: str, check: str) -> None:
    rep = report(system, flavour, scenario)
    if check == "scenario_ran_to_the_end":
        assert rep.ran(scenario), machine.format_report(rep)
        known = {c for s in BOOTS[boot_of(system, flavour, scenario)]
                 for c in _checks(s, flavour)} | {"scenario_ran_to_the_end"}
        unexpected = set(rep.checks) - known
        assert not unexpected, f"checks the test list does not know: {sorted(unexpected)}"
        return
    assert check in rep.checks, f"{check} was not reported; " + machine.format_report(rep)
    assert rep.checks[check]["ok"], rep.checks[check]["detail"]


def test_scenarios_in_one_boot_report_different_checks():
    """A check's name says which scenario reported it, in any boot."""
    for key, plan in BOOTS.items():
        names = [c for s in plan for c in _checks(s, key[1])]
        assert len(names) == len(set(names)), (key, plan)


@pytest.mark.parametrize("system,flavour,check", cases("core"))
def test_core(system, flavour, check):
    assert_check(system, flavour, "core", check)


@pytest.mark.parametrize("system,flavour", [(s, f) for s, f, c in cases("core", False)
                                            if c == CORE_CHECKS[0]])
def test_private_mounts_regression_is_caught_where_it_can_be(system, flavour):
    """A namespace unit without PrivateMounts=no: broken on systemd >= 254
    (Debian 13, sid), where this tier must see it fail; systemd 247 and 252
    cannot show the regression, which is why newer guests are in the matrix."""
    rep = report(system, flavour)
    binds = rep.info.get("broken_netns_unit_binds")
    assert binds is not None, machine.format_report(rep)
    systemd_version = int(str(rep.info["systemd"]).split()[1])
    assert binds == (systemd_version < 254), (
        f"systemd {systemd_version}: the unit without PrivateMounts=no "
        f"{'bound' if binds else 'did not bind'} its namespace")


@pytest.mark.parametrize("system,flavour,check", cases("ops"))
def test_ops(system, flavour, check):
    assert_check(system, flavour, "ops", check)


@pytest.mark.parametrize("system,flavour,check", cases("hardening"))
def test_hardening(system, flavour, check):
    assert_check(system, flavour, "hardening", check)


@pytest.mark.parametrize("system,flavour,check", cases("forward"))
def test_forward(system, flavour, check):
    assert_check(system, flavour, "forward", check)


@pytest.mark.parametrize("system,flavour,check", cases("forward_clients"))
def test_forward_clients(system, flavour, check):
    assert_check(system, flavour, "forward_clients", check)


@pytest.mark.parametrize("system,flavour,check", cases("metrics"))
def test_metrics(system, flavour, check):
    assert_check(system, flavour, "metrics", check)


@pytest.mark.parametrize("system,flavour,check", cases("pia"))
def test_pia(system, flavour, check):
    assert_check(system, flavour, "pia", check)


@pytest.mark.parametrize("system,flavour,check", cases("units"))
def test_units(system, flavour, check):
    assert_check(system, flavour, "units", check)


@pytest.mark.parametrize("system,flavour,check", cases("unittests"))
def test_unittests(system, flavour, check):
    assert_check(system, flavour, "unittests", check)


@pytest.mark.parametrize("system,flavour,check", cases("upgrade"))
def test_upgrade(system, flavour, check):
    assert_check(system, flavour, "upgrade", check)


@pytest.mark.parametrize("system,flavour,check", cases("resolved"))
def test_resolved(system, flavour, check):
    assert_check(system, flavour, "resolved", check)


# What each guest must be: the versions the support table (README) names.
EXPECTED = {
    "debian11": {"systemd": 247, "python": "3.9"},
    "debian12": {"systemd": 252, "python": "3.11"},
    "debian13": {"systemd": 257, "python": "3.13"},
    "debian13r": {"systemd": 257, "python": "3.13"},
    "sid": {"systemd": 258, "python": "3.14"},   # at least: sid moves
}


@pytest.mark.parametrize("system,flavour", sorted({k[:2] for k in BOOTS}))
def test_the_guest_is_the_system_it_stands_for(system, flavour):
    key = next(k for k in BOOTS if k[:2] == (system, flavour))
    rep = report(system, flavour, BOOTS[key][0])
    versions = rep.info.get("versions")
    assert isinstance(versions, dict), machine.format_report(rep)
    systemd = int(str(rep.info["systemd"]).split()[1])
    want = EXPECTED[system]
    if system == "sid":
        assert systemd >= want["systemd"], rep.info["systemd"]
    else:
        assert systemd == want["systemd"], rep.info["systemd"]
    assert versions["python"].startswith(want["python"] + "."), versions

"""The VM tier: the kernel scenario (harness/kernel.py: what only a real
kernel's WireGuard shows) on a real Debian kernel with kernel WireGuard on
both ends (the fake provider's server too), under qemu, once with the
newest libraries from PyPI and once with Debian 12's packaged ones.

Skipped, loudly and with the reason, when qemu or the kernel package cannot
be had (failed instead under CI, `CI=true`); never passed without running.
"""

import pytest

from .harness import machine, scenario, vm  # noqa: F401 (scenario: the guest modules' path)
from .harness.ci import tier_unavailable
from .harness.kernel import KERNEL_CHECKS

pytestmark = pytest.mark.vm

FLAVOURS = ["pypi", "system"]


def report(flavour: str) -> machine.Report:
    rep = machine.cached_report(("vm", flavour), lambda: vm.run_scenario(flavour, "kernel"))
    if isinstance(rep, machine.Unavailable):
        tier_unavailable(f"VM tier cannot run here: {rep}")
    return rep


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_vm_ran_with_the_kernel_module(flavour):
    rep = report(flavour)
    assert rep.finished, machine.format_report(rep)
    assert "wireguard" in str(rep.info.get("wireguard_module", "")), rep.info
    assert rep.info["versions"]["pyroute2"].startswith("0.7" if flavour == "system" else "0.9")


@pytest.mark.parametrize("flavour,check", [(f, c) for f in FLAVOURS for c in KERNEL_CHECKS])
def test_vm_kernel(flavour, check):
    rep = report(flavour)
    assert check in rep.checks, f"{check} was not reported; " + machine.format_report(rep)
    assert rep.checks[check]["ok"], rep.checks[check]["detail"]

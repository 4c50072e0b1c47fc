"""Under CI (`CI=true`) a tier that cannot run fails the run; elsewhere it
skips. Proven on the helper and on the container and VM tiers' own path."""

import pytest

from . import test_e2e, test_vm
from .harness import ci, machine


@pytest.mark.parametrize("value", ["true", "True", "1", "yes"])
def test_ci_true_fails_with_the_reason(monkeypatch, value):
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception, match="no qemu here") as e:
        ci.tier_unavailable("no qemu here")
    assert "CI=true" in str(e.value)


@pytest.mark.parametrize("value", [None, "", "false", "0"])
def test_elsewhere_it_skips_with_the_reason(monkeypatch, value):
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.skip.Exception, match="no qemu here"):
        ci.tier_unavailable("no qemu here")


def test_under_ci_reads_the_given_environment():
    assert ci.under_ci({"CI": "true"})
    assert not ci.under_ci({})


@pytest.fixture
def unavailable(monkeypatch):
    """The harness says it cannot run (as check_host does when not root)."""
    why = machine.Unavailable("container tests need root (systemd-nspawn, overlay mounts)")
    monkeypatch.setattr(machine, "cached_report", lambda key, make: why)


def test_container_and_vm_tiers_fail_under_ci(monkeypatch, unavailable):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="need root"):
        test_e2e.report("debian12", "pypi")
    with pytest.raises(pytest.fail.Exception, match="need root"):
        test_vm.report("pypi")


def test_container_and_vm_tiers_skip_elsewhere(monkeypatch, unavailable):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="need root"):
        test_e2e.report("debian12", "pypi")
    with pytest.raises(pytest.skip.Exception, match="need root"):
        test_vm.report("pypi")

"""./demo's story, without a boot: a report recorded from a real demo run
(tests/data/demo-report.jsonl: debian12, pypi) becomes steps in order, with
the commands, what the probes found in plain sentences, and a one-screen
summary; the demo exits non-zero when a check failed or the scenario
stopped early."""

import json

import pytest

from .conftest import DATA
from .harness import machine, story

RECORDED = DATA / "demo-report.jsonl"


def load(tmp_path, edit=lambda rec: rec) -> machine.Report:
    lines = [edit(json.loads(ln)) for ln in RECORDED.read_text().splitlines()]
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    (out / "report.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in lines if r is not None))
    rep = machine.Report("debian12", "pypi", "demo", seconds=79.0)
    machine._read_report(out, rep)
    return rep


def fail(name):
    def edit(rec):
        if rec.get("kind") == "check" and rec["name"] == name:
            return {**rec, "ok": False, "detail": "what the check saw"}
        return rec
    return edit


def test_steps_commands_findings_and_checks_in_order(tmp_path):
    text = story.tell(load(tmp_path))
    titles = [e["title"] for e in load(tmp_path).events if e["kind"] == "step"]
    assert len(titles) == 12
    at = [text.index(f"\n{i}. {t}\n") for i, t in enumerate(titles, 1)]
    assert at == sorted(at)
    confine = text.index("\n4. Confine")
    order = ["$ wgns confine probe@main.service", "PASS confine_exit_0",
             "$ systemctl start probe@main.service", "what probe@main.service found from inside",
             "network links it saw: lo, wg", "PASS probe_sees_only_lo_and_tunnel",
             "\n5. wgns status"]
    where = [text.index(s, confine) for s in order]
    assert where == sorted(where), order
    assert text.index("== Summary") > text.index("\n12. ")
    # the CLI path of the venv reads as the command a user types
    assert "$ wgns install --conf /root/provider.conf\n" in text
    # what happens around the commands is told where it happens
    watcher = text.index("\n6. The watcher")
    assert text.index("now points at 10.251.0.99", watcher) \
        < text.index("- the watcher's log: wg: peer", watcher) < text.index("\n7. ", watcher)
    outage = text.index("\n8. The provider's server goes away")
    assert text.index("- the provider's WireGuard server stops", outage) \
        < text.index("$ systemctl start probe@outage.service", outage)


def test_probe_results_are_sentences_not_json(tmp_path):
    text = story.tell(load(tmp_path))
    for sentence in (
            "- it ran as uid 62062, not root",
            "- network links it saw: lo, wg",
            "- its resolv.conf names: 10.66.0.1",
            "- resolved probe.test to 10.66.0.1, fd66::1",
            '- fetched the provider\'s page over IPv4, http://10.66.0.1/: "provider-ok"',
            "- could not reach this host's loopback, 127.0.0.1:8080: connection refused",
            "- could not reach this host's nscd socket: permission denied",
            # the outage: nothing answers, nothing else is reached
            "- could not resolve probe.test: temporary failure in name resolution",
            # unconfined again: the host is reachable, and the story says so
            "- reached this host's loopback, 127.0.0.1:8080: \"host-secret\""):
        assert sentence in text, sentence
    assert '{"' not in text and "'reached'" not in text and '"tunnels"' not in text
    assert "(62 lines of JSON, for the checks below)" in text
    assert max(len(ln) for ln in text.splitlines()) <= story.WIDTH


def test_summary_is_one_screen_with_a_line_per_step(tmp_path):
    rep = load(tmp_path)
    lines = story.summary(rep)
    assert len(lines) <= 20
    assert lines[0] == "== Summary: demo on debian12 (pypi), 79 s"
    assert [ln.split()[0] for ln in lines[1:-1]] == ["PASS"] * 12
    assert "4. Confine services; look from inside one (a DynamicUser probe)  [11 checks]" \
        in lines[4]
    assert lines[-1] == "All 44 checks passed."
    assert story.exit_code(rep) == 0


def test_a_failed_check_fails_its_step_and_the_exit_code(tmp_path):
    rep = load(tmp_path, fail("outage_recovers"))
    text = story.tell(rep)
    assert "   FAIL outage_recovers\n        what the check saw" in text
    lines = story.summary(rep)
    failed = [ln for ln in lines if ln.startswith("FAIL")]
    assert len(failed) == 1 and "8. The provider's server goes away" in failed[0]
    assert "[1 of 2 checks failed: outage_recovers]" in failed[0]
    assert lines[-1] == "1 of 44 checks FAILED: outage_recovers"
    assert story.exit_code(rep) == 1


def test_a_scenario_that_stopped_early_fails(tmp_path):
    def crash(rec):
        if rec.get("kind") == "done":
            return {"kind": "check", "name": "scenario_ran_to_the_end", "ok": False,
                    "detail": "RuntimeError: boom"}
        return rec
    rep = load(tmp_path, crash)
    assert not rep.finished and story.exit_code(rep) == 1
    lines = story.summary(rep)
    assert "scenario_ran_to_the_end" in lines[-2] or "scenario_ran_to_the_end" in lines[-1]
    assert any("did not run to its end" in ln for ln in lines)
    # a guest that never reported anything at all
    empty = machine.Report("debian13", "system", "demo", console="[harness] guest did not "
                           "power off in 600 s")
    assert story.exit_code(empty) == 1
    assert "guest did not power off" in story.tell(empty)


@pytest.mark.parametrize("failing,code", [(None, 0), ("tunnel_active", 1)])
def test_demo_prints_the_story_and_exits_non_zero_on_failure(tmp_path, monkeypatch, capsys,
                                                             failing, code):
    rep = load(tmp_path, fail(failing) if failing else (lambda r: r))
    monkeypatch.setattr(machine, "run_scenario", lambda system, flavour, scenario: rep)
    assert machine.main(["demo", "--story"]) == code
    out = capsys.readouterr().out
    assert out.startswith("wgns demo on debian12, with the newest libraries from PyPI\n")
    assert out.rstrip().endswith("All 44 checks passed." if code == 0
                                 else "1 of 44 checks FAILED: tunnel_active")

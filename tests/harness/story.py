"""Host side: the story `./demo` tells, from a scenario's report.

The guest records, in the order they happen, each step of the scenario, the
commands it ran with their exit codes and what they printed, what each
probe found, how long each wait took, and each check (scenario.py). `tell()`
turns that into text a newcomer reads from top to bottom: per step, the
commands and what they show in plain sentences (links seen, pages fetched,
names resolved, what was blocked), then the step's checks; at the end a
summary of one line per step, PASS or FAIL. `exit_code()` is 0 only when
the scenario ran to its end and every check passed.
"""

from __future__ import annotations

import json
import re
import shlex
import textwrap
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.harness.machine import Report

WIDTH = 100
MAX_OUTPUT_LINES = 14   # a command's output beyond this shows its head and tail

FLAVOURS = {
    "pypi": "with the newest libraries from PyPI",
    "system": "with Debian's python3-pyroute2, python3-typer, python3-pystemd",
    "deb": "as the Debian package built from this checkout",
}

# What the probe (probe.py) tries from inside the unit, in words.
PROBE_TARGETS = {
    "http4": "the provider's page over IPv4, http://10.66.0.1/",
    "http6": "the provider's page over IPv6, http://[fd66::1]/",
    "http_name": "the provider's page by name, http://probe.test/",
    "host_loopback": "this host's loopback, 127.0.0.1:8080",
    "host_lan": "this host's LAN address, 10.251.0.1:8080",
    "provider_lan": "the provider's LAN address outside the tunnel, 10.251.0.2:80",
    "nscd_socket": "this host's nscd socket",
    "resolved_socket": "this host's systemd-resolved socket",
}


def exit_code(report: Report) -> int:
    return 0 if report.finished and not report.failed() else 1


def _reason(error: object) -> str:
    """'[Errno 111] Connection refused' -> 'connection refused'."""
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", str(error)).strip()
    return text[:1].lower() + text[1:] if text else "no reason given"


def _shown(body: object) -> str:
    """What a server answered: the body, without an HTTP head."""
    text = str(body).split("\r\n\r\n")[-1].strip()
    return f'"{text[:60]}"'


def probe_sentences(result: dict) -> list[str]:
    """What one probe found, in plain sentences."""
    if "error" in result:
        return [f"the probe gave no answer: {result['error']}"]
    out = []
    uid = result.get("uid")
    out.append("it ran as root" if uid == 0 else f"it ran as uid {uid}, not root")
    out.append(f"network links it saw: {', '.join(result.get('links', [])) or 'none'}")
    servers = re.findall(r"^nameserver\s+(\S+)", str(result.get("resolv_conf", "")), re.M)
    out.append(f"its resolv.conf names: {', '.join(servers)}" if servers
               else "its resolv.conf names no nameserver")
    dns = result.get("dns") or {}
    if dns.get("reached"):
        out.append(f"resolved probe.test to {', '.join(dns.get('addresses', []))}")
    elif dns:
        out.append(f"could not resolve probe.test: {_reason(dns.get('error'))}")
    for key, what in PROBE_TARGETS.items():
        r = result.get(key)
        if not isinstance(r, dict):
            continue
        verb = "fetched" if key.startswith("http") else "reached"
        if r.get("reached"):
            out.append(f"{verb} {what}" + (f": {_shown(r['body'])}" if r.get("body") else ""))
        elif str(r.get("error", "")).startswith("skipped"):
            out.append(f"did not try {what}: the name did not resolve")
        else:
            out.append(f"could not reach {what}: {_reason(r.get('error'))}")
    return out


def _command(cmd: list[str]) -> str:
    words = ["wgns" if c.endswith("/bin/wgns") and i == 0 else c for i, c in enumerate(cmd)]
    return shlex.join(words)


def _wrap(text: str, indent: str, more: int = 4) -> list[str]:
    """One line of the story, wrapped at WIDTH; continuation lines indented
    `more` columns further than the first line's text."""
    return textwrap.wrap(text, WIDTH, initial_indent=indent,
                         subsequent_indent=" " * (len(indent) + more),
                         break_on_hyphens=False) or [indent.rstrip()]


def _output(text: str) -> list[str]:
    """What a command printed: JSON is named, not shown (a check reads it);
    a long output shows its head and tail."""
    lines = [ln.rstrip() for ln in text.splitlines() if ln.strip()]
    if text.lstrip().startswith(("{", "[")):
        try:
            json.loads(text)
            return [f"({len(lines)} lines of JSON, for the checks below)"]
        except ValueError:
            pass
    if len(lines) > MAX_OUTPUT_LINES:
        head, tail = 4, MAX_OUTPUT_LINES - 5
        lines = lines[:head] + [f"... ({len(lines) - head - tail} lines not shown)"] + \
            lines[-tail:]
    return lines


def _header(report: Report) -> list[str]:
    versions = report.info.get("versions")
    libs = ""
    if isinstance(versions, dict):
        libs = ", ".join(f"{k} {v}" for k, v in versions.items())
    lines = [f"wgns {report.scenario} on {report.system}, "
             f"{FLAVOURS.get(report.flavour, report.flavour)}"]
    if libs or report.info.get("systemd"):
        lines.append(f"({'; '.join(str(x) for x in (libs, report.info.get('systemd')) if x)})")
    return lines


class _Step:
    def __init__(self, number: int, title: str, start: float | None) -> None:
        self.number, self.title, self.start = number, title, start
        self.end: float | None = None
        self.passed: list[str] = []
        self.failed: list[str] = []


def _steps(report: Report) -> list[_Step]:
    steps: list[_Step] = []
    for ev in report.events:
        if ev.get("kind") == "step":
            if steps:
                steps[-1].end = ev.get("t")
            steps.append(_Step(len(steps) + 1, str(ev.get("title")), ev.get("t")))
        elif ev.get("kind") == "check":
            if not steps:
                steps.append(_Step(0, "before the first step", None))
            (steps[-1].passed if ev.get("ok") else steps[-1].failed).append(str(ev["name"]))
        elif ev.get("kind") == "done" and steps:
            steps[-1].end = ev.get("t")
    return steps


def narrate(report: Report) -> list[str]:
    """The steps in order: commands, what they showed, checks."""
    lines = _header(report)
    number = 0
    for ev in report.events:
        kind = ev.get("kind")
        if kind == "step":
            number += 1
            lines += ["", f"{number}. {ev.get('title')}"]
        elif kind == "run":
            code = ev.get("exit")
            cmd = textwrap.wrap(f"$ {_command(ev.get('cmd', []))}", WIDTH - 9,
                                break_on_hyphens=False)
            cmd = [ln + " \\" for ln in cmd[:-1]] + cmd[-1:]
            lines += ["   " + cmd[0]] + ["       " + ln for ln in cmd[1:]]
            lines[-1] += f"   (exit {code})" if code else ""
            for ln in _output(str(ev.get("output", ""))):
                lines += _wrap(ln, "       ")
        elif kind == "probe":
            lines.append(f"     what {ev.get('unit')} found from inside:")
            for s in probe_sentences(ev.get("result") or {}):
                lines += _wrap(s, "       - ", 0)
        elif kind == "note":
            lines += _wrap(str(ev.get("text")), "   - ", 0)
        elif kind == "check":
            mark = "PASS" if ev.get("ok") else "FAIL"
            lines.append(f"   {mark} {ev.get('name')}")
            if not ev.get("ok") and ev.get("detail"):
                lines += _wrap(str(ev["detail"])[:400], "        ")
    return lines


def summary(report: Report) -> list[str]:
    """One screen: a line per step, PASS or FAIL, and the total."""
    lines = [f"== Summary: {report.scenario} on {report.system} ({report.flavour}), "
             f"{report.seconds:.0f} s"]
    for s in _steps(report):
        mark = "FAIL" if s.failed else "PASS"
        took = f"{s.end - s.start:4.0f} s" if s.end is not None and s.start is not None \
            else "     "
        n = len(s.passed) + len(s.failed)
        what = (f"{len(s.failed)} of {n} checks failed: {', '.join(s.failed)}" if s.failed
                else f"{n} check{'s' if n != 1 else ''}" if n else "")
        lines.append(f"{mark} {took}  {s.number:2}. {s.title}" + (f"  [{what}]" if what else ""))
    total = len(report.checks)
    failed = report.failed()
    if not report.finished:
        lines.append("FAIL the scenario did not run to its end (the last lines of the guest's "
                     "console and log are above)")
    if failed:
        lines.append(f"{len(failed)} of {total} checks FAILED: {', '.join(failed)}")
    elif report.finished:
        lines.append(f"All {total} checks passed.")
    return lines


def _plain(text: str) -> list[str]:
    """Lines with text in them, without terminal colours."""
    text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text)
    return [ln.rstrip() for ln in text.splitlines() if ln.strip()]


def tell(report: Report) -> str:
    lines = narrate(report)
    if not report.finished:
        lines += ["", "The scenario stopped early. Last lines of the guest's console:"]
        lines += ["    " + ln for ln in _plain(report.console)[-20:]]
        lines += ["Last lines of the scenario's log:"]
        lines += ["    " + ln for ln in _plain(str(report.info.get("log", "")))[-20:]]
    return "\n".join(lines + [""] + summary(report))

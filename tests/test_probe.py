"""wgns check's probe (runtime/probe.py) asks every DNS server of the
tunnel at once: with the tunnel down, each waits out its timeout, and one
after the other they made a check that long times the number of servers.
However many servers resolv.conf lists, the probe answers within one
timeout (the check gives systemd-run 60 s, and a probe it gave up on kept
running in its transient unit).

Each test runs in a network namespace of its own (unshare -n), with only
its loopback: nothing leaves it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                                reason="needs root and unshare for a network namespace")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

ASK = r"""
import json, socket, struct, sys, threading, time
from wgns.runtime import probe
silent, answering = json.loads(sys.argv[1]), json.loads(sys.argv[2])
socks = []
for addr in answering:
    s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, 53))
    socks.append(s)

def answer():
    import select
    left = list(socks)
    while left:
        ready, _, _ = select.select(left, [], [])
        for s in ready:
            data, peer = s.recvfrom(512)
            s.sendto(data[:2] + struct.pack(">H", 0x8180) + data[4:], peer)
            left.remove(s)
threading.Thread(target=answer, daemon=True).start()
servers = silent + answering
start = time.monotonic()
got = probe._ask_all(servers)
print(json.dumps({"got": got, "took": time.monotonic() - start,
                  "order": list(got), "empty": probe._ask_all([])}))
"""


def ask(silent: list[str], answering: list[str]) -> dict:
    p = subprocess.run(
        ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$0" "$@"',
         sys.executable, "-c", ASK, json.dumps(silent), json.dumps(answering)],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": ROOT})
    assert p.returncode == 0, p.stderr
    return dict(json.loads(p.stdout))


def test_every_server_is_asked_at_once_and_each_answer_is_its_own():
    silent = ["127.88.0.1", "127.88.0.2", "127.88.0.3"]
    seen = ask(silent, ["127.88.0.4", "::1"])
    assert seen["got"] == {**{a: False for a in silent}, "127.88.0.4": True, "::1": True}
    assert seen["order"] == [*silent, "127.88.0.4", "::1"]
    assert seen["took"] < 2 * 3.0, f"{seen['took']:.1f} s: asked one after the other"
    assert seen["empty"] == {}


def test_a_resolv_conf_with_many_servers_answers_within_one_timeout():
    silent = [f"127.88.{i // 250}.{i % 250 + 1}" for i in range(60)]
    seen = ask(silent, ["127.89.0.1"])
    assert seen["got"] == {**{a: False for a in silent}, "127.89.0.1": True}
    assert seen["took"] < 2 * 3.0, f"{seen['took']:.1f} s for {len(silent) + 1} servers"


def test_what_is_not_an_address_is_a_server_that_did_not_answer():
    seen = ask(["unreadable: Permission denied", "999.1.1.1"], ["127.88.0.9"])
    assert seen["got"] == {"unreadable: Permission denied": False, "999.1.1.1": False,
                           "127.88.0.9": True}


def test_many_servers_that_answer_are_each_seen_answering():
    answering = [f"127.90.{i // 250}.{i % 250 + 1}" for i in range(300)]
    seen = ask(["127.88.0.1"], answering)
    assert seen["got"] == {"127.88.0.1": False, **{a: True for a in answering}}

"""wgns check's probe (runtime/probe.py) asks every DNS server of the
tunnel at once: with the tunnel down, each waits out its timeout, and one
after the other they made a check that long times the number of servers."""

from __future__ import annotations

import socket
import struct
import threading
import time

from wgns.runtime import probe

SILENT = ["127.88.0.1", "127.88.0.2", "127.88.0.3"]
ANSWERS = "127.88.0.4"


def test_every_server_is_asked_at_once_and_each_answer_is_its_own():
    socks = []
    for addr in SILENT + [ANSWERS]:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((addr, 53))
        socks.append(s)

    def answer() -> None:
        data, peer = socks[-1].recvfrom(512)
        socks[-1].sendto(data[:2] + struct.pack(">H", 0x8180) + data[4:], peer)
    t = threading.Thread(target=answer, daemon=True)
    t.start()
    try:
        start = time.monotonic()
        got = probe._ask_all(SILENT + [ANSWERS])
        took = time.monotonic() - start
    finally:
        for s in socks:
            s.close()
    assert got == {**{a: False for a in SILENT}, ANSWERS: True}
    assert took < 2 * 3.0, f"{took:.1f} s: the servers were asked one after the other"
    assert probe._ask_all([]) == {}

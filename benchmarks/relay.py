"""Rerunnable benchmark of wgns's UDP relay (the service behind
`wgns reach --udp` and `wgns expose --udp`), on this machine's loopback.

    python3 benchmarks/relay.py [--rounds 2000] [--runs 5]

The relay is started as its units start it: by socket activation
(`systemd-socket-activate`, no systemd as PID 1 needed), `python3 -I
wgns/helper.py relay bench 127.0.0.1 PORT`. Against a UDP echo server on
loopback it measures, side by side in one run:
- request/response round trips, direct and through the relay (ratio);
- a burst of datagrams kept 32 in flight, direct and relayed (ratio);
- the first reply after the socket was handed over (the interpreter start);
- the relay's resident memory with one flow.
Prints a Markdown table; every figure is a median over --runs.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

HELPER = Path(__file__).resolve().parents[1] / "wgns" / "helper.py"


ECHO = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1], flush=True)
while True:
    data, addr = s.recvfrom(65535)
    s.sendto(data, addr)
"""


def echo_server() -> tuple[subprocess.Popen, int]:
    """A UDP echo server in a process of its own (not a thread of this
    one, which would share the interpreter lock with the clients)."""
    proc = subprocess.Popen([sys.executable, "-I", "-c", ECHO], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def round_trips(port: int, rounds: int) -> float:
    """Seconds per request/response."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
        c.settimeout(2)
        c.connect(("127.0.0.1", port))
        t = time.perf_counter()
        for i in range(rounds):
            c.send(b"%d" % i)
            c.recv(100)
        return (time.perf_counter() - t) / rounds


def burst(port: int, count: int, window: int = 32, size: int = 1200) -> float:
    """Datagrams per second with WINDOW in flight."""
    payload = b"x" * size
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
        c.settimeout(2)
        c.connect(("127.0.0.1", port))
        t = time.perf_counter()
        for _ in range(window):
            c.send(payload)
        for _ in range(count - window):
            c.recv(65535)
            c.send(payload)
        for _ in range(window):
            c.recv(65535)
        return count / (time.perf_counter() - t)


def start_relay(port: int, target: int) -> tuple[subprocess.Popen, float, int]:
    """The relay behind a socket-activated listener: the process, the first
    reply's delay (the interpreter starting) and the relay's RSS in KiB."""
    proc = subprocess.Popen(
        ["systemd-socket-activate", "--datagram", "-l", f"127.0.0.1:{port}",
         sys.executable, "-I", str(HELPER), "relay", "bench", "127.0.0.1", str(target)],
        stderr=subprocess.DEVNULL)
    time.sleep(0.3)  # systemd-socket-activate binds, then waits for a datagram
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
        c.settimeout(10)
        t = time.perf_counter()
        c.sendto(b"first", ("127.0.0.1", port))
        c.recv(100)
        first = time.perf_counter() - t
    status = Path(f"/proc/{proc.pid}/status").read_text()
    rss = next(int(ln.split()[1]) for ln in status.splitlines() if ln.startswith("VmRSS:"))
    return proc, first, rss


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    echo, target = echo_server()
    rows: dict[str, list[float]] = {k: [] for k in (
        "rtt_direct", "rtt_relay", "burst_direct", "burst_relay", "first", "rss")}
    for _ in range(args.runs):
        port = free_port()
        proc, first, rss = start_relay(port, target)
        try:
            rows["first"].append(first)
            rows["rss"].append(rss)
            rows["rtt_direct"].append(round_trips(target, args.rounds))
            rows["rtt_relay"].append(round_trips(port, args.rounds))
            rows["burst_direct"].append(burst(target, args.rounds * 5))
            rows["burst_relay"].append(burst(port, args.rounds * 5))
        finally:
            proc.terminate()
            proc.wait()
    echo.terminate()
    echo.wait()
    m = {k: statistics.median(v) for k, v in rows.items()}
    print(f"UDP relay on loopback, {args.runs} runs, median "
          f"(Python {sys.version.split()[0]}, {os.cpu_count()} CPUs)\n")
    print("| measure | direct | through the relay | ratio |")
    print("|---|---|---|---|")
    print(f"| request/response round trip | {m['rtt_direct'] * 1e6:.0f} us | "
          f"{m['rtt_relay'] * 1e6:.0f} us | {m['rtt_relay'] / m['rtt_direct']:.1f}x |")
    print(f"| datagrams/s, 1200 B, 32 in flight | {m['burst_direct']:.0f} | "
          f"{m['burst_relay']:.0f} | {m['burst_relay'] / m['burst_direct']:.2f}x |")
    print(f"| first reply after activation | - | {m['first'] * 1000:.0f} ms | - |")
    print(f"| relay resident memory, one flow | - | {m['rss'] / 1024:.1f} MiB | - |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

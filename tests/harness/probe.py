"""Runs inside a unit (confined or not) and reports what it can reach, as
one JSON object on stdout. It judges nothing: scenario.py does."""

import json
import os
import socket
import urllib.request
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Callable

TIMEOUT = 3.0
DEADLINE = 8.0


def fetch(url: str) -> dict:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as r:
            return {"reached": True, "body": r.read(200).decode(errors="replace")}
    except OSError as e:
        return {"reached": False, "error": str(getattr(e, "reason", e))}


def connect_tcp(host: str, port: int) -> dict:
    try:
        with socket.create_connection((host, port), TIMEOUT) as s:
            s.settimeout(TIMEOUT)
            return {"reached": True, "body": s.recv(200).decode(errors="replace")}
    except OSError as e:
        return {"reached": False, "error": str(e)}


def connect_unix(path: str) -> dict:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(TIMEOUT)
            s.connect(path)
            return {"reached": True}
    except OSError as e:
        return {"reached": False, "error": str(e)}


def resolve(name: str) -> dict:
    try:
        infos = socket.getaddrinfo(name, 80, type=socket.SOCK_STREAM)
        return {"reached": True, "addresses": sorted({i[4][0] for i in infos})}
    except OSError as e:
        return {"reached": False, "error": str(e)}


def main() -> None:
    try:
        resolv = open("/etc/resolv.conf").read()
    except OSError as e:
        resolv = f"unreadable: {e}"
    # Side by side: what must not be reached waits out its timeout, and
    # one after the other those waits added up to several seconds a probe.
    tries: dict[str, Callable[[], dict]] = {
        "http4": lambda: fetch("http://10.66.0.1/"),
        "http6": lambda: fetch("http://[fd66::1]/"),
        "dns": lambda: resolve("probe.test"),
        "host_loopback": lambda: connect_tcp("127.0.0.1", 8080),
        "host_lan": lambda: connect_tcp("10.251.0.1", 8080),
        "provider_lan": lambda: connect_tcp("10.251.0.2", 80),
        "nscd_socket": lambda: connect_unix("/run/nscd/socket"),
        "resolved_socket": lambda: connect_unix("/run/systemd/resolve/io.systemd.Resolve"),
    }
    # A name lookup with no server answering takes the resolver's whole
    # timeout (5 s, twice, A and AAAA): what has not answered after
    # DEADLINE did not reach anything, and is not waited for (os._exit).
    pool = ThreadPoolExecutor(len(tries))
    running = {k: pool.submit(fn) for k, fn in tries.items()}
    wait(running.values(), timeout=DEADLINE)
    done = {k: f.result() if f.done() else
            {"reached": False, "error": f"no answer within {DEADLINE:.0f} s"}
            for k, f in running.items()}
    out: dict = {"uid": os.getuid(), "links": sorted(n for _, n in socket.if_nameindex()),
                 "resolv_conf": resolv, **done, "http_name": None}
    # Skip the name fetch when the name did not resolve: it would only
    # wait for the resolver's timeout a second time.
    out["http_name"] = (fetch("http://probe.test/") if out["dns"]["reached"]
                        else {"reached": False, "error": "skipped: name did not resolve"})
    print(json.dumps(out), flush=True)
    os._exit(0)


if __name__ == "__main__":
    main()

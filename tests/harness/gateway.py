"""Guest side: the fake provider's NAT-PMP gateway (RFC 6886), the port
forwarding a VPN provider like ProtonVPN runs on its tunnel's gateway.

As there, a client gets one random public port (the same for UDP and TCP,
whatever it suggested), must renew it before its lifetime runs out, and a
restarted gateway hands out a new port and a new epoch. wgns's port
forwarding is tested against it, so it forwards for real: while a mapping
lives, OUTSIDE:EXTERNAL reaches the client's tunnel address through the
WireGuard server (forwarding.py). The state file tells a scenario which
port a client got. Stdlib only: it runs on any guest python3 (3.9 and newer).

    ip netns exec provider python3 gateway.py --listen 10.66.0.1 \\
        --outside 10.251.0.2 --state /var/lib/wgns-provider/natpmp.json \\
        [--lifetime-cap N] [--refuse] [--clients CIDR ...]
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import signal
import socket
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from forwarding import Forwarder, log  # noqa: E402

PORT = 5351
# The provider's tunnel clients, unless --clients names others.
CLIENTS = [ipaddress.ip_network("10.66.0.0/24")]
PROTOS = {1: "udp", 2: "tcp"}  # mapping opcodes
SUCCESS, BAD_VERSION, REFUSED, NETWORK_FAILURE, NO_RESOURCES, BAD_OPCODE = range(6)


class Gateway(Forwarder):
    def __init__(self, listen: str, outside: str, state: Path, cap: int, refuse: bool,
                 clients: list | None = None) -> None:
        super().__init__(outside, state)
        self.cap, self.refuse = cap, refuse
        self.clients = CLIENTS if clients is None else clients
        self.started, self.started_wall = time.monotonic(), time.time()
        self.requests = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((listen, PORT))
        self.watch(self.sock, self.on_request)

    def run(self) -> None:
        try:
            signal.signal(signal.SIGTERM, signal.default_int_handler)  # KeyboardInterrupt
            log(f"up, {len(self.avoid)} previous port(s) to avoid")
            self.save()
            while True:
                for key, _ in self.sel.select(0.2):
                    try:
                        key.data()
                    except OSError as e:  # a client gone, a socket closed meanwhile
                        log(f"{e}")
                self.expire()
        except KeyboardInterrupt:
            log("stopping")
        finally:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            self.close()

    # NAT-PMP

    def epoch(self) -> int:
        return int(time.monotonic() - self.started)

    def reply(self, op: int, result: int, body: bytes | None = None) -> bytes:
        if body is None:  # an error: a success's length, its fields zero
            body = bytes({0: 4, 1: 8, 2: 8}.get(op, 0))
        return struct.pack("!BBHI", 0, 128 + op, result, self.epoch()) + body

    def on_request(self) -> None:
        data, (host, port) = self.sock.recvfrom(1100)
        if not any(ipaddress.ip_address(host) in net for net in self.clients):
            return
        answer = self.answer(data, host)
        if answer is not None:
            self.sock.sendto(answer, (host, port))
            self.requests += 1
            self.save()

    def answer(self, data: bytes, client: str) -> bytes | None:
        """The reply to a request; None to ignore it (malformed, or a reply)."""
        if len(data) < 2 or data[1] >= 128:
            return None
        version, op = data[0], data[1]
        if version != 0:
            return self.reply(op, BAD_VERSION)
        if op not in (0, *PROTOS):
            return self.reply(op, BAD_OPCODE)
        if len(data) != (2 if op == 0 else 12):
            return None
        if op == 0:
            return self.reply(0, SUCCESS, socket.inet_aton(self.outside))
        # The suggested external port is ignored: a client gets its one port.
        internal, _suggested, lifetime = struct.unpack("!HHI", data[4:])
        result, external, lifetime = SUCCESS, 0, min(lifetime, self.cap)
        if self.refuse:
            result, lifetime = REFUSED, 0
        elif lifetime == 0:
            self.unmap(client, PROTOS[op], internal)
        else:
            port = self.map(client, PROTOS[op], internal, lifetime)
            if port is None:
                result, lifetime = NO_RESOURCES, 0
            else:
                external = port
        return self.reply(op, result, struct.pack("!HHI", internal, external, lifetime))

    # State

    def save(self) -> None:
        now, wall = time.monotonic(), time.time()
        doc = {
            "epoch_started": self.started_wall, "pid": os.getpid(),
            "mappings": [{"client": m.client, "proto": m.proto, "internal": m.internal,
                          "external": m.external, "expires": round(wall + m.expires - now, 3)}
                         for m in self.mappings.values()],
            "refuse": self.refuse, "requests": self.requests,
            "ports": self.ports,  # this run's ports, which the next run avoids
        }
        tmp = self.state.with_name(f".{self.state.name}.{os.getpid()}")
        tmp.write_text(json.dumps(doc, indent=1) + "\n")
        os.replace(tmp, self.state)

    def close(self) -> None:
        """Close the mappings' sockets and ours (the exit closes forwarded
        connections) and record that nothing is mapped any more."""
        self.unmap_all()
        self.unwatch(self.sock)
        self.sel.close()
        self.save()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="A fake VPN provider's NAT-PMP gateway.")
    ap.add_argument("--listen", required=True, help="the tunnel address to answer on")
    ap.add_argument("--outside", required=True, help="the public address to forward from")
    ap.add_argument("--state", required=True, type=Path, help="the JSON state file")
    ap.add_argument("--lifetime-cap", type=int, default=60, help="longest lifetime granted (s)")
    ap.add_argument("--refuse", action="store_true", help="refuse every mapping (result 2)")
    ap.add_argument("--clients", action="append", type=ipaddress.ip_network,
                    help="a tunnel network whose addresses are answered (repeatable; "
                    "default 10.66.0.0/24)")
    args = ap.parse_args(argv)
    Gateway(args.listen, args.outside, args.state, args.lifetime_cap, args.refuse,
            args.clients).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

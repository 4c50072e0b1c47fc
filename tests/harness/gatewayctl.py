"""Guest side: starting, stopping and reading a NAT-PMP gateway process
(gateway.py) in one of the fake provider's namespaces: the single
provider's (provider.py) or a pool server's (pool.py). Stdlib only.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

GATEWAY = Path(__file__).resolve().parent / "gateway.py"
# Answered only if the gateway is up: an external address request sent
# from inside the gateway's namespace to its listening (tunnel) address,
# which is one of the client networks it answers.
PROBE = ("import socket, sys; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
         "s.settimeout(0.5); s.sendto(bytes(2), (sys.argv[1], 5351)); "
         "assert s.recv(16)[:4] == bytes([0, 128, 0, 0])")


class GatewayProcess:
    """gateway.py in namespace NS, answering on LISTEN, forwarding from
    OUTSIDE, its state in STATE (JSON) and its log in LOG."""

    def __init__(self, ns: str, listen: str, outside: str, state: Path, log: Path,
                 clients: list[str] | None = None, python: str = "python3") -> None:
        self.ns, self.listen, self.outside = ns, listen, outside
        self.state_file, self.log, self.clients, self.python = state, log, clients, python
        self.proc: subprocess.Popen | None = None
        self.settings = (False, 10)  # refuse, lifetime_cap: the last start's

    def start(self, refuse: bool = False, lifetime_cap: int = 10) -> None:
        """Start the gateway (after the tunnel address exists) and wait until
        it answers. refuse: every mapping refused, as for a key made without
        port forwarding."""
        self.stop()
        self.settings = (refuse, lifetime_cap)
        cmd = ["ip", "netns", "exec", self.ns, self.python, str(GATEWAY), "--listen",
               self.listen, "--outside", self.outside, "--state", str(self.state_file),
               "--lifetime-cap", str(lifetime_cap)] + (["--refuse"] if refuse else [])
        for net in self.clients or []:
            cmd += ["--clients", net]
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        probe = ["ip", "netns", "exec", self.ns, self.python, "-c", PROBE, self.listen]
        while subprocess.run(probe, capture_output=True).returncode:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = self.log.read_text()[-2000:]
                self.stop()
                raise RuntimeError(f"the NAT-PMP gateway did not come up:\n{tail}")
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop the gateway (SIGTERM): its ports close. Idempotent."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self, refuse: bool | None = None, lifetime_cap: int | None = None) -> None:
        """The gateway restarts: a new epoch, new ports. The settings of the
        last start unless given."""
        last_refuse, last_cap = self.settings
        self.stop()
        self.start(last_refuse if refuse is None else refuse,
                   last_cap if lifetime_cap is None else lifetime_cap)

    def state(self) -> dict:
        """The gateway's state file ({} if none): epoch_started, pid, refuse,
        requests (the readiness probes count too), ports (client -> port) and
        mappings [{client, proto, internal, external, expires}]."""
        try:
            return dict(json.loads(self.state_file.read_text()))
        except FileNotFoundError:
            return {}

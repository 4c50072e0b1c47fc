"""Guest side: a fake VPN provider and a host with things that must not leak.

The provider is a network namespace joined to the guest's root namespace
(the "host" from wgns's point of view) by a veth pair. It runs wireguard-go
as the WireGuard server, an HTTP server and dnsmasq on its tunnel
addresses and, on demand, a NAT-PMP gateway forwarding a port to a client
(gateway.py). The host side gets an HTTP server on its loopback and LAN
address and stand-ins for the systemd-resolved and nscd sockets: a confined
unit must reach none of them. Stdlib only: this runs on any guest python3.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from pathlib import Path

try:
    from .gatewayctl import GatewayProcess
except ImportError:  # a guest runs the harness's modules side by side
    from gatewayctl import GatewayProcess  # type: ignore[no-redef]

NS = "provider"
HOST_LAN4, PROV_LAN4 = "10.251.0.1", "10.251.0.2"
HOST_LAN6, PROV_LAN6 = "fdfb::1", "fdfb::2"
SERVER4, SERVER6 = "10.66.0.1", "fd66::1"
ENDPOINT_NAME = "vpn.provider.test"
PORT = 51820
STATE = Path("/var/lib/wgns-provider")
TOKEN = "provider-ok"
HOST_TOKEN = "host-secret"
HOST_REPLY = f"HTTP/1.0 200 OK\r\n\r\n{HOST_TOKEN}".encode()
RESOLVER_SOCKETS = ["/run/nscd/socket", "/run/systemd/resolve/io.systemd.Resolve"]
NATPMP_STATE = STATE / "natpmp.json"


def sh(*cmd: str, check: bool = True, inp: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=check, text=True, input=inp,
                          capture_output=True)


def genkey() -> tuple[str, str]:
    priv = sh("wg", "genkey").stdout.strip()
    pub = sh("wg", "pubkey", inp=priv).stdout.strip()
    return priv, pub


def nsexec(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    return sh("ip", "netns", "exec", NS, *cmd, check=check)


class Provider:
    def __init__(self) -> None:
        STATE.mkdir(parents=True, exist_ok=True)
        self.priv, self.pub = genkey()
        self.clients: dict[str, list[str]] = {}  # pubkey -> allowed ips
        self.psks: dict[str, str] = {}
        self.procs: list[subprocess.Popen] = []
        self.gateway = GatewayProcess(NS, SERVER4, PROV_LAN4, NATPMP_STATE,
                                      STATE / "natpmp.log")

    @property
    def natpmp(self) -> subprocess.Popen | None:
        """The NAT-PMP gateway's process, while it runs."""
        return self.gateway.proc

    def add_client(self, pub: str, addrs: list[str], psk: str | None = None) -> None:
        self.clients[pub] = addrs
        if psk:
            self.psks[pub] = psk

    def setup_network(self) -> None:
        sh("ip", "netns", "add", NS)
        sh("ip", "link", "add", "vh", "type", "veth", "peer", "name", "vp")
        sh("ip", "link", "set", "vp", "netns", NS)
        sh("ip", "addr", "add", f"{HOST_LAN4}/24", "dev", "vh")
        sh("ip", "addr", "add", f"{HOST_LAN6}/64", "dev", "vh", "nodad")
        sh("ip", "link", "set", "vh", "up")
        nsexec("ip", "addr", "add", f"{PROV_LAN4}/24", "dev", "vp")
        nsexec("ip", "addr", "add", f"{PROV_LAN6}/64", "dev", "vp", "nodad")
        nsexec("ip", "link", "set", "vp", "up")
        nsexec("ip", "link", "set", "lo", "up")
        self.point_name_at(PROV_LAN4)

    def point_name_at(self, addr: str) -> None:
        hosts = Path("/etc/hosts")
        lines = [ln for ln in hosts.read_text().splitlines() if ENDPOINT_NAME not in ln]
        hosts.write_text("\n".join(lines + [f"{addr} {ENDPOINT_NAME}"]) + "\n")

    def forget_name(self) -> None:
        """The endpoint's name stops resolving (a boot before the network's
        DNS is up, a provider's DNS outage)."""
        hosts = Path("/etc/hosts")
        lines = [ln for ln in hosts.read_text().splitlines() if ENDPOINT_NAME not in ln]
        hosts.write_text("\n".join(lines) + "\n")

    def start_server(self) -> None:
        """Start (or restart) the WireGuard server and the services on it."""
        # Kernel WireGuard where the kernel has it (the VM tier), else
        # wireguard-go, as wgns itself chooses.
        if nsexec("ip", "link", "add", "wgsrv", "type", "wireguard", check=False).returncode:
            env = dict(os.environ, LOG_LEVEL="error")
            subprocess.run(["ip", "netns", "exec", NS, "wireguard-go", "wgsrv"], check=True,
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        keyfile = STATE / "server.key"
        keyfile.write_text(self.priv + "\n")
        os.chmod(keyfile, 0o600)
        args = ["wg", "set", "wgsrv", "listen-port", str(PORT), "private-key", str(keyfile)]
        for pub, addrs in self.clients.items():
            args += ["peer", pub, "allowed-ips", ",".join(addrs)]
            if pub in self.psks:
                pskfile = STATE / f"psk-{len(args)}"
                pskfile.write_text(self.psks[pub] + "\n")
                os.chmod(pskfile, 0o600)
                args += ["preshared-key", str(pskfile)]
        nsexec(*args)
        nsexec("ip", "addr", "add", f"{SERVER4}/24", "dev", "wgsrv")
        nsexec("ip", "addr", "add", f"{SERVER6}/64", "dev", "wgsrv", "nodad")
        nsexec("ip", "link", "set", "wgsrv", "up")
        if not self.procs:
            self._start_services()

    def stop_server(self) -> None:
        """The provider's server disappears (its WireGuard link goes away)."""
        nsexec("ip", "link", "del", "wgsrv", check=False)
        for _ in range(100):
            if not os.path.exists("/var/run/wireguard/wgsrv.sock"):
                break
            time.sleep(0.05)

    def _start_services(self) -> None:
        www = STATE / "www"
        www.mkdir(exist_ok=True)
        (www / "index.html").write_text(TOKEN)
        # Bound to :: so it answers on the tunnel's IPv4 and IPv6 addresses.
        self.procs.append(subprocess.Popen(
            ["ip", "netns", "exec", NS, "python3", "-m", "http.server", "--bind", "::",
             "--directory", str(www), "80"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        self.procs.append(subprocess.Popen(
            ["ip", "netns", "exec", NS, "dnsmasq", "--keep-in-foreground", "--no-resolv",
             "--no-hosts", "--bind-dynamic", f"--listen-address={SERVER4}",
             f"--listen-address={SERVER6}", "--except-interface=lo",
             "--address=/probe.test/10.66.0.1", "--address=/probe.test/fd66::1",
             "--user=root", f"--pid-file={STATE}/dnsmasq.pid"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_tcp(SERVER4, 80, netns=NS)

    def start_natpmp(self, refuse: bool = False, lifetime_cap: int = 10) -> None:
        """Start the NAT-PMP gateway on the tunnel address (after start_server)
        and wait until it answers. refuse: every mapping refused, as for a
        key made without port forwarding. Its log: STATE/natpmp.log."""
        self.gateway.start(refuse, lifetime_cap)

    def stop_natpmp(self) -> None:
        """Stop the NAT-PMP gateway (SIGTERM): its ports close. Idempotent."""
        self.gateway.stop()

    def restart_natpmp(self, refuse: bool | None = None, lifetime_cap: int | None = None) -> None:
        """The gateway restarts: a new epoch, new ports. The settings of the
        last start unless given."""
        self.gateway.restart(refuse, lifetime_cap)

    def natpmp_state(self) -> dict:
        """The gateway's state file ({} if none): epoch_started, pid, refuse,
        requests (the readiness probes count too), ports (client -> port) and
        mappings [{client, proto, internal, external, expires}]."""
        return self.gateway.state()

    def stop(self) -> None:
        self.stop_natpmp()
        for p in self.procs:
            p.terminate()
            p.wait(5)
        self.stop_server()
        sh("ip", "link", "del", "vh", check=False)
        sh("ip", "netns", "del", NS, check=False)


def reset() -> None:
    """Take away a provider (a pool of servers too) and its processes, and
    the host's bait, that a scenario which broke off left behind (the next
    scenario of the boot starts new ones)."""
    for bait in list(HostBait.running):
        bait.stop()
    for pidfile in [STATE / "dnsmasq.pid"]:
        try:
            os.kill(int(pidfile.read_text().split()[0]), 15)
        except (OSError, ValueError, IndexError):
            pass
    pids = sh("ip", "netns", "pids", NS, check=False).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), 9)
        except (OSError, ValueError):
            pass
    sh("ip", "link", "del", "vh", check=False)
    sh("ip", "netns", "del", NS, check=False)
    try:  # and a pool of servers (pool.py, which imports this module)
        from .pool import reset_pool
    except ImportError:
        from pool import reset_pool  # type: ignore[no-redef]
    reset_pool()


def wait_tcp(host: str, port: int, netns: str | None = None, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    code = f"import socket; socket.create_connection(({host!r}, {port}), 1).close()"
    cmd = ["python3", "-c", code]
    if netns:
        cmd = ["ip", "netns", "exec", netns] + cmd
    while subprocess.run(cmd, stderr=subprocess.DEVNULL).returncode != 0:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{host}:{port} did not come up")
        time.sleep(0.1)


def serving(path: str) -> bool:
    """Something real answers on the unix socket PATH (systemd-resolved's,
    on a guest that runs it)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(path)
        except OSError:
            return False
    return True


class HostBait:
    """Things on the host that a confined unit must never reach. A
    resolver socket that a real service already serves (systemd-resolved)
    is left to it: the real one must be out of reach just the same."""

    running: list[HostBait] = []   # every started one, for reset()

    def __init__(self) -> None:
        self.threads: list[threading.Thread] = []
        self.socks: list[socket.socket] = []

    def start(self) -> None:
        HostBait.running.append(self)
        for addr in ("127.0.0.1", HOST_LAN4):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((addr, 8080))
            s.listen(16)
            self._serve(s)
        for path in RESOLVER_SOCKETS:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            if serving(path):
                continue
            if os.path.exists(path):
                os.unlink(path)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.bind(path)
            os.chmod(path, 0o666)
            s.listen(16)
            # Say nothing, close at once: glibc then falls back to its own
            # lookups, so the host's name resolution keeps working.
            self._serve(s, b"")

    def _serve(self, s: socket.socket, reply: bytes = HOST_REPLY) -> None:
        self.socks.append(s)

        def loop() -> None:
            while True:
                try:
                    conn, _ = s.accept()
                except OSError:
                    return
                with conn:
                    try:
                        conn.sendall(reply)
                    except OSError:
                        pass

        t = threading.Thread(target=loop, daemon=True)
        t.start()
        self.threads.append(t)

    def stop(self) -> None:
        for s in self.socks:
            # shutdown first: it wakes the thread in accept(), which would
            # otherwise keep the socket (and its port) alive after close()
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        self.socks = []
        if self in HostBait.running:
            HostBait.running.remove(self)

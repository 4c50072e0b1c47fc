"""Guest side: a pool of the fake provider's servers, for failover (issue 21).

Each server is a node of its own (netnode.py: a namespace, a veth to the
root, public address 10.251.N.2 and the endpoint 10.251.N.2:51820, a host
name NAME.relays.provider.test in the hosts file) with its own WireGuard
server key. It runs WireGuard (the kernel's where there is one, else
wireguard-go), a web page on port 80 that names the server ("provider-ok
NAME") and dnsmasq on its tunnel addresses (probe.test; whoami.probe.test
answers 198.18.0.N, N the server's number), and a NAT-PMP gateway on
demand (gateway.py, forwarding from its public address for real).

The tunnel addresses are the same on every server, as providers hand
them out; the two pool styles:

- Mullvad: one client key and address for every server: 10.67.0.2/32 and
  fd67::2/128, DNS and gateway 10.67.0.1 and fd67::1 (`mullvad_clients`);
- ProtonVPN: a key per server, each with 10.2.0.2/32 and fd02::2/128,
  gateway 10.2.0.1 (NAT-PMP answers there) (`proton_clients`);

and for a provider whose files differ in DNS, each server also answers
DNS on an address of its own, 10.69.N.1 (`dns="own"`). pia.py registers
keys PIA's way, 10.68.N.x with the gateway 10.68.N.1 and DNS 10.0.0.243.
Stdlib only: it runs on the guests' python3 (3.9 and newer).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

try:
    from .gatewayctl import GatewayProcess
    from .netnode import Node, kill_namespace, python, reset, set_hosts, wait_for
    from .pool_client import Client, write_confs
    from .provider import PORT, STATE, TOKEN, genkey
except ImportError:  # a guest runs the harness's modules side by side
    from gatewayctl import GatewayProcess  # type: ignore[no-redef]
    from netnode import Node, kill_namespace, python, reset, set_hosts, wait_for  # type: ignore[no-redef]
    from pool_client import Client, write_confs  # type: ignore[no-redef]
    from provider import PORT, STATE, TOKEN, genkey  # type: ignore[no-redef]

TAG = "prov"  # namespaces prov1, prov2, ...; root links prov1h, ...
DOMAIN = "relays.provider.test"
NAMES = ("se-sto-001", "nl-ams-002", "ch-zrh-003", "de-fra-004", "us-nyc-005", "jp-tyo-006")
MULLVAD_ADDRS, MULLVAD_DNS = ["10.67.0.2/32", "fd67::2/128"], ["10.67.0.1", "fd67::1"]
PROTON_ADDRS, PROTON_DNS = ["10.2.0.2/32", "fd02::2/128"], ["10.2.0.1"]
PROTON_GW = "10.2.0.1"
PIA_DNS = "10.0.0.243"
# On every server's WireGuard link: the gateways and DNS addresses above.
TUNNEL_ADDRS = ["10.67.0.1/24", "fd67::1/64", "10.2.0.1/24", "fd02::1/64", f"{PIA_DNS}/32"]
NATPMP_CLIENTS = ["10.2.0.0/24", "10.67.0.0/24"]


def server_name(n: int) -> str:
    return NAMES[n - 1] if 0 < n <= len(NAMES) else f"xx-srv-{n:03d}"


class Server(Node):
    """Server N of a pool: namespace TAG+N, WireGuard link TAG+N+"wg"."""

    def __init__(self, pool: Pool, n: int) -> None:
        super().__init__(pool.tag, str(n), n, pool.root)
        self.n, self.name = n, server_name(n)
        self.hostname = f"{self.name}.{DOMAIN}"
        self.wg_if, self.port = f"{pool.tag}{n}wg", PORT
        self.vip, self.own_dns, self.whoami = f"10.68.{n}.1", f"10.69.{n}.1", f"198.18.0.{n}"
        self.state = pool.state / self.name
        self.priv, self.pub = genkey()
        self.peers: dict[str, tuple[list[str], str]] = {}  # pub -> allowed ips, psk
        self.gateway = GatewayProcess(self.ns, PROTON_GW, self.public4,
                                      self.state / "natpmp.json", self.state / "natpmp.log",
                                      NATPMP_CLIENTS, python())

    @property
    def page(self) -> str:
        """What this server's web page says: who answered."""
        return f"{TOKEN} {self.name}"

    def setup(self) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        self.link_up()
        www = self.state / "www"
        www.mkdir(exist_ok=True)
        (www / "index.html").write_text(self.page)
        self.start()
        web = self.spawn([python(), "-m", "http.server", "--bind", "::", "--directory",
                          str(www), "80"], self.state / "http.log")
        self.spawn(["dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts",
                    "--conf-file=/dev/null", "--bind-dynamic", f"--interface={self.wg_if}",
                    "--address=/probe.test/10.67.0.1", "--address=/probe.test/fd67::1",
                    f"--address=/whoami.probe.test/{self.whoami}", "--user=root",
                    f"--pid-file={self.state}/dnsmasq.pid"], self.state / "dnsmasq.log")
        code = "import socket, sys; socket.create_connection((sys.argv[1], 80), 1).close()"
        wait_for(f"{self.name}'s web page",
                 lambda: self.run(python(), "-c", code, self.public4, check=False).returncode
                 == 0, proc=web, log=self.state / "http.log")

    # WireGuard

    def registered(self) -> dict[str, str]:
        """Keys registered through the PIA-like API (pia_api.py): pub -> address."""
        try:
            return dict(json.loads((self.state / "registered.json").read_text()))
        except (OSError, ValueError):
            return {}

    def running(self) -> bool:
        return self.run("ip", "link", "show", self.wg_if, check=False).returncode == 0

    def start(self) -> None:
        """Start (or restart) this server's WireGuard, with every client it
        knows (and those registered through the PIA-like API). Idempotent."""
        if self.running():
            return
        if self.run("ip", "link", "add", self.wg_if, "type", "wireguard",
                    check=False).returncode:
            env = dict(os.environ, LOG_LEVEL="error")
            self.spawn(["wireguard-go", self.wg_if], env=env).wait(10)  # it daemonizes
        key = self._file("server.key", self.priv, 0o600)
        args = ["wg", "set", self.wg_if, "listen-port", str(self.port), "private-key", str(key)]
        peers = dict(self.peers)
        peers.update({pub: ([f"{ip}/32"], "") for pub, ip in self.registered().items()})
        for i, (pub, (allowed, psk)) in enumerate(peers.items()):
            args += ["peer", pub, "allowed-ips", ",".join(allowed)]
            if psk:
                args += ["preshared-key", str(self._file(f"psk-{i}", psk, 0o600))]
        self.run(*args)
        for addr in TUNNEL_ADDRS + [f"{self.vip}/24", f"{self.own_dns}/32"]:
            self.run("ip", "addr", "add", addr, "dev", self.wg_if,
                     *(["nodad"] if ":" in addr else []))
        self.run("ip", "link", "set", self.wg_if, "up")

    def stop(self) -> None:
        """This server's WireGuard goes away (its link deleted). Idempotent."""
        self.run("ip", "link", "del", self.wg_if, check=False)
        sock = f"/var/run/wireguard/{self.wg_if}.sock"
        wait_for(f"{self.wg_if} gone", lambda: not os.path.exists(sock), timeout=5)

    def add_client(self, pub: str, addrs: list[str], psk: str = "") -> None:
        """A client key with its addresses; live at once if WireGuard runs."""
        self.peers[pub] = (addrs, psk)
        if self.running():
            args = ["wg", "set", self.wg_if, "peer", pub, "allowed-ips", ",".join(addrs)]
            if psk:
                args += ["preshared-key", str(self._file(f"psk-{len(self.peers)}", psk, 0o600))]
            self.run(*args)

    def handshakes(self) -> dict[str, int]:
        """Each peer's latest handshake (seconds since the epoch, 0: none)."""
        out = self.run("wg", "show", self.wg_if, "latest-handshakes", check=False).stdout
        return {w[0]: int(w[1]) for w in (ln.split() for ln in out.splitlines()) if len(w) == 2}

    # Faults

    def drop(self) -> None:
        """Every packet from or to this server dropped, silently, the server
        itself alive (a blackholed server: no ICMP, no link change)."""
        self.undrop()
        rules = ("table inet wgns_drop {\n"
                 " chain in { type filter hook prerouting priority -300; iifname \"pub\" drop; }\n"
                 " chain out { type filter hook output priority -300; oifname \"pub\" drop; }\n"
                 "}\n")
        self.run("nft", "-f", str(self._file("drop.nft", rules)))

    def undrop(self) -> None:
        self.run("nft", "delete", "table", "inet", "wgns_drop", check=False)

    def dropped(self) -> bool:
        return self.run("nft", "list", "table", "inet", "wgns_drop", check=False).returncode == 0

    def _file(self, name: str, text: str, mode: int = 0o644) -> Path:
        """STATE/NAME holding TEXT (a line), made with MODE."""
        path = self.state / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w") as f:
            f.write(text if text.endswith("\n") else text + "\n")
        return path

    # NAT-PMP

    def start_natpmp(self, refuse: bool = False, lifetime_cap: int = 60) -> None:
        """A NAT-PMP gateway on 10.2.0.1 (ProtonVPN's), forwarding from this
        server's public address; WireGuard must run."""
        self.gateway.start(refuse, lifetime_cap)

    def stop_natpmp(self) -> None:
        self.gateway.stop()

    def natpmp_state(self) -> dict:
        return self.gateway.state()

    def teardown(self) -> None:
        self.stop_natpmp()
        self.run("ip", "link", "del", self.wg_if, check=False)
        if os.path.exists(f"/run/netns/{self.ns}hop"):  # an MTU hop left in place (mtu.py)
            kill_namespace(f"{self.ns}hop")
        super().teardown()


class Pool:
    """COUNT servers numbered from FIRST. ROOT: the namespace standing in for
    the guest's (host tests); HOSTS: the hosts file that names the servers
    (None: none)."""

    def __init__(self, count: int = 3, tag: str = TAG, root: str | None = None,
                 state: Path = STATE / "pool", hosts: Path | None = Path("/etc/hosts"),
                 first: int = 1) -> None:
        self.tag, self.root, self.state, self.hosts = tag, root, state, hosts
        self.servers = [Server(self, n) for n in range(first, first + count)]

    def setup(self) -> None:
        """Every server up and answering; after a failure, nothing left."""
        try:
            for s in self.servers:
                s.setup()
            if self.hosts:
                set_hosts(self.hosts, f"wgns-test {self.tag}",
                          [(s.public4, s.hostname) for s in self.servers]
                          + [(s.public6, s.hostname) for s in self.servers])
        except BaseException:
            self.teardown()
            raise

    def server(self, name: str) -> Server:
        return next(s for s in self.servers if s.name == name)

    def answered(self, page: str) -> Server | None:
        """The server whose web page this is."""
        return next((s for s in self.servers if s.page == page.strip()), None)

    def endpoints(self) -> set[tuple[str, int]]:
        """Every server's WireGuard endpoint (address, port), IPv4 and IPv6."""
        return {(a, s.port) for s in self.servers for a in (s.public4, s.public6)}

    def host_links(self) -> list[str]:
        """The root's side of every server's link (what a capture listens on)."""
        return [s.host_if for s in self.servers]

    def mullvad_clients(self) -> list[Client]:
        """One key and address registered with every server (Mullvad style)."""
        priv, pub = genkey()
        for s in self.servers:
            s.add_client(pub, list(MULLVAD_ADDRS))
        return [Client(s, priv, pub, list(MULLVAD_ADDRS), list(MULLVAD_DNS))
                for s in self.servers]

    def proton_clients(self) -> list[Client]:
        """A key per server, all with the same address (ProtonVPN style)."""
        out = []
        for s in self.servers:
            priv, pub = genkey()
            s.add_client(pub, list(PROTON_ADDRS))
            out.append(Client(s, priv, pub, list(PROTON_ADDRS), list(PROTON_DNS)))
        return out

    def write_confs(self, directory: Path, clients: list[Client], **conf: object) -> list[Path]:
        """Each client's wg-quick file as DIRECTORY/SERVER.conf (0600), as a
        provider's download would be; conf: Client.conf's options."""
        return write_confs(directory, clients, **conf)

    def teardown(self) -> None:
        """Every server gone (idempotent), the hosts file as it was."""
        for s in self.servers:
            s.teardown()
        if self.hosts:
            set_hosts(self.hosts, f"wgns-test {self.tag}", [])


def reset_pool(tag: str = TAG) -> None:
    """What a scenario that broke off left of a pool, gone (guests only)."""
    reset(tag)
    for marker in (f"wgns-test {tag}", f"wgns-test {tag} api"):  # the pool's, pia.py's
        set_hosts(Path("/etc/hosts"), marker, [])

"""Guest side: the fake provider's PIA-like API (issue 22), set up over a
pool (pool.py) and steered by a scenario or a host test.

    pia = PiaApi(pool)           # after pool.setup()
    pia.setup()                  # certificates, the API node, the processes
    pia.url, pia.ca, pia.rogue_ca, pia.users, pia.regions()
    pia.set_modes(refuse_login=True) ... pia.clear_modes()
    pia.revoke_tokens(); pia.forget_keys(); pia.state("se-sto-001")
    pia.stop()

The API (token, server list) answers at https://pia-api.provider.test
(node "api" of the pool's tag: 10.251.200.2, named in the pool's hosts
file), each server's addKey at its public address, port 1337, and its port
forwarding on its gateway 10.68.N.1, port 19999, through the tunnel; each
with a certificate of the provider's own authority for its PIA-style name
(stockholm401, ...), made at setup. set_modes(rogue=True) serves
certificates of a rogue authority of the same name instead. The modes are
pia_routes.py's; they apply from the next request on. Stdlib only.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from pathlib import Path

try:
    from .netnode import Node, python, set_hosts, wait_for
    from .pki import Authority
    from .pool import PIA_DNS, Pool, Server
except ImportError:  # a guest runs the harness's modules side by side
    from netnode import Node, python, set_hosts, wait_for  # type: ignore[no-redef]
    from pki import Authority  # type: ignore[no-redef]
    from pool import PIA_DNS, Pool, Server  # type: ignore[no-redef]

API_HOST = "pia-api.provider.test"
# (no sysctl: a minbase root has no procps)
FORWARD_ON = ("sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward")
API_INDEX = 200  # the API node's addresses: 10.251.200.2, the root's side .1
SCRIPT = Path(__file__).resolve().parent / "pia_api.py"
CA_NAME = "Fake Private Internet Access Test CA"
# Server name prefix -> region id, name, country, the city in its PIA-style name.
REGIONS = {"se-sto": ("se_stockholm", "SE Stockholm", "SE", "stockholm"),
           "nl-ams": ("nl_amsterdam", "Netherlands", "NL", "amsterdam"),
           "ch-zrh": ("swiss", "Switzerland", "CH", "zurich"),
           "de-fra": ("de-frankfurt", "DE Frankfurt", "DE", "frankfurt"),
           "us-nyc": ("us_new_york", "US New York", "US", "newyork"),
           "jp-tyo": ("japan", "Japan", "JP", "tokyo")}
GROUPS = {"ikev2": [{"name": "ikev2", "ports": [500, 4500]}],
          "meta": [{"name": "meta", "ports": [443, 8080]}],
          "ovpntcp": [{"name": "openvpn_tcp", "ports": [80, 110, 443]}],
          "ovpnudp": [{"name": "openvpn_udp", "ports": [8080, 1194, 9201, 53]}],
          "wg": [{"name": "wireguard", "ports": [1337]}]}
MODES = {"refuse_login", "garbage", "slow", "redirect", "error", "expired_signature", "port",
         "rogue", "token_gen", "hide_regions", "token_lifetime", "sig_lifetime", "bind_window"}


def region_of(s: Server) -> tuple[str, str, str, str]:
    return REGIONS.get(s.name[:6], (f"region_{s.n}", f"Region {s.n}", "XX", "server"))


def cn_of(s: Server) -> str:
    """The server's PIA-style name, its certificate's (stockholm401)."""
    return f"{region_of(s)[3]}{400 + s.n}"


class PiaApi:
    """POOL's servers behind a PIA-like API. USERS: username -> password;
    REGIONS: region id -> server names (default: one region per server);
    NO_PORT_FORWARD: regions whose servers refuse port forwarding; the
    lifetimes (s) of a token and a signature, and how long a bound port
    lives without a renewing bindPort."""

    def __init__(self, pool: Pool, users: dict[str, str] | None = None,
                 regions: dict[str, list[str]] | None = None,
                 no_port_forward: tuple[str, ...] = ("us_new_york", "japan"),
                 token_lifetime: float = 86400, sig_lifetime: float = 60 * 86400,
                 bind_window: float = 900) -> None:
        self.pool = pool
        self.users = dict(users or {"p1234567": "correct horse battery"})
        self.region_servers = regions or {region_of(s)[0]: [s.name] for s in pool.servers}
        self.no_pf = set(no_port_forward)
        self.lifetimes = {"token_lifetime": token_lifetime, "sig_lifetime": sig_lifetime,
                          "bind_window": bind_window}
        self.dir = pool.state / "pia"
        self.api = Node(pool.tag, "api", API_INDEX, pool.root)
        self.url = f"https://{API_HOST}"
        self.ca, self.rogue_ca = self.dir / "ca.crt", self.dir / "rogue-ca.crt"
        self.modes_file, self.config = self.dir / "modes.json", self.dir / "config.json"
        self.procs: list[tuple[Node, subprocess.Popen]] = []
        self.routed = False

    def regions(self) -> list[str]:
        return list(self.region_servers)

    def cn(self, name: str) -> str:
        return cn_of(self.pool.server(name))

    def setup(self) -> None:
        """Certificates, config, the API node and every process, answering;
        after a failure, nothing of it left."""
        try:
            self._setup()
        except BaseException:
            self.stop()
            raise

    def _setup(self) -> None:
        (self.dir / "api").mkdir(parents=True, exist_ok=True)
        ca = Authority(self.dir, "ca", CA_NAME)
        rogue = Authority(self.dir, "rogue-ca", CA_NAME)  # the same name: only the key differs

        def certs(stem: str, name: str) -> dict[str, str]:
            good, bad = ca.issue(stem, [name]), rogue.issue(f"{stem}-rogue", [name])
            return {"cert": str(good.cert), "key": str(good.key),
                    "rogue_cert": str(bad.cert), "rogue_key": str(bad.key)}
        cfg = {"secret": secrets.token_hex(32), "users": self.users, "modes": str(self.modes_file),
               "groups": GROUPS, "regions": self._regions(), **self.lifetimes,
               "api": {"listen": self.api.public4, "port": 443, "state": str(self.dir / "api"),
                       **certs("api", API_HOST)},
               "servers": {s.name: {
                   "public": s.public4, "vip": s.vip, "dns": [PIA_DNS], "wg_if": s.wg_if,
                   "wg_port": s.port, "pub": s.pub, "state": str(s.state),
                   "peer_net": s.vip.rsplit(".", 1)[0], "port_forward": self._pf(s),
                   **certs(s.name, cn_of(s))} for s in self.pool.servers}}
        self.config.write_text(json.dumps(cfg, indent=1) + "\n")
        os.chmod(self.config, 0o600)
        self.clear_modes()
        self.api.link_up()
        if self.pool.hosts:
            set_hosts(self.pool.hosts, f"wgns-test {self.pool.tag} api",
                      [(self.api.public4, API_HOST)])
        starts: list[tuple[Node, str, Path]] = [(self.api, "api", self.dir / "api")]
        starts += [(s, s.name, s.state) for s in self.pool.servers]
        for node, role, state in starts:
            log = state / "pia.log"
            proc = node.spawn([python(), str(SCRIPT), str(self.config), role], log)
            self.procs.append((node, proc))
            wait_for(f"the PIA API ({role})", (state / f"pia-{role}.ready").exists, proc=proc,
                     log=log)

    def _pf(self, s: Server) -> bool:
        return not any(s.name in names for r, names in self.region_servers.items()
                       if r in self.no_pf)

    def _regions(self) -> list[dict]:
        out = []
        for rid, names in self.region_servers.items():
            servers = [self.pool.server(n) for n in names]
            _, name, country, _ = region_of(servers[0])
            entries = [{"ip": s.public4, "cn": cn_of(s)} for s in servers]
            out.append({"id": rid, "name": name, "country": country, "auto_region": True,
                        "dns": f"{rid.replace('_', '-')}.privacy.network",
                        "port_forward": rid not in self.no_pf, "geo": False, "offline": False,
                        "servers": {"meta": [{"ip": self.api.public4, "cn": API_HOST}],
                                    "wg": entries, "ovpnudp": entries, "ovpntcp": entries,
                                    "ikev2": entries}})
        return out

    # Steering

    def modes(self) -> dict:
        try:
            return dict(json.loads(self.modes_file.read_text()))
        except (OSError, ValueError):
            return {}

    def set_modes(self, **modes: object) -> None:
        """Switch hostile modes on (pia_routes.py lists them); None switches
        one off. From the next request on."""
        unknown = set(modes) - MODES
        if unknown:
            raise ValueError(f"unknown PIA API modes: {', '.join(sorted(unknown))}")
        doc = self.modes()
        doc.update(modes)
        self._write_modes({k: v for k, v in doc.items() if v is not None})

    def clear_modes(self) -> None:
        """Every hostile mode off (tokens already revoked stay revoked)."""
        gen = self.modes().get("token_gen")
        self._write_modes({"token_gen": gen} if gen else {})

    def _write_modes(self, doc: dict) -> None:
        tmp = self.modes_file.with_name(".modes.json.tmp")
        tmp.write_text(json.dumps(doc) + "\n")
        os.replace(tmp, self.modes_file)

    def revoke_tokens(self) -> None:
        """Every token handed out so far refused from now on."""
        self.set_modes(token_gen=int(self.modes().get("token_gen", 0)) + 1)

    def forget_keys(self, server: str | None = None) -> None:
        """The server (or every one) forgets the keys addKey registered: their
        handshakes fail until a client registers again."""
        for s in self.pool.servers:
            if server in (None, s.name):
                for pub in s.registered():
                    s.run("wg", "set", s.wg_if, "peer", pub, "remove", check=False)
                (s.state / "registered.json").write_text("{}\n")

    def state(self, role: str) -> dict:
        """A process's state: pid, requests per endpoint, bindings [{port,
        client, expires}] (role: "api" or a server's name)."""
        where = self.dir / "api" if role == "api" else self.pool.server(role).state
        try:
            return dict(json.loads((where / f"pia-{role}.json").read_text()))
        except (OSError, ValueError):
            return {}

    def api_through_tunnels(self, on: bool = True, guest: bool = False) -> None:
        """The API's node reachable through each server's tunnel, as PIA's
        web API is from inside a tunnel (a forwarding unit asks it for a
        token there): the servers route the API's /32 alone to the root,
        masqueraded, and the root forwards between its links. Nothing else
        is routed (the API answers the servers' public addresses through the
        root); off again with ON False (and at stop()). Only where the
        root is the test's own namespace, or a guest's (GUEST)."""
        if on and self.pool.root is None and not guest:
            raise RuntimeError("api_through_tunnels would make this host forward: call it "
                               "with a stand-in root namespace, or in a guest with guest=True")
        if on:
            self.api.root_run(*FORWARD_ON)
            # The API answers the servers' public addresses through the root.
            self.api.run("ip", "route", "replace", "10.251.0.0/16", "via", self.api.host4)
        else:
            self.api.run("ip", "route", "del", "10.251.0.0/16", check=False)
        for s in self.pool.servers:
            s.run("ip", "route", "del", f"{self.api.public4}/32", check=False)
            s.run("nft", "delete", "table", "ip", "wgns_pia_api", check=False)
            if not on:
                continue
            s.run(*FORWARD_ON)
            s.run("ip", "route", "add", f"{self.api.public4}/32", "via", s.host4)
            rules = ("table ip wgns_pia_api {\n chain post { type nat hook postrouting "
                     "priority 100; oifname \"pub\" ip daddr " + self.api.public4
                     + " masquerade; }\n}\n")
            path = s.state / "pia-api.nft"
            path.write_text(rules)
            s.run("nft", "-f", str(path))
        self.routed = on

    def account_file(self, path: Path, username: str | None = None,
                     password: str | None = None) -> Path:
        """An account file (username=, password=; 0600), as wgns --account reads."""
        user = username if username is not None else next(iter(self.users))
        pw = password if password is not None else self.users.get(user, "")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"username={user}\npassword={pw}\n")
        return path

    def stop(self) -> None:
        """The processes stopped, the API node gone (idempotent)."""
        if self.routed:
            self.api_through_tunnels(False)
        for node, proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if proc in node.procs:
                node.procs.remove(proc)
        self.procs = []
        self.api.teardown()
        if self.pool.hosts:
            set_hosts(self.pool.hosts, f"wgns-test {self.pool.tag} api", [])

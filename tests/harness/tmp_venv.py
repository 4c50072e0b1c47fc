"""Guest side, part of the `hardening` scenario: the units that run wgns's
own code as an unprivileged user (the UDP relays of `expose --udp` and
`reach --udp`, port forwarding) installed from a venv under /var/tmp.

DynamicUser=yes implies PrivateTmp=yes, which hides /var/tmp: a dynamic
user never saw that interpreter, the relays never started and port
forwarding stayed "activating" (issue 19, finding 2). They run as root
without capabilities there; that user must not read /etc/wireguard, where
`wgns install` without --conf takes a key from (finding 11).
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import bridges
import provider as prov
import scenario as sc

TMP_CHECKS = (
    "var_tmp_udp_expose_relay_works", "var_tmp_udp_reach_relay_works",
    "var_tmp_port_forwarding_works", "var_tmp_units_run_as_root_without_capabilities",
    "relay_as_root_cannot_read_etc_wireguard",
)
ECHO_UNIT = "[Service]\nDynamicUser=yes\nExecStart=/usr/bin/python3 {guest}/echo.py\n"
HOST_ECHO = (prov.HOST_LAN4, 15310)
WG_KEY_FILE = Path("/etc/wireguard/hardening-decoy.conf")


def host_echo() -> socket.socket:
    """A UDP echo on the host's LAN address, for the reach relay."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(HOST_ECHO)

    def serve() -> None:
        while True:
            try:
                data, addr = s.recvfrom(2048)
                s.sendto(b"host-udp:" + data, addr)
            except OSError:
                return
    threading.Thread(target=serve, daemon=True).start()
    return s


def prop(unit: str, name: str) -> str:
    return sc.run("systemctl", "show", "-p", name, "--value", unit, quiet=True).stdout.strip()


def run_from_var_tmp(rec: sc.Recorder, python: str, name: str,
                     provider: prov.Provider) -> None:
    def wgns(*args: str, tunnel: bool = True):  # noqa: ANN202
        return sc.run(python, "-m", "wgns", *args, *(("--name", name) if tunnel else ()))

    units = Path("/etc/systemd/system")
    Path(sc.GUEST, "echo.py").write_text(bridges.ECHO_SCRIPT)
    (units / "udpecho.service").write_text(ECHO_UNIT.format(guest=sc.GUEST))
    made_dir = not WG_KEY_FILE.parent.exists()
    WG_KEY_FILE.parent.mkdir(exist_ok=True)
    WG_KEY_FILE.write_text("[Interface]\nPrivateKey = decoy\n")
    os.chmod(WG_KEY_FILE, 0o600)
    sc.systemctl("daemon-reload")
    echo = host_echo()
    provider.start_natpmp(lifetime_cap=10)
    try:
        done = [wgns("confine", "udpecho"), wgns("expose", "udpecho", "27015", "--udp"),
                wgns("reach", f"{HOST_ECHO[0]}:{HOST_ECHO[1]}", "--udp"),
                wgns("port-forward")]
        sc.systemctl("start", "udpecho.service")
        failed = [p.stderr.strip() for p in done if p.returncode]
        got = bridges.udp_ask("127.0.0.1", 27015)
        rec.check("var_tmp_udp_expose_relay_works",
                  not failed and got == "confined-udp:ping 127.0.0.1 27015", (failed, got))
        got = bridges.udp_ask("127.0.0.1", HOST_ECHO[1], netns=name)
        rec.check("var_tmp_udp_reach_relay_works", got.startswith("host-udp:ping"), got)
        forwarded = Path(f"/run/wgns/{name}/forwarded-port")
        took = sc.wait_for("a forwarded port from the /var/tmp venv", forwarded.exists, 30)
        unit = f"wgns-{name}-forward.service"
        rec.check("var_tmp_port_forwarding_works",
                  took is not None and sc.active(unit) == "active",
                  (took, sc.active(unit), sc.run("journalctl", "-u", unit, "-o", "cat",
                                                 quiet=True).stdout[-600:]))
        relays = [f"wgns-{name}-expose-udp-27015.service",
                  f"wgns-{name}-reach-udp-{HOST_ECHO[1]}.service"]
        users = {u: (prop(u, "DynamicUser"), prop(u, "CapabilityBoundingSet"),
                     Path(units, u).read_text().count(python))
                 for u in [*relays, unit]}
        rec.check("var_tmp_units_run_as_root_without_capabilities",
                  all(d == "no" and caps == "" and uses >= 1
                      for d, caps, uses in users.values()), users)
        # What the running relay sees at /etc/wireguard: an empty, inaccessible node.
        pid = sc.main_pid(relays[0])
        seen = sc.run("nsenter", "-t", pid, "-m", "ls", "-A", "/etc/wireguard",
                      quiet=True) if pid not in ("", "0") else None
        rec.check("relay_as_root_cannot_read_etc_wireguard",
                  seen is not None and WG_KEY_FILE.name not in seen.stdout + seen.stderr
                  and WG_KEY_FILE.exists(),
                  (pid, seen.stdout if seen else None, seen.stderr if seen else None))
    finally:
        for args in (("port-forward", "--off"), ("unreach", f"{HOST_ECHO[0]}:{HOST_ECHO[1]}",
                                                 "--udp"),
                     ("unexpose", "udpecho", "27015", "--udp")):
            wgns(*args)
        sc.systemctl("stop", "udpecho.service")
        wgns("unconfine", "udpecho", tunnel=False)
        provider.stop_natpmp()
        echo.close()
        WG_KEY_FILE.unlink()
        if made_dir:
            WG_KEY_FILE.parent.rmdir()
        (units / "udpecho.service").unlink()
        sc.systemctl("daemon-reload")

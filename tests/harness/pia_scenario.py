"""Guest side: scenario "pia", Private Internet Access as a user has it
(issue 22), against the fake provider's PIA-like API (pia.py) over a pool
of two servers: `wgns install --provider pia` registers a fresh key with
the region's server and writes an ordinary tunnel; bad input (a region
that does not exist, a refused login, an authority that is not the
provider's, an account file others can read) is one line and leaves
nothing; `wgns port-forward` on that tunnel gets its port PIA's way
(signature, bindPort through the tunnel) and a connection from outside
reaches a confined listener; the port stays the same over a restart of
the forwarding unit; when PIA forgets the key, the watcher registers a
new one by itself and the port comes back; the password is never shown;
uninstall leaves nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pia as piamod
import pool as poolmod
import scenario as sc
from providers import ECHO, KNOCK

PIA_CHECKS = (
    "pia_bad_input_one_line_leaves_nothing", "pia_install_makes_a_working_tunnel",
    "pia_password_never_shown", "pia_port_forwarded_from_outside", "pia_status_says_pia",
    "pia_same_port_after_a_restart", "pia_forgotten_key_registered_again",
    "pia_uninstall_leaves_nothing",
)
NO_HANDSHAKE_AFTER = 45   # wgns/runtime/rereg.py
NAME = "pia"
FORWARDED = Path(f"/run/wgns/{NAME}/forwarded-port")


def forwarded() -> int | None:
    try:
        return int(FORWARDED.read_text())
    except (OSError, ValueError):
        return None


def pf_status() -> dict:
    p = sc.wgns("status", "--json", "--name", NAME)
    try:
        return json.loads(p.stdout)["tunnels"][0].get("port_forward") or {}
    except (ValueError, KeyError, IndexError, AttributeError):
        return {"raw": p.stdout + p.stderr}


def bad_input(rec: sc.Recorder, api: piamod.PiaApi, args, region: str,
              password: str) -> str:
    """ARGS(account): install's arguments but the region."""
    before = sc.snapshot()
    wrong = api.account_file(Path("/root/pia-wrong.account"), password="not the password")
    loose = api.account_file(Path("/root/pia-loose.account"))
    os.chmod(loose, 0o644)
    good = Path("/root/pia.account")

    def attempt(account: Path, region: str) -> tuple[bool, str]:
        p = sc.wgns("install", *args(account), "--region", region)
        lines = p.stderr.strip().splitlines()
        return (p.returncode == 1 and len(lines) == 1 and "Traceback" not in p.stderr
                and password not in p.stderr + p.stdout), p.stderr.strip()

    results = {"unknown region": attempt(good, "atlantis"),
               "refused login": attempt(wrong, region),
               "account others can read": attempt(loose, region)}
    api.set_modes(rogue=True)
    results["rogue authority"] = attempt(good, region)
    api.clear_modes()
    wrong.unlink()
    loose.unlink()
    changed = sc.diff(before, sc.snapshot())
    rec.check("pia_bad_input_one_line_leaves_nothing",
              all(ok for ok, _ in results.values()) and not changed
              and not os.path.exists(f"/run/netns/{NAME}"), (results, changed[:8]))
    return "\n".join(err for _, err in results.values())


def pia(rec: sc.Recorder, flavour: str) -> None:
    rec.step("Install wgns; two of the fake provider's servers behind a PIA-like API")
    sc.install_wgns(flavour, rec)
    pool = poolmod.Pool(2)
    pool.setup()
    api = piamod.PiaApi(pool)
    try:
        api.setup()
        api.api_through_tunnels(guest=True)   # the forwarder's token comes through the tunnel
        steps(rec, pool, api)
    finally:
        api.stop()
        pool.teardown()


def steps(rec: sc.Recorder, pool: poolmod.Pool, api: piamod.PiaApi) -> None:
    server = pool.servers[0]
    region = piamod.region_of(server)[0]
    password = api.users[next(iter(api.users))]
    account = api.account_file(Path("/root/pia.account"))

    def args(account: Path) -> list[str]:
        return ["--provider", "pia", "--account", str(account), "--pia-api", api.url,
                "--pia-ca", str(api.ca), "--name", NAME]
    before = sc.snapshot()
    rec.step("Bad input: one line each, nothing written")
    outputs = bad_input(rec, api, args, region, password)

    rec.step("wgns install --provider pia: a key registered, an ordinary tunnel")
    p = sc.wgns("install", *args(account), "--region", region)
    outputs += p.stdout + p.stderr
    body = sc.fetch(f"http://{server.vip}/", netns=NAME)
    rec.check("pia_install_makes_a_working_tunnel",
              p.returncode == 0 and sc.active(f"{NAME}.service") == "active"
              and body == server.page and len(server.registered()) == 1
              and any(server.handshakes().values()), (p.stderr, body, server.registered()))

    rec.step("wgns port-forward: PIA's signature and bindPort, a connection from outside")
    p = sc.wgns("port-forward", "--name", NAME)
    outputs += p.stdout + p.stderr
    sc.wait_for("a forwarded port", lambda: forwarded() is not None, 60)
    port = forwarded()
    address = server.registered().get(next(iter(server.registered()), ""), "")
    echo = subprocess.Popen(["ip", "netns", "exec", NAME, "python3", "-c", ECHO,
                             address.split("/")[0], str(port or 1)])
    time.sleep(1)
    knock = sc.run("python3", "-c", KNOCK, server.public4, str(port or 1),
                   quiet=True).stdout.strip()
    echo.kill()
    echo.wait()
    rec.check("pia_port_forwarded_from_outside", p.returncode == 0 and port is not None
              and knock == "tcp hello / udp hello", (p.stderr, port, address, knock))
    st = pf_status()
    rec.check("pia_status_says_pia", st.get("method") == "pia" and st.get("port") == port
              and not st.get("error"), st)
    sc.systemctl("restart", f"wgns-{NAME}-forward.service")
    sc.wait_for("the port again", lambda: forwarded() is not None
                and pf_status().get("renewed_age") is not None, 60)
    rec.check("pia_same_port_after_a_restart", forwarded() == port, (port, forwarded()))
    outputs += forgotten(rec, server, api, port)

    # Where the password is kept by design (root's alone): the record and
    # the copy handed to the forwarding unit as a credential.
    kept = {f"/etc/wgns/{NAME}/record.json", f"/etc/wgns/{NAME}/pia.account"}
    modes = {k: oct(os.stat(k).st_mode & 0o777) for k in kept if os.path.exists(k)}
    places = sc.exposure_places(outputs)
    places.update({str(q): q.read_text(errors="replace") for q in Path("/etc/wgns").rglob("*")
                   if q.is_file() and str(q) not in kept})
    places["status --json"] = sc.wgns("status", "--json", "--name", NAME).stdout
    leaks = [w for w, text in places.items() if password in text]
    rec.check("pia_password_never_shown", not leaks and len(places) > 10
              and set(modes.values()) == {"0o600"} and len(modes) == 2, (leaks[:5], modes))

    p = sc.wgns("uninstall", "--name", NAME)
    changed = sc.diff(before, sc.snapshot())
    rec.check("pia_uninstall_leaves_nothing", p.returncode == 0 and not changed, changed[:10])


def entered() -> str:
    """When the tunnel unit last became active (a restart changes it)."""
    return sc.run("systemctl", "show", "-P", "ActiveEnterTimestampMonotonic",
                  f"{NAME}.service", quiet=True).stdout.strip()


def forgotten(rec: sc.Recorder, server: poolmod.Server, api: piamod.PiaApi,
              port: int | None) -> str:
    """PIA forgets the key: the watcher, sandboxed as installed, registers a
    new one, writes the tunnel and restarts it; traffic and the forwarded
    port come back. Its journal is returned (for the password check)."""
    rec.step("PIA forgets the key: the watcher registers a new one by itself")
    conf = Path(f"/etc/wgns/{NAME}.conf")
    old_key = conf.read_text()
    keys_before = set(server.registered())
    api.forget_keys(server.name)
    cursor = sc.journal_cursor()
    sc.systemctl("restart", f"{NAME}.service")   # a link that has no handshake
    started = entered()
    # The watcher acts at its first look once the link went that long
    # without a handshake; its next periodic look may be 60 s away: a
    # restart of the watcher makes it look at once (what it decides and
    # writes is its own, in its own sandbox).
    time.sleep(NO_HANDSHAKE_AFTER + 2)
    no_handshake = not any(server.handshakes().values())
    sc.systemctl("restart", "wgns-watch.service")

    def new_key_shakes() -> bool:
        new = set(server.registered()) - keys_before
        return bool(new) and all(server.handshakes().get(k, 0) > 0 for k in new)
    took = sc.wait_for("a new key registered and a handshake", new_key_shakes, 60)
    body = sc.fetch(f"http://{server.vip}/", netns=NAME)
    sc.wait_for("the forwarded port again", lambda: forwarded() is not None
                and pf_status().get("renewed_age") is not None, 60)
    said = sc.journal_since(cursor, "wgns-watch.service")
    resolv = os.stat(f"/etc/wgns/{NAME}/resolv.conf").st_mode & 0o777
    rec.check("pia_forgotten_key_registered_again",
              no_handshake and took is not None and conf.read_text() != old_key
              and "registering a new key with PIA" in said and body == server.page
              and forwarded() == port and resolv == 0o644 and entered() != started,
              {"no_handshake_before": no_handshake, "took": took, "body": body,
               "port": (port, forwarded()), "resolv_mode": oct(resolv),
               "journal": [ln for ln in said.splitlines() if "PIA" in ln][-3:]})
    return said


sc.SCENARIOS["pia"] = pia

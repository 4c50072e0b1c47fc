"""A short guest scenario for counting boots (VM tier retry statistics):
the kernel's WireGuard module loads and a link can be made."""

from pathlib import Path

import scenario as sc


def bootcheck(rec: sc.Recorder, flavour: str) -> None:
    p = sc.run("ip", "link", "add", "wgboot", "type", "wireguard")
    modules = Path("/proc/modules").read_text()
    rec.check("kernel_wireguard_link", p.returncode == 0 and "wireguard " in modules,
              p.stderr)
    sc.run("ip", "link", "del", "wgboot")


sc.SCENARIOS["bootcheck"] = bootcheck

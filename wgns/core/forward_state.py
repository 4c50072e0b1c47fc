"""What the port forwarding unit publishes (forward.json in its runtime
directory), read for status, check and the metrics. The unit runs as an
unprivileged user and repeats what gateways and clients answered: every
value is checked one by one, every string made one printable line."""

from __future__ import annotations

import ipaddress
import json
import time
from typing import Any

from .errors import WgnsError
from .paths import forward_run_dir, forward_unit
from .record import Record
from .safeio import read_text


def state(record: Record, sd: Any) -> dict[str, Any] | None:
    """What status, check and the metrics show: None when port forwarding
    is off (the record says), else the unit's state and what it published."""
    f = record.forward
    if f is None:
        return None
    unit = forward_unit(record.name)
    out: dict[str, Any] = {"unit": unit, "state": sd.active_state(unit) if sd else "unknown",
                           "method": f.method, "gateway": f.gateway, "port": None,
                           "renewed_age": None, "external_address": None, "error": None,
                           "warning": None, "clients": []}
    if out["state"] == "active":
        out.update(_published(record.name))
    else:
        out["error"] = f"{unit} is {out['state']}"
    return out


def _text(value: Any) -> str | None:
    """A published string as one printable line, or None: the unit is not
    privileged, and it repeats what gateways and clients answered."""
    if not isinstance(value, str):
        return None
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in value[:300])


def _published(name: str) -> dict[str, Any]:
    """forward.json, its values checked one by one (never a traceback, a
    terminal escape or a followed link in what status prints)."""
    try:
        data = json.loads(read_text(f"{forward_run_dir(name)}/forward.json", 65536,
                                    follow=False))
    except (WgnsError, ValueError, RecursionError):
        return {}
    if not isinstance(data, dict):
        return {}
    port, renewed, address = data.get("port"), data.get("renewed"), data.get("external_address")
    age = None
    # A time as JSON can be any integer (400 digits: float() overflows) or
    # NaN or infinity: only a plausible Unix time is a time.
    if isinstance(renewed, (int, float)) and not isinstance(renewed, bool) \
            and 0 <= renewed < 1e11:
        age = time.time() - float(renewed)
    try:
        address = str(ipaddress.IPv4Address(address))
    except ValueError:
        address = None
    clients = data.get("clients")
    clients = clients if isinstance(clients, list) else []
    return {"port": port if type(port) is int and 0 < port < 65536 else None,
            "renewed_age": max(0, int(age)) if age is not None and -3600 < age < 1e9 else None,
            "external_address": address, "error": _text(data.get("error")),
            "warning": _text(data.get("warning")),
            "clients": [{"client": _text(c.get("client")) or "client",
                         "synced": c.get("synced") is True, "error": _text(c.get("error")),
                         "restart": c.get("restart") is True}
                        for c in clients[:8] if isinstance(c, dict)]}



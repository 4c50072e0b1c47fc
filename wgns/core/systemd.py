"""Talking to systemd over D-Bus with pystemd. The only module that does.

pystemd is imported lazily: `--root` runs, `--help` and the parser never
need it, and it is not importable on machines without libsystemd.
"""

from __future__ import annotations

import os
import time
from typing import Any

from .errors import SystemdError


def _decode(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Systemd:
    """A connection to the system manager, for one CLI command."""

    def __init__(self) -> None:
        try:
            from pystemd.daemon import booted
            from pystemd.dbuslib import DBus
        except ImportError as e:
            raise SystemdError(
                f"pystemd is not importable ({e})",
                hint="install python3-pystemd or 'pip install pystemd'") from None
        if not booted():
            raise SystemdError(
                "systemd is not running on this system",
                hint="use --root DIR to write the files for an image instead")
        from pystemd.dbusexc import DBusBaseError
        self._bus = DBus()
        try:
            self._bus.open()
        except DBusBaseError as e:
            raise SystemdError(f"cannot connect to systemd over D-Bus: {e}") from None
        from pystemd.systemd1 import Manager
        self._manager = Manager(bus=self._bus, _autoload=True)

    def close(self) -> None:
        self._bus.close()

    def __enter__(self) -> Systemd:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _unit(self, name: str) -> Any:
        from pystemd.systemd1 import Unit
        return Unit(name.encode(), bus=self._bus, _autoload=True)

    def _call(self, what: str, fn: Any, *args: Any) -> Any:
        from pystemd.dbusexc import DBusBaseError
        try:
            return fn(*args)
        except DBusBaseError as e:
            raise SystemdError(f"systemd refused to {what}: {e}") from None

    def reload(self) -> None:
        self._call("reload its configuration", self._manager.Manager.Reload)

    def load_state(self, unit: str) -> str:
        return _decode(self._unit(unit).Unit.LoadState)

    def active_state(self, unit: str) -> str:
        return _decode(self._unit(unit).Unit.ActiveState)

    def service_properties(self, unit: str) -> dict[str, Any]:
        """The confinement-related settings systemd loaded for a service."""
        from pystemd.dbusexc import DBusBaseError
        try:
            return self._service_properties(unit)
        except DBusBaseError as e:
            raise SystemdError(f"cannot read the settings of {unit}: {e}") from None

    def _service_properties(self, unit: str) -> dict[str, Any]:
        obj = self._unit(unit)
        svc = obj.Service
        return {
            "NetworkNamespacePath": _decode(svc.NetworkNamespacePath),
            "BindsTo": [_decode(u) for u in obj.Unit.BindsTo],
            "BindReadOnlyPaths": [(_decode(b[0]), _decode(b[1]))
                                  for b in svc.BindReadOnlyPaths],
            "InaccessiblePaths": [_decode(p).lstrip("-+") for p in svc.InaccessiblePaths],
        }

    def main_pid(self, unit: str) -> int:
        """The service's main process (0: none)."""
        return int(self._unit(unit).Service.MainPID)

    def known(self, unit: str) -> bool:
        return self.load_state(unit) not in ("not-found", "error", "bad-setting")

    def _wait(self, unit: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        obj = self._unit(unit)
        while True:
            job_id = obj.Unit.Job[0]
            if not job_id:
                return _decode(obj.Unit.ActiveState)
            if time.monotonic() > deadline:
                return _decode(obj.Unit.ActiveState)
            time.sleep(0.05)

    def start(self, unit: str, timeout: float = 60, mode: str = "replace") -> str:
        """Start UNIT and wait; mode "fail" refuses when that would cancel a
        queued job (a stop of the unit it binds to, say)."""
        self._call(f"start {unit}", self._manager.Manager.StartUnit,
                   unit.encode(), mode.encode())
        return self._wait(unit, timeout)

    def stop(self, unit: str, timeout: float = 60) -> str:
        """Stop UNIT and wait; a unit systemd has not loaded (no file, never
        started) is already stopped."""
        if self.load_state(unit) == "not-found" and self.active_state(unit) == "inactive":
            return "inactive"
        self._call(f"stop {unit}", self._manager.Manager.StopUnit,
                   unit.encode(), b"replace")
        return self._wait(unit, timeout)

    def restart(self, unit: str, wait: bool = True, timeout: float = 60) -> str:
        self._call(f"restart {unit}", self._manager.Manager.RestartUnit,
                   unit.encode(), b"replace")
        return self._wait(unit, timeout) if wait else "queued"

    def enqueue_start(self, unit: str) -> None:
        """Queue a start job and return at once (safe from inside a unit
        that the queued unit is ordered after)."""
        self._call(f"start {unit}", self._manager.Manager.StartUnit,
                   unit.encode(), b"replace")

    def try_restart(self, unit: str, timeout: float = 60) -> str:
        self._call(f"restart {unit}", self._manager.Manager.TryRestartUnit,
                   unit.encode(), b"replace")
        return self._wait(unit, timeout)

    def restart_if_running(self, unit: str) -> None:
        """Queue a restart of a running unit that can never override a
        pending stop: try-restart does nothing to a stopped unit, and job
        mode "fail" refuses to turn a queued stop job into a start."""
        self._call(f"restart {unit}", self._manager.Manager.TryRestartUnit,
                   unit.encode(), b"fail")

    def jobs(self, unit: str) -> list[str]:
        """The types of the jobs queued for a unit ("start", "stop",
        "restart", ...)."""
        out = []
        for job in self._call("list jobs", self._manager.Manager.ListJobs):
            if _decode(job[1]) == unit:
                out.append(_decode(job[2]))
        return out

    def unit_file_state(self, unit: str) -> str:
        return _decode(self._unit(unit).Unit.UnitFileState)

    def ever_started(self, unit: str) -> bool:
        """Whether the unit left the inactive state since boot."""
        return int(self._unit(unit).Unit.InactiveExitTimestampMonotonic) > 0

    def active_for(self, unit: str) -> float:
        """Seconds since the unit last became active (CLOCK_MONOTONIC)."""
        import time
        since = int(self._unit(unit).Unit.ActiveEnterTimestampMonotonic) / 1e6
        return time.monotonic() - since if since else 0.0

    def reset_failed(self, unit: str) -> None:
        from pystemd.dbusexc import DBusBaseError
        try:
            self._manager.Manager.ResetFailedUnit(unit.encode())
        except DBusBaseError:
            pass  # not loaded or not failed: nothing to reset

    def sockets_in_namespace(self, netns_path: str) -> dict[str, list[str]]:
        """{socket unit: where it listens} of the loaded socket units whose
        sockets are made in the network namespace at NETNS_PATH, whatever
        path their NetworkNamespacePath= names it by (/var/run/netns/...,
        a bind mount of it)."""
        from pystemd.dbusexc import DBusBaseError
        try:
            want = os.stat(netns_path)
        except OSError:
            return {}
        found = {}
        units = self._call("list socket units", self._manager.Manager.ListUnitsByPatterns,
                           [], [b"*.socket"])
        for entry in units:
            unit = _decode(entry[0])
            try:
                sock = self._unit(unit).Socket
                path = _decode(sock.NetworkNamespacePath)
                if not path:
                    continue
                st = os.stat(path)
                if (st.st_dev, st.st_ino) == (want.st_dev, want.st_ino):
                    found[unit] = [_decode(listen[1]) for listen in sock.Listen]
            except (DBusBaseError, AttributeError, OSError):
                continue
        return found

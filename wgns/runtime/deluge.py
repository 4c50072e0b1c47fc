"""Telling Deluge its listening port, through the JSON-RPC that deluge-web
serves (POST /json): `auth.login` with the Web UI's password (Deluge's
login is a password alone), `web.connected` and, when the Web UI is not
attached to a daemon yet, `web.get_hosts` and `web.connect` to the first
one, then `core.get_config_value("listen_ports")` and
`core.set_config({"listen_ports": [P, P], "random_port": false})`. Deluge
applies a new listening port while it runs. Unit side, as clients.py."""

from __future__ import annotations

import itertools
import json
from typing import Any

from .clients import ClientError, LoginRejected, _Http, _json, _port


class Deluge(_Http):
    """deluge-web's JSON-RPC at URL (e.g. http://127.0.0.1:8112)."""

    def __init__(self, url: str, login: tuple[str, str] | None) -> None:
        super().__init__("Deluge", url)
        self.password = login[1] if login else None
        self.ids = itertools.count(1)
        self.logged_in = False

    def _rpc(self, method: str, params: list[Any]) -> Any:
        body = json.dumps({"method": method, "params": params, "id": next(self.ids)}).encode()
        status, _, data = self.call(f"{self.url}/json", body,
                                    {"Content-Type": "application/json"})
        if status != 200:
            raise ClientError(f"Deluge at {self.url}: {method} answered HTTP {status}")
        reply = _json(data)
        if not isinstance(reply, dict) or "result" not in reply:
            raise ClientError(f"Deluge at {self.url}: {method} answered no JSON-RPC result")
        error = reply.get("error")
        if error:
            code = error.get("code") if isinstance(error, dict) else None
            if code == 1:   # "Not authenticated"
                raise PermissionError
            raise ClientError(f"Deluge at {self.url}: {method} failed (error {code})")
        return reply["result"]

    def _logged_in(self, method: str, params: list[Any]) -> Any:
        """METHOD, logged in first (again, when the session ran out)."""
        for attempt in (1, 2):
            if not self.logged_in:
                self._login()
            try:
                return self._rpc(method, params)
            except PermissionError:
                self.logged_in = False
                if attempt == 2:
                    raise ClientError(f"Deluge at {self.url}: {method} refused "
                                      "after a login") from None
        raise AssertionError("unreachable")

    def _login(self) -> None:
        if self.password is None:
            raise ClientError(f"Deluge at {self.url} wants its Web UI password: give "
                              "--credentials with a 'password=' line")
        try:
            ok = self._rpc("auth.login", [self.password])
        except PermissionError:
            ok = False
        if ok is not True:
            raise LoginRejected(f"Deluge at {self.url} rejected the password from the "
                                "credentials file")
        self.logged_in = True
        if self._rpc("web.connected", []) is not True:
            hosts = self._rpc("web.get_hosts", [])
            if not (isinstance(hosts, list) and hosts and isinstance(hosts[0], list)
                    and hosts[0]):
                raise ClientError(f"Deluge at {self.url}: the Web UI knows no daemon to "
                                  "connect to")
            self._rpc("web.connect", [str(hosts[0][0])])

    def port(self) -> int:
        ports = self._logged_in("core.get_config_value", ["listen_ports"])
        try:
            return _port(ports[0])
        except (TypeError, IndexError, KeyError, ValueError):
            raise ClientError(f"Deluge at {self.url}: listen_ports is not a port "
                              "range") from None

    def set_port(self, port: int) -> None:
        self._logged_in("core.set_config", [{"listen_ports": [port, port], "random_port": False}])

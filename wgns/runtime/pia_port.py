"""Port forwarding by Private Internet Access's method (forward method
"pia"), beside NAT-PMP's forwarder.Forwarder: through the tunnel at the
server's gateway, a signed port once (`getSignature`, with a token from
the account), kept in the unit's state directory so that the same port
survives restarts and reboots, and `bindPort` every 15 minutes. A new
token and signature when the kept one is about to expire or bindPort
refuses it; any other failure (no answer, garbage, a port of 0) is one
line and a retry with back-off. The clients follow as with NAT-PMP.

The token, the password and the payload (it holds the token) never reach
a log line, forward.json or an error: they are redacted from everything
logged, and the kept signature is a 0600 file in a 0700 directory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..core import pia
from ..core.errors import WgnsError
from ..core.files import write_atomic
from ..core.pia_http import PiaError, Refused
from ..core.safeio import read_text
from ..core.text import one_line, redact
from .forward_sync import Client
from .forwarder import Forwarder

BIND_EVERY = 15 * 60.0    # PIA's scripts bind every 15 minutes
BOUND_FOR = 20 * 60.0     # after the last bind, how long the port counts as forwarded
RETRY_FIRST, RETRY_MOST = 10.0, 600.0
RENEW_BEFORE = 86400.0    # a signature expiring within a day is replaced
KEPT = "pia-signature.json"


class Calls:
    """The three calls, for real: a token from the API (through the
    tunnel, by name), getSignature and bindPort at the gateway."""

    def __init__(self, account: tuple[str, str], api: pia.Api, gateway: str, cn: str) -> None:
        self.account, self.api, self.gateway, self.cn = account, api, gateway, cn

    def token(self) -> str:
        return pia.token(self.api, *self.account)

    def signature(self, tok: str) -> pia.Signature:
        return pia.get_signature(self.gateway, self.cn, self.api.ca, tok)

    def bind(self, sig: pia.Signature) -> None:
        pia.bind_port(self.gateway, self.cn, self.api.ca, sig)


class PiaPort(Forwarder):
    def __init__(self, name: str, gateway: str, calls: Any, clients: list[Client], out: Path,
                 state_dir: Path, **kwargs: Any) -> None:
        super().__init__(name, gateway, clients, out, transport=_NoNatPmp(), **kwargs)
        self.calls, self.kept = calls, state_dir / KEPT
        self.token: str | None = None
        self.retry = RETRY_FIRST
        self.unkept = False   # the last signature could not be kept (said once)
        self.sig = self._load()

    def clean(self, text: str) -> str:
        sig: pia.Signature | None = getattr(self, "sig", None)
        hidden = [s for s in (getattr(self, "token", None),
                              *((sig.payload, sig.signature) if sig else ())) if s]
        return one_line(redact(text, (*self.secrets, *hidden)))

    # -- the kept signature --------------------------------------------------
    def _load(self) -> pia.Signature | None:
        """The signature kept by an earlier run for this gateway, if sound."""
        if not self.kept.exists() and not self.kept.is_symlink():
            return None
        try:
            doc = json.loads(read_text(str(self.kept), 16384, follow=False))
        except (WgnsError, ValueError, RecursionError):
            self.log(f"the kept signature {self.kept} is unreadable; asking for a new one")
            return None
        if not isinstance(doc, dict) or doc.get("gateway") != self.gateway:
            return None
        try:
            return pia.signature_of(doc.get("payload"), doc.get("signature"), str(self.kept))
        except PiaError as e:
            self.log(f"{e.message}; asking for a new one")
            return None

    def _keep(self, sig: pia.Signature) -> None:
        """Kept for the next start; a state directory that cannot keep it
        (full, read-only, gone) costs only the same port after a restart."""
        try:
            write_atomic(self.kept, json.dumps({"gateway": self.gateway, "payload": sig.payload,
                                                "signature": sig.signature}) + "\n", 0o600)
        except OSError as e:
            if not self.unkept:
                self.log(f"cannot keep the signature in {self.kept}: {e.strerror}; port "
                         f"{sig.port} is used all the same, and may change at the next start")
            self.unkept = True
        else:
            self.unkept = False

    def _forget(self) -> None:
        self.sig, self.token = None, None
        try:
            self.kept.unlink(missing_ok=True)
        except OSError:
            pass   # a state directory gone or read-only: nothing kept there to use

    def _expiring(self, sig: pia.Signature) -> bool:
        return sig.expires is not None and sig.expires - self.wall() < RENEW_BEFORE

    # -- the loop ------------------------------------------------------------
    def _signed(self) -> pia.Signature:
        if self.sig is not None and not self._expiring(self.sig):
            return self.sig
        if self.sig is not None:
            self.log(f"the signature of port {self.sig.port} expires soon; asking for a new one")
        if self.token is None:
            self.token = self.calls.token()
        try:
            sig = self.calls.signature(self.token)
        except Refused:
            self.token = None     # a token that expired: a new one next time
            raise
        self.sig = sig
        self._keep(sig)
        return sig

    def step(self) -> float:
        try:
            sig = self._signed()
        except PiaError as e:
            return self._failed(e.message)
        try:
            self.calls.bind(sig)
        except Refused as e:      # refused or expired: a new token and signature
            self._forget()
            return self._failed(e.message)
        except PiaError as e:
            return self._failed(e.message)
        if sig.port != self.port:
            self.log(f"forwarded port {sig.port} (TCP+UDP) from PIA gateway {self.gateway}"
                     + (f", was {self.port}" if self.port else ""))
        self.port, self.expires, self.renewed = sig.port, self.clock() + BOUND_FOR, self.wall()
        self.error, self.retry = None, RETRY_FIRST
        self.publish()
        self.sync.follow(self.port, verify=True)
        return BIND_EVERY

    def _failed(self, error: str) -> float:
        self._set_error(error)
        self.sync.follow(self.port, verify=False)
        wait, self.retry = self.retry, min(self.retry * 2, RETRY_MOST)
        return wait

    def release(self) -> None:
        """Nothing to give back: PIA has no unbind; the port lapses, and the
        kept signature gives it back at the next start."""

    def state(self) -> dict[str, Any]:
        return {**super().state(), "method": "pia", "external_address": None}


class _NoNatPmp:
    def exchange(self, packet: bytes, timeout: float) -> bytes | None:
        raise AssertionError("PIA's port forwarding speaks no NAT-PMP")

    def send(self, packet: bytes) -> None:
        raise AssertionError("PIA's port forwarding speaks no NAT-PMP")

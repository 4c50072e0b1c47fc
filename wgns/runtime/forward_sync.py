"""Keeping the torrent clients on the forwarded port, in a thread of its
own beside the forwarder's renewals (forwarder.py). Unit side.

A client call can take long: an API that trickles its answer (10 s at
most, clients.TIMEOUT), an --exec command that runs its full minute
(hook.EXEC_TIMEOUT, as long as a mapping lives). The renewals never wait
for one: the forwarder only says which port the clients should be on
(`follow`), and this thread tells them, asks them again at each renewal,
and retries a failing one with a growing pause.
"""

from __future__ import annotations

import threading
from typing import Callable, Protocol

from .clients import ClientError, LoginRejected

CLIENT_RETRY_FIRST, CLIENT_RETRY_MAX, LOGIN_WAIT = 2.0, 60.0, 3600.0


class Client(Protocol):
    what: str
    # live: the client listens on a port it is told while it runs. One that
    # is not (rTorrent) listens there from its next start: status says so.

    def port(self) -> int | None: ...

    def set_port(self, port: int) -> None: ...


class ClientSync:
    def __init__(self, clients: list[Client], clock: Callable[[], float],
                 log: Callable[[str], None], changed: Callable[[], None]) -> None:
        self.clients, self.clock, self.log, self.changed = clients, clock, log, changed
        self.lock = threading.Lock()
        self.port: int | None = None     # where the clients should be (the forwarder's)
        self.verify = False              # ask every client again (a renewal came)
        self.synced: dict[int, int | None] = {i: None for i in range(len(clients))}
        self.errors: dict[int, str | None] = {i: None for i in range(len(clients))}
        self.retry_at: dict[int, float] = {}
        self.backoff: dict[int, float] = {}
        # (port, session) set on a client that is not live, while it ran
        self.restart: dict[int, tuple[int, str | None]] = {}
        self.wake = threading.Event()
        self.stopping = False
        self.crashed: BaseException | None = None
        self.thread: threading.Thread | None = None

    # -- the forwarder's side (never waits) -------------------------------------
    def follow(self, port: int | None, verify: bool) -> None:
        """The clients should be on PORT (None: there is none); with VERIFY,
        ask each of them again (a client restarted with its old port)."""
        with self.lock:
            self.port = port
            self.verify = self.verify or verify
        self.wake.set()

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="clients", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopping = True
        self.wake.set()

    def view(self, port: int | None) -> list[tuple[str, bool, str | None, bool]]:
        """(client, in sync with PORT, its error, whether it must restart to
        listen on PORT: it was set while it ran and is not live) for each."""
        with self.lock:
            return [(c.what, port is not None and self.synced[i] == port, self.errors[i],
                     port is not None and self.restart.get(i, (None,))[0] == port)
                    for i, c in enumerate(self.clients)]

    # -- this thread ------------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self.stopping:
                self.wake.clear()
                due = self.round()
                self.wake.wait(None if due is None else max(0.05, due - self.clock()))
        except BaseException as e:   # told to the forwarder, which exits (never hidden)
            self.crashed = e
            raise

    def round(self) -> float | None:
        """Tell each client the port when it is new to it; at a renewal, also
        ask it and correct it. A failing client is tried again with a growing
        pause, counted from its failure. Returns when the next retry is due."""
        with self.lock:
            port, verify, self.verify = self.port, self.verify, False
        for i, client in enumerate(self.clients):
            with self.lock:
                if port is None or self.port != port or self.stopping:
                    break          # the port moved on (or went): the next round
                known = self.synced[i] == port
                if self.retry_at.get(i, 0.0) > self.clock() or (known and not verify):
                    continue
            try:
                current = client.port()
                if current != port and (not known or current is not None):
                    client.set_port(port)
                    self._told(i, client, port)
                elif i in self.restart:
                    self._restarted(i, client)
            except ClientError as e:
                self._failed(i, e)
            else:
                with self.lock:
                    self.synced[i], self.errors[i] = port, None
                    self.backoff.pop(i, None)
                    self.retry_at.pop(i, None)
            self.changed()
        with self.lock:
            return min(self.retry_at.values()) if self.retry_at and self.port else None

    def _told(self, i: int, client: Client, port: int) -> None:
        """CLIENT was set to PORT; one that is not live is remembered, with
        which run of it was told (its session, e.g. rTorrent's pid)."""
        live = getattr(client, "live", True)
        self.log(f"{client.what}: listening port set to {port}" + (
            "" if live else "; it listens there from its next start"))
        if not live:
            session = getattr(client, "session", lambda: None)()
            with self.lock:
                self.restart[i] = (port, session)

    def _restarted(self, i: int, client: Client) -> None:
        """A client that is not live, found on the port: once it is another
        run than the one told (it started again, with the port), it listens
        there. Without a session to tell runs apart, it stays said."""
        session = getattr(client, "session", lambda: None)()
        with self.lock:
            told = self.restart.get(i)
            if told is not None and session is not None and told[1] is not None \
                    and session != told[1]:
                self.restart.pop(i, None)

    def _failed(self, i: int, e: ClientError) -> None:
        with self.lock:
            wait = LOGIN_WAIT if isinstance(e, LoginRejected) else min(
                CLIENT_RETRY_MAX, self.backoff.get(i, CLIENT_RETRY_FIRST / 2) * 2)
            self.backoff[i], self.retry_at[i] = wait, self.clock() + wait
            said, self.errors[i], self.synced[i] = self.errors[i], str(e), None
        if str(e) != said:
            self.log(f"{e}; trying again in {wait:.0f} s")

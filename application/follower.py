"""Followers of the notification log: read from a tracked position, handle, advance.

Projections, the deployer and the relay are all followers. Each keeps its own
position; the handler stores it (with its effects, where it can) so a restart
neither loses nor repeats work. Positions may have gaps: never wait for contiguity.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from application.hub import Hub
from application.ports import Lease

log = logging.getLogger("sdh.follower")


class EventHandler(Protocol):
    name: str

    def position(self) -> int: ...

    def handle(self, events: Sequence[Any]) -> None: ...


class Resumable(Protocol):
    def resume(self) -> None:
        """Called when this process takes over the follower: reload the position another
        process may have advanced, and pick up work it left unfinished."""


class Follower:
    def __init__(
        self,
        hub: Hub,
        handler: EventHandler,
        batch_size: int = 500,
        poll_interval: float = 0.2,
        max_backoff: float = 30.0,
        reader: Callable[[int, int], Sequence[Any]] | None = None,
        lease: Lease | None = None,
    ) -> None:
        self.hub = hub
        # Decoded events by default; the audit chain reads events exactly as stored.
        self.read: Callable[[int, int], Sequence[Any]] = reader or hub.read_events
        self.handler = handler
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        # Longest wait between retries of a failing batch (e.g. NATS down for the relay):
        # also the longest delay before a recovered dependency is used again.
        self.max_backoff = max_backoff
        self._wakeup = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None
        # Followers with outside effects (deployer, relay) run in one process at a time;
        # the others wait on standby and take over when the lease frees.
        self.lease = lease
        self.leading = lease is None

    def run_once(self) -> int:
        """Handles the next batch; returns how many events it handled."""
        events = self.read(self.handler.position(), self.batch_size)
        if events:
            self.handler.handle(events)
        return len(events)

    def catch_up(self) -> int:
        total = 0
        while handled := self.run_once():
            total += handled
        return total

    def lag(self) -> int:
        return max(0, self.hub.last_position() - self.handler.position())

    def wake(self) -> None:
        self._wakeup.set()

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"follower-{self.handler.name}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._wakeup.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self.lease is not None:
            self.lease.release()
            self.leading = False

    def _lead(self) -> bool:
        """Whether this process may run the follower now (taking over if it can)."""
        if self.lease is None:
            return True
        held = self.lease.acquire()
        if held and not self.leading:
            log.info("taking over", extra={"follower": self.handler.name})
            resume = getattr(self.handler, "resume", None)
            if resume is not None:
                resume()
        self.leading = held
        return held

    def _run(self) -> None:
        backoff = self.poll_interval
        while not self._stopping.is_set():
            try:
                if not self._lead():
                    self._stopping.wait(max(1.0, self.poll_interval))
                    continue
                handled = self.run_once()
            except Exception as error:
                # Never skip an event: log, back off, and try the same batch again. The
                # first failure of a streak gets the traceback; repeats (a dependency that
                # stays down) get one line each.
                described = f"{type(error).__name__}: {error}"
                context = {"follower": self.handler.name, "position": self.handler.position()}
                if self.last_error is None:
                    log.exception("follower failed; retrying", extra=context)
                else:
                    log.warning(
                        "follower still failing; retrying", extra=context | {"error": described}
                    )
                self.last_error = described
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff)
                continue
            self.last_error = None
            backoff = self.poll_interval
            if handled < self.batch_size:
                self._wakeup.wait(self.poll_interval)
                self._wakeup.clear()

"""Ports the application needs from the outside world."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class Checkpoint(Protocol):
    """Where a follower whose effects are outside the database keeps its position."""

    def load(self) -> int: ...

    def save(self, position: int) -> None: ...


class Lease(Protocol):
    """The right to run one follower, held by one process at a time."""

    def acquire(self) -> bool:
        """Takes the lease if free, or confirms it is still ours; never blocks."""

    def release(self) -> None: ...

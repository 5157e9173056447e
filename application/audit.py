"""Tamper evidence for the event log: a hash chain over every stored event, in store order.

Each link is ``sha256(previous link || canonical encoding of the event)``, starting from
a fixed genesis. The chain is kept by a follower (``AuditChainKeeper``) that links events
in store order shortly after they commit, and stored beside the read models. ``verify``
recomputes the chain from the stored events alone and compares it with the stored links
and, optionally, with a head the auditor kept elsewhere.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from eventsourcing.persistence import Notification

from domain.release import Release

GENESIS = hashlib.sha256(b"sdh audit chain v1").hexdigest()


def canonical(notification: Notification) -> bytes:
    """Everything stored about the event, in one unambiguous encoding."""
    state = notification.state
    if not isinstance(state, bytes):
        # Only a hand-edited database stores anything else; hash it, do not crash.
        state = str(state).encode()
    return json.dumps(
        [
            notification.id,
            str(notification.originator_id),
            notification.originator_version,
            notification.topic,
            base64.b64encode(state).decode(),
        ],
        separators=(",", ":"),
    ).encode()


def next_link(previous: str, notification: Notification) -> str:
    return hashlib.sha256(bytes.fromhex(previous) + canonical(notification)).hexdigest()


@dataclass(frozen=True)
class Head:
    position: int
    link: str

    def __str__(self) -> str:
        return f"{self.position}:{self.link}"

    @classmethod
    def parse(cls, text: str) -> Head:
        position, _, link = text.strip().partition(":")
        if not position.isdigit() or len(link) != 64:
            raise ValueError("a head looks like <position>:<64 hex digits> (sdh audit head)")
        bytes.fromhex(link)
        return cls(int(position), link)


class ChainStore(Protocol):
    def head(self) -> Head | None: ...

    def append(self, links: Sequence[Head]) -> None:
        """Stores links atomically; refuses (raises) if the chain moved meanwhile."""

    def links(self) -> Iterator[Head]:
        """Every stored link, in position order."""


class NotificationSource(Protocol):
    def read_notifications(self, after: int, limit: int) -> Sequence[Notification]: ...


class AuditChainKeeper:
    """Follower that extends the chain over newly stored events."""

    name = "audit-chain"

    def __init__(self, store: ChainStore) -> None:
        self.store = store
        head = store.head()
        self._head = head or Head(0, GENESIS)

    def position(self) -> int:
        return self._head.position

    def handle(self, notifications: Sequence[Notification]) -> None:
        link = self._head.link
        links = []
        for notification in notifications:
            link = next_link(link, notification)
            links.append(Head(notification.id, link))
        if not links:
            return
        try:
            self.store.append(links)
        except Exception:
            # Another keeper may have extended the chain: continue from what is stored.
            self._head = self.store.head() or Head(0, GENESIS)
            raise
        self._head = links[-1]


@dataclass(frozen=True)
class Verdict:
    ok: bool
    checked: int
    head: Head
    unchained: int = 0
    broken_at: int | None = None
    reason: str = ""


def verify(
    notifications: Iterable[Notification],
    links: Iterable[Head],
    kept: Head | None = None,
) -> Verdict:
    """Recomputes the chain from the events alone and reports the first position where
    the stored history no longer matches the stored links, or a head kept elsewhere.

    Events newer than the chain's head are not chained yet (the keeper's window): they
    are counted, and still checked against a kept head.
    """
    stored = iter(links)
    expected = next(stored, None)
    link, checked, unchained = GENESIS, 0, 0
    head = Head(0, GENESIS)
    last_position = 0
    at_kept: str | None = None

    def broken(position: int, reason: str) -> Verdict:
        return Verdict(False, checked, head, unchained, broken_at=position, reason=reason)

    for notification in notifications:
        position = notification.id
        last_position = position
        if expected is not None and expected.position < position:
            return broken(expected.position, f"event {expected.position} is missing (deleted)")
        link = next_link(link, notification)
        if kept is not None and position == kept.position:
            at_kept = link
        if expected is None:
            unchained += 1
            continue
        if expected.position > position:
            return broken(position, f"event {position} is not in the chain (inserted)")
        if expected.link != link:
            return broken(
                position,
                f"event {position} differs from when it was chained (edited, replaced or "
                "reordered)",
            )
        head = Head(position, link)
        checked += 1
        expected = next(stored, None)
    if expected is not None:
        return broken(
            expected.position, f"event {expected.position} is missing (deleted or truncated)"
        )
    if kept is not None:
        if last_position < kept.position:
            return broken(
                last_position + 1,
                f"the history ends at position {last_position} but the kept head is at "
                f"{kept.position} (truncated)",
            )
        if at_kept != kept.link:
            return broken(
                kept.position,
                f"the history up to the kept head at {kept.position} was rewritten (its "
                "recomputed link differs from the kept one)",
            )
    return Verdict(True, checked, head, unchained)


def release_snapshot(release: Release) -> dict[str, Any]:
    """A release's state as auditors read it (the same shape as the release view)."""
    return {
        "track": release.track,
        "version": release.semver,
        "name": release.name,
        "description": release.description,
        "status": str(release.status),
        "locked": release.locked,
        "deployments_requested": release.deployments_requested,
        "stages": [
            [{"application": app, **release.requirements.get(app, {})} for app in stage]
            for stage in release.stages
        ],
        "notes": release.notes,
        "catalog": release.catalog,
        "cloned_from": release.cloned_from,
        "hold_reason": release.hold_reason,
        "rescind_reason": release.rescind_reason,
        "aggregate_version": release.version,
        "modified_on": release.modified_on.isoformat(),
    }

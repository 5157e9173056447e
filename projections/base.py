"""Projections and the read-model set that applies them exactly once per event."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import ClassVar

from application.log import RecordedEvent
from projections.store import Cursor, ViewStore

log = logging.getLogger("sdh.projections")

Handler = Callable[[Cursor, RecordedEvent], None]


class Projection:
    """One read model: its tables and a handler per event type it cares about.

    Subclasses name their handlers ``on_<EventType>``; handlers only write rows from
    the event's payload, never load aggregates.
    """

    tables: ClassVar[Sequence[str]] = ()
    ddl: ClassVar[Sequence[str]] = ()

    def begin_batch(self) -> None:
        """Called before each batch's transaction (again if it is retried): forget
        anything deferred by a batch that did not commit."""

    def end_batch(self, cur: Cursor) -> None:
        """Called once per batch, inside its transaction, after every event was applied:
        where a projection finishes work it deferred (e.g. derived statuses)."""

    def handlers(self) -> dict[str, Handler]:
        return {
            name.removeprefix("on_"): getattr(self, name)
            for name in dir(self)
            if name.startswith("on_")
        }


TRACKING_DDL = (
    "CREATE TABLE IF NOT EXISTS sdh_view_tracking (name TEXT PRIMARY KEY, position BIGINT NOT NULL)"
)


# Bump when a view's tables change shape: existing read models are then dropped and
# rebuilt from the log at start, so an upgrade never needs a manual step.
VIEWS_SCHEMA_VERSION = 2


class ReadModels:
    """All read models, kept at one position in the same database as their rows.

    Rows and position commit in one transaction, so a crash resumes exactly where it
    stopped and no event is applied twice. One position for all views keeps
    read-your-writes a single comparison.
    """

    name = "views"

    def __init__(self, store: ViewStore, projections: Sequence[Projection]) -> None:
        self.store = store
        self.projections = list(projections)
        self._dispatch: dict[str, list[Handler]] = {}
        for projection in self.projections:
            for event_type, handler in projection.handlers().items():
                self._dispatch.setdefault(event_type, []).append(handler)
        self._position = 0
        self._advanced = threading.Condition()

    def create_tables(self) -> None:
        with self.store.transaction() as cur:
            cur.execute(TRACKING_DDL)
            cur.execute("SELECT position FROM sdh_view_tracking WHERE name = 'views-schema'")
            row = cur.fetchone()
            if row is not None and int(row[0]) != VIEWS_SCHEMA_VERSION:
                log.warning(
                    "read models were built by another version; rebuilding them from the log",
                    extra={"was": int(row[0]), "now": VIEWS_SCHEMA_VERSION},
                )
                for projection in self.projections:
                    for table in projection.tables:
                        cur.execute(f"DROP TABLE IF EXISTS {table}")
                cur.execute("DELETE FROM sdh_view_tracking WHERE name = %s", (self.name,))
            cur.execute(
                "INSERT INTO sdh_view_tracking (name, position) VALUES ('views-schema', %s)"
                " ON CONFLICT (name) DO UPDATE SET position = excluded.position",
                (VIEWS_SCHEMA_VERSION,),
            )
            cur.execute(
                "INSERT INTO sdh_view_tracking (name, position) VALUES (%s, 0)"
                " ON CONFLICT (name) DO NOTHING",
                (self.name,),
            )
            for projection in self.projections:
                for statement in projection.ddl:
                    cur.execute(statement)
        self._position = self.stored_position()

    def drop_tables(self) -> None:
        with self.store.transaction() as cur:
            for projection in self.projections:
                for table in projection.tables:
                    cur.execute(f"DROP TABLE IF EXISTS {table}")
            cur.execute("UPDATE sdh_view_tracking SET position = 0 WHERE name = %s", (self.name,))
        with self._advanced:
            self._position = 0

    def rebuild(self) -> None:
        """Drop and recreate every view; the follower then replays the log from zero."""
        self.drop_tables()
        self.create_tables()

    def stored_position(self) -> int:
        with self.store.reader() as cur:
            cur.execute("SELECT position FROM sdh_view_tracking WHERE name = %s", (self.name,))
            row = cur.fetchone()
        return int(row[0]) if row else 0

    # --- the follower's side -------------------------------------------------------

    def position(self) -> int:
        return self._position

    def handle(self, events: Sequence[RecordedEvent]) -> None:
        if not events:
            return
        for projection in self.projections:
            projection.begin_batch()
        with self.store.transaction() as cur:
            # Another process may follow too (sdh worker beside sdh serve): the tracking
            # row, locked here, says who got there first; the loser re-reads from it.
            lock = " FOR UPDATE" if self.store.dialect == "postgres" else ""
            cur.execute(
                f"SELECT position FROM sdh_view_tracking WHERE name = %s{lock}", (self.name,)
            )
            row = cur.fetchone()
            stored = int(row[0]) if row else 0
            if stored >= events[0].position:
                with self._advanced:
                    self._position = max(self._position, stored)
                return
            for event in events:
                for handler in self._dispatch.get(event.type, ()):
                    handler(cur, event)
            for projection in self.projections:
                projection.end_batch(cur)
            cur.execute(
                "UPDATE sdh_view_tracking SET position = %s WHERE name = %s",
                (events[-1].position, self.name),
            )
        with self._advanced:
            self._position = events[-1].position
            self._advanced.notify_all()

    # --- the reader's side -----------------------------------------------------------

    def wait_for(self, position: int, timeout: float) -> bool:
        """Blocks until the views include ``position`` (read-your-writes), at most
        ``timeout`` seconds. Also sees progress made by a follower in another process."""
        if position <= self._position:
            return True
        deadline = time.monotonic() + timeout
        with self._advanced:
            while self._position < position:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._advanced.wait(min(remaining, 0.05))
                if self._position < position:
                    stored = self.stored_position()
                    self._position = max(self._position, stored)
        return self._position >= position

"""Follower checkpoints kept beside the read models."""

from __future__ import annotations

from projections.base import TRACKING_DDL
from projections.store import ViewStore


class ViewStoreCheckpoint:
    def __init__(self, store: ViewStore, name: str) -> None:
        self.store = store
        self.name = name
        with store.transaction() as cur:
            cur.execute(TRACKING_DDL)
            cur.execute(
                "INSERT INTO sdh_view_tracking (name, position) VALUES (%s, 0)"
                " ON CONFLICT (name) DO NOTHING",
                (name,),
            )

    def load(self) -> int:
        with self.store.reader() as cur:
            cur.execute("SELECT position FROM sdh_view_tracking WHERE name = %s", (self.name,))
            row = cur.fetchone()
        return int(row[0]) if row else 0

    def save(self, position: int) -> None:
        with self.store.transaction() as cur:
            cur.execute(
                "UPDATE sdh_view_tracking SET position = %s WHERE name = %s AND position < %s",
                (position, self.name, position),
            )

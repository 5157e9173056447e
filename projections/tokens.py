"""The token view: what authentication looks up (by hash) and admins list."""

from __future__ import annotations

from typing import Any

from application.log import RecordedEvent
from projections.base import Projection
from projections.store import Cursor, ViewStore, rows_as_dicts


class TokenProjection(Projection):
    tables = ("sdh_tokens",)
    ddl = (
        "CREATE TABLE IF NOT EXISTS sdh_tokens ("
        " aggregate_id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, role TEXT NOT NULL,"
        " tenant_id TEXT, token_hash TEXT NOT NULL, created_at TEXT NOT NULL,"
        " created_by TEXT NOT NULL, expires_at TEXT, revoked_at TEXT)",
        "CREATE INDEX IF NOT EXISTS sdh_tokens_hash ON sdh_tokens (token_hash)",
    )

    def on_TokenIssued(self, cur: Cursor, e: RecordedEvent) -> None:
        d = e.data
        cur.execute(
            "INSERT INTO sdh_tokens (aggregate_id, name, role, tenant_id, token_hash, created_at,"
            " created_by, expires_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (
                e.aggregate_id,
                d["name"],
                d["role"],
                d["tenant_id"],
                d["token_hash"],
                e.timestamp.isoformat(),
                e.actor,
                d["expires_at"],
            ),
        )

    def on_TokenReissued(self, cur: Cursor, e: RecordedEvent) -> None:
        d = e.data
        cur.execute(
            "UPDATE sdh_tokens SET role = %s, tenant_id = %s, token_hash = %s, created_at = %s,"
            " created_by = %s, expires_at = %s, revoked_at = NULL WHERE aggregate_id = %s",
            (
                d["role"],
                d["tenant_id"],
                d["token_hash"],
                e.timestamp.isoformat(),
                e.actor,
                d["expires_at"],
                e.aggregate_id,
            ),
        )

    def on_TokenRevoked(self, cur: Cursor, e: RecordedEvent) -> None:
        cur.execute(
            "UPDATE sdh_tokens SET revoked_at = %s WHERE aggregate_id = %s",
            (e.timestamp.isoformat(), e.aggregate_id),
        )


class TokenQueries:
    _COLUMNS = ("name", "role", "tenant_id", "created_at", "created_by", "expires_at")

    def __init__(self, store: ViewStore) -> None:
        self.store = store

    def by_hash(self, token_hash: str) -> dict[str, Any] | None:
        """A live (not revoked) token; expiry is the caller's to judge against its clock."""
        with self.store.reader() as cur:
            cur.execute(
                f"SELECT {', '.join(self._COLUMNS)} FROM sdh_tokens"
                " WHERE token_hash = %s AND revoked_at IS NULL",
                (token_hash,),
            )
            rows = list(rows_as_dicts(cur, self._COLUMNS))
        return rows[0] if rows else None

    def tokens(self) -> list[dict[str, Any]]:
        with self.store.reader() as cur:
            cur.execute(
                f"SELECT {', '.join(self._COLUMNS)} FROM sdh_tokens WHERE revoked_at IS NULL"
                " ORDER BY name"
            )
            return list(rows_as_dicts(cur, self._COLUMNS))

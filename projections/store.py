"""The port every read model writes and queries through.

SQL in projections is written once, portable between SQLite and PostgreSQL, with
``%s`` placeholders (the SQLite adapter rewrites them). JSON is stored as text.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol


class Cursor(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any: ...

    def executemany(self, sql: str, params: Sequence[Sequence[Any]]) -> Any: ...

    def fetchone(self) -> tuple[Any, ...] | None: ...

    def fetchall(self) -> list[tuple[Any, ...]]: ...


class ViewStore(Protocol):
    dialect: str

    def transaction(self) -> AbstractContextManager[Cursor]:
        """A write transaction: committed on normal exit, rolled back on error."""

    def reader(self) -> AbstractContextManager[Cursor]:
        """A read-only snapshot for queries."""

    def close(self) -> None: ...


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def loads(value: str | None) -> Any:
    return None if value is None else json.loads(value)


def rows_as_dicts(cursor: Cursor, columns: Sequence[str]) -> Iterator[dict[str, Any]]:
    for row in cursor.fetchall():
        yield dict(zip(columns, row, strict=True))

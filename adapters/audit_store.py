"""Where the audit hash chain is kept: beside the read models, never rebuilt with them."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from application.audit import Head
from projections.store import ViewStore

CHAIN_DDL = (
    "CREATE TABLE IF NOT EXISTS sdh_audit_chain (position BIGINT PRIMARY KEY, link TEXT NOT NULL)"
)


class ChainConflictError(RuntimeError):
    """Another keeper extended the chain first."""


class SqlChainStore:
    def __init__(self, store: ViewStore) -> None:
        self.store = store
        with store.transaction() as cur:
            cur.execute(CHAIN_DDL)

    def head(self) -> Head | None:
        with self.store.reader() as cur:
            cur.execute("SELECT position, link FROM sdh_audit_chain ORDER BY position DESC LIMIT 1")
            row = cur.fetchone()
        return None if row is None else Head(int(row[0]), str(row[1]))

    def append(self, links: Sequence[Head]) -> None:
        with self.store.transaction() as cur:
            if self.store.dialect == "postgres":
                # Two keepers (sdh serve beside sdh worker) must not interleave links.
                cur.execute("LOCK TABLE sdh_audit_chain IN EXCLUSIVE MODE")
            cur.execute("SELECT MAX(position) FROM sdh_audit_chain")
            row = cur.fetchone()
            current = int(row[0]) if row and row[0] is not None else 0
            if current >= links[0].position:
                raise ChainConflictError(f"chain already at {current}")
            cur.executemany(
                "INSERT INTO sdh_audit_chain (position, link) VALUES (%s, %s)",
                [(link.position, link.link) for link in links],
            )

    def links(self, batch: int = 5000) -> Iterator[Head]:
        after = 0
        while True:
            with self.store.reader() as cur:
                cur.execute(
                    "SELECT position, link FROM sdh_audit_chain WHERE position > %s"
                    " ORDER BY position LIMIT %s",
                    (after, batch),
                )
                rows = cur.fetchall()
            if not rows:
                return
            for position, link in rows:
                yield Head(int(position), str(link))
            after = int(rows[-1][0])

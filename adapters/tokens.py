"""Authentication against the token view, the bootstrap admin token, and last-used times."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from application.secrets import hash_token, new_token_secret, same_secret
from domain.access import Role
from projections.store import ViewStore
from projections.tokens import TokenQueries

BOOTSTRAP_NAME = "bootstrap-admin"
USAGE_DDL = (
    "CREATE TABLE IF NOT EXISTS sdh_token_usage (name TEXT PRIMARY KEY, last_used_at TEXT NOT NULL)"
)


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role
    tenant_id: str | None = None


def load_or_create_admin_token(data_dir: Path) -> tuple[str, bool]:
    """The generated bootstrap admin secret, and whether it was created just now."""
    path = data_dir / "admin-token"
    if path.exists():
        return path.read_text().strip(), False
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = new_token_secret()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    return secret, True


class Authenticator:
    # Writing last-used on every request would double the write load for nothing.
    USAGE_RESOLUTION_SECONDS = 60.0

    def __init__(self, store: ViewStore, tokens: TokenQueries, bootstrap_secret: str) -> None:
        self.store = store
        self.tokens = tokens
        self.bootstrap_secret = bootstrap_secret
        self._last_written: dict[str, float] = {}
        self._lock = threading.Lock()
        with store.transaction() as cur:
            cur.execute(USAGE_DDL)

    def authenticate(self, secret: str) -> Principal | None:
        if same_secret(secret, self.bootstrap_secret):
            return Principal(BOOTSTRAP_NAME, Role.ADMIN)
        row = self.tokens.by_hash(hash_token(secret))
        if row is None:
            return None
        if row["expires_at"] and datetime.fromisoformat(row["expires_at"]) <= datetime.now(UTC):
            return None
        self._touch(row["name"])
        return Principal(row["name"], Role(row["role"]), row["tenant_id"])

    def _touch(self, name: str) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last_written.get(name, -1e9) < self.USAGE_RESOLUTION_SECONDS:
                return
            self._last_written[name] = now
        with self.store.transaction() as cur:
            cur.execute(
                "INSERT INTO sdh_token_usage (name, last_used_at) VALUES (%s, %s)"
                " ON CONFLICT (name) DO UPDATE SET last_used_at = excluded.last_used_at",
                (name, datetime.now(UTC).isoformat()),
            )

    def last_used(self) -> dict[str, str]:
        with self.store.reader() as cur:
            cur.execute("SELECT name, last_used_at FROM sdh_token_usage")
            return {name: at for name, at in cur.fetchall()}

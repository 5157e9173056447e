"""Tenant views: tenants with their installations and the environments mapped to each."""

from __future__ import annotations

from typing import Any

from application.log import RecordedEvent
from projections.base import Projection
from projections.store import Cursor, ViewStore, rows_as_dicts


class TenantProjection(Projection):
    tables = ("sdh_tenants", "sdh_installations")
    ddl = (
        "CREATE TABLE IF NOT EXISTS sdh_tenants ("
        " aggregate_id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL UNIQUE,"
        " display_name TEXT NOT NULL, description TEXT NOT NULL, created_at TEXT NOT NULL,"
        " updated_at TEXT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS sdh_installations ("
        " installation_id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, display_name TEXT NOT NULL,"
        " created_at TEXT NOT NULL)",
        "CREATE INDEX IF NOT EXISTS sdh_installations_tenant ON sdh_installations (tenant_id)",
    )

    def on_TenantRegistered(self, cur: Cursor, e: RecordedEvent) -> None:
        d, at = e.data, e.timestamp.isoformat()
        cur.execute(
            "INSERT INTO sdh_tenants (aggregate_id, tenant_id, display_name, description,"
            " created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s)",
            (e.aggregate_id, d["tenant_id"], d["display_name"], d["description"], at, at),
        )

    def on_TenantDetailsChanged(self, cur: Cursor, e: RecordedEvent) -> None:
        cur.execute(
            "UPDATE sdh_tenants SET display_name = %s, description = %s, updated_at = %s"
            " WHERE aggregate_id = %s",
            (
                e.data["display_name"],
                e.data["description"],
                e.timestamp.isoformat(),
                e.aggregate_id,
            ),
        )

    def on_InstallationAdded(self, cur: Cursor, e: RecordedEvent) -> None:
        cur.execute(
            "INSERT INTO sdh_installations (installation_id, tenant_id, display_name, created_at)"
            " SELECT %s, tenant_id, %s, %s FROM sdh_tenants WHERE aggregate_id = %s",
            (
                e.data["installation_id"],
                e.data["display_name"],
                e.timestamp.isoformat(),
                e.aggregate_id,
            ),
        )


class TenantQueries:
    _COLUMNS = ("tenant_id", "display_name", "description", "created_at", "updated_at")

    def __init__(self, store: ViewStore) -> None:
        self.store = store

    def tenants(
        self, limit: int, offset: int, only_tenant: str | None = None
    ) -> list[dict[str, Any]]:
        """``only_tenant`` scopes the answer for a tenant-bound token."""
        where, params = "", []
        if only_tenant is not None:
            where, params = " WHERE tenant_id = %s", [only_tenant]
        with self.store.reader() as cur:
            cur.execute(
                f"SELECT {', '.join(self._COLUMNS)} FROM sdh_tenants{where}"
                " ORDER BY tenant_id LIMIT %s OFFSET %s",
                (*params, limit, offset),
            )
            tenants = list(rows_as_dicts(cur, self._COLUMNS))
            self._attach_installations(cur, tenants)
        return tenants

    def tenant(self, tenant_id: str) -> dict[str, Any] | None:
        with self.store.reader() as cur:
            cur.execute(
                f"SELECT {', '.join(self._COLUMNS)} FROM sdh_tenants WHERE tenant_id = %s",
                (tenant_id,),
            )
            tenants = list(rows_as_dicts(cur, self._COLUMNS))
            self._attach_installations(cur, tenants)
        return tenants[0] if tenants else None

    @staticmethod
    def _attach_installations(cur: Cursor, tenants: list[dict[str, Any]]) -> None:
        if not tenants:
            return
        ids = [t["tenant_id"] for t in tenants]
        marks = ", ".join(["%s"] * len(ids))
        cur.execute(
            "SELECT i.tenant_id, i.installation_id, i.display_name, i.created_at, e.name"
            " FROM sdh_installations i LEFT JOIN sdh_environments e"
            " ON e.installation_id = i.installation_id"
            f" WHERE i.tenant_id IN ({marks}) ORDER BY i.installation_id, e.name",
            ids,
        )
        by_tenant: dict[str, dict[str, dict[str, Any]]] = {}
        for tenant_id, installation_id, display_name, created_at, env in cur.fetchall():
            installations = by_tenant.setdefault(tenant_id, {})
            inst = installations.setdefault(
                installation_id,
                {
                    "installation_id": installation_id,
                    "display_name": display_name,
                    "created_at": created_at,
                    "environments": [],
                },
            )
            if env is not None:
                inst["environments"].append(env)
        for tenant in tenants:
            tenant["installations"] = list(by_tenant.get(tenant["tenant_id"], {}).values())

"""Platform catalog views: environments, applications, pipelines and built images."""

from __future__ import annotations

from typing import Any

from application.log import RecordedEvent, redact
from projections.base import Projection
from projections.store import Cursor, ViewStore, dumps, loads, rows_as_dicts


class CatalogProjection(Projection):
    tables = ("sdh_environments", "sdh_applications", "sdh_pipelines", "sdh_images")
    ddl = (
        "CREATE TABLE IF NOT EXISTS sdh_environments ("
        " aggregate_id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, cluster TEXT NOT NULL,"
        " namespace TEXT NOT NULL, description TEXT NOT NULL, tenant_id TEXT,"
        " installation_id TEXT, created_at TEXT NOT NULL, created_by TEXT NOT NULL)",
        "CREATE INDEX IF NOT EXISTS sdh_environments_installation"
        " ON sdh_environments (installation_id)",
        "CREATE TABLE IF NOT EXISTS sdh_applications ("
        " aggregate_id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, project TEXT NOT NULL,"
        " description TEXT NOT NULL, created_at TEXT NOT NULL, created_by TEXT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS sdh_pipelines ("
        " application TEXT NOT NULL, environment TEXT NOT NULL, target TEXT NOT NULL,"
        " pre_deploy TEXT, post_deploy TEXT, updated_at TEXT NOT NULL,"
        " PRIMARY KEY (application, environment))",
        "CREATE INDEX IF NOT EXISTS sdh_pipelines_environment ON sdh_pipelines (environment)",
        "CREATE TABLE IF NOT EXISTS sdh_images ("
        " application TEXT NOT NULL, workflow TEXT NOT NULL, image TEXT NOT NULL,"
        " commit_sha TEXT NOT NULL, digest TEXT, position BIGINT NOT NULL,"
        " registered_at TEXT NOT NULL,"
        " registered_by TEXT NOT NULL, PRIMARY KEY (application, workflow, image))",
    )

    def on_EnvironmentRegistered(self, cur: Cursor, e: RecordedEvent) -> None:
        d = e.data
        cur.execute(
            "INSERT INTO sdh_environments (aggregate_id, name, cluster, namespace, description,"
            " created_at, created_by) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (
                e.aggregate_id,
                d["name"],
                d["cluster"],
                d["namespace"],
                d["description"],
                e.timestamp.isoformat(),
                e.actor,
            ),
        )

    def on_EnvironmentMapped(self, cur: Cursor, e: RecordedEvent) -> None:
        cur.execute(
            "UPDATE sdh_environments SET tenant_id = %s, installation_id = %s"
            " WHERE aggregate_id = %s",
            (e.data["tenant_id"], e.data["installation_id"], e.aggregate_id),
        )

    def on_EnvironmentUnmapped(self, cur: Cursor, e: RecordedEvent) -> None:
        cur.execute(
            "UPDATE sdh_environments SET tenant_id = NULL, installation_id = NULL"
            " WHERE aggregate_id = %s",
            (e.aggregate_id,),
        )

    def on_ApplicationRegistered(self, cur: Cursor, e: RecordedEvent) -> None:
        d = e.data
        cur.execute(
            "INSERT INTO sdh_applications (aggregate_id, name, project, description, created_at,"
            " created_by) VALUES (%s, %s, %s, %s, %s, %s)",
            (
                e.aggregate_id,
                d["name"],
                d["project"],
                d["description"],
                e.timestamp.isoformat(),
                e.actor,
            ),
        )

    @staticmethod
    def _application_name(cur: Cursor, aggregate_id: str) -> str:
        cur.execute("SELECT name FROM sdh_applications WHERE aggregate_id = %s", (aggregate_id,))
        row = cur.fetchone()
        assert row is not None, f"application {aggregate_id} has no registration"
        return str(row[0])

    def on_PipelineSet(self, cur: Cursor, e: RecordedEvent) -> None:
        d = e.data
        app = self._application_name(cur, e.aggregate_id)
        cur.execute(
            "INSERT INTO sdh_pipelines (application, environment, target, pre_deploy, post_deploy,"
            " updated_at) VALUES (%s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (application, environment) DO UPDATE SET target = excluded.target,"
            " pre_deploy = excluded.pre_deploy, post_deploy = excluded.post_deploy,"
            " updated_at = excluded.updated_at",
            (
                app,
                d["environment"],
                dumps(d["target"]),
                None if d["pre_deploy"] is None else dumps(d["pre_deploy"]),
                None if d["post_deploy"] is None else dumps(d["post_deploy"]),
                e.timestamp.isoformat(),
            ),
        )

    def on_ImageRegistered(self, cur: Cursor, e: RecordedEvent) -> None:
        d = e.data
        app = self._application_name(cur, e.aggregate_id)
        cur.execute(
            "INSERT INTO sdh_images (application, workflow, image, commit_sha, digest, position,"
            " registered_at, registered_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (
                app,
                d["workflow"],
                d["image"],
                d["commit"],
                d["digest"],
                e.position,
                e.timestamp.isoformat(),
                e.actor,
            ),
        )


def _like(term: str) -> str:
    escaped = term.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class CatalogQueries:
    def __init__(self, store: ViewStore) -> None:
        self.store = store

    _ENV_COLUMNS = (
        "name",
        "cluster",
        "namespace",
        "description",
        "tenant_id",
        "installation_id",
        "created_at",
    )

    @staticmethod
    def _environment(row: dict[str, Any]) -> dict[str, Any]:
        tenant_id, installation_id = row.pop("tenant_id"), row.pop("installation_id")
        row["installation"] = (
            {"tenant_id": tenant_id, "installation_id": installation_id} if tenant_id else None
        )
        return row

    def environments(self, limit: int, offset: int) -> list[dict[str, Any]]:
        with self.store.reader() as cur:
            cur.execute(
                f"SELECT {', '.join(self._ENV_COLUMNS)} FROM sdh_environments"
                " ORDER BY name LIMIT %s OFFSET %s",
                (limit, offset),
            )
            return [self._environment(r) for r in rows_as_dicts(cur, self._ENV_COLUMNS)]

    def environment(self, name: str) -> dict[str, Any] | None:
        with self.store.reader() as cur:
            cur.execute(
                f"SELECT {', '.join(self._ENV_COLUMNS)} FROM sdh_environments WHERE name = %s",
                (name,),
            )
            rows = [self._environment(r) for r in rows_as_dicts(cur, self._ENV_COLUMNS)]
        return rows[0] if rows else None

    _APP_COLUMNS = ("name", "project", "description", "created_at")

    def applications(self, search: str | None, limit: int, offset: int) -> list[dict[str, Any]]:
        where, params = "", []
        if search:
            where = (
                " WHERE LOWER(name) LIKE %s ESCAPE '\\' OR LOWER(project) LIKE %s ESCAPE '\\'"
                " OR LOWER(description) LIKE %s ESCAPE '\\'"
            )
            params = [_like(search)] * 3
        with self.store.reader() as cur:
            cur.execute(
                f"SELECT {', '.join(self._APP_COLUMNS)} FROM sdh_applications{where}"
                " ORDER BY name LIMIT %s OFFSET %s",
                (*params, limit, offset),
            )
            apps = list(rows_as_dicts(cur, self._APP_COLUMNS))
            names = [a["name"] for a in apps]
            pipelines = self._pipelines(cur, names)
        for app in apps:
            app["pipelines"] = pipelines.get(app["name"], [])
        return apps

    def application(self, name: str) -> dict[str, Any] | None:
        with self.store.reader() as cur:
            cur.execute(
                f"SELECT {', '.join(self._APP_COLUMNS)} FROM sdh_applications WHERE name = %s",
                (name,),
            )
            apps = list(rows_as_dicts(cur, self._APP_COLUMNS))
            if not apps:
                return None
            apps[0]["pipelines"] = self._pipelines(cur, [name]).get(name, [])
        return apps[0]

    @staticmethod
    def _pipelines(cur: Cursor, names: list[str]) -> dict[str, list[dict[str, Any]]]:
        if not names:
            return {}
        marks = ", ".join(["%s"] * len(names))
        cur.execute(
            "SELECT application, environment, target, pre_deploy, post_deploy, updated_at"
            f" FROM sdh_pipelines WHERE application IN ({marks}) ORDER BY environment",
            names,
        )
        out: dict[str, list[dict[str, Any]]] = {}
        for app, env, target, pre, post, updated_at in cur.fetchall():
            out.setdefault(app, []).append(
                {
                    "environment": env,
                    "target": redact(loads(target)),
                    "pre_deploy": redact(loads(pre)),
                    "post_deploy": redact(loads(post)),
                    "updated_at": updated_at,
                }
            )
        return out

    _IMAGE_COLUMNS = ("workflow", "image", "commit_sha", "digest", "registered_at", "registered_by")

    def images(
        self, application: str, workflow: str | None, limit: int, offset: int
    ) -> list[dict[str, Any]]:
        where, params = "WHERE application = %s", [application]
        if workflow:
            where += " AND workflow = %s"
            params.append(workflow)
        with self.store.reader() as cur:
            cur.execute(
                f"SELECT {', '.join(self._IMAGE_COLUMNS)} FROM sdh_images {where}"
                " ORDER BY position DESC LIMIT %s OFFSET %s",
                (*params, limit, offset),
            )
            rows = list(rows_as_dicts(cur, self._IMAGE_COLUMNS))
        for row in rows:
            row["commit"] = row.pop("commit_sha")
        return rows

"""Release track and release views, and which tenants a release targets."""

from __future__ import annotations

from typing import Any

from application.log import RecordedEvent
from domain.ids import semver_sort_key
from projections.base import Projection
from projections.rollout import RolloutQueries
from projections.store import Cursor, ViewStore, dumps, loads, rows_as_dicts


def _empty_requirement() -> dict[str, Any]:
    return {"workflow": None, "image": None, "instructions": ""}


class ReleaseProjection(Projection):
    tables = ("sdh_tracks", "sdh_releases", "sdh_release_applications")
    ddl = (
        "CREATE TABLE IF NOT EXISTS sdh_tracks ("
        " aggregate_id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, description TEXT NOT NULL,"
        " catalog_schema TEXT, created_at TEXT NOT NULL, created_by TEXT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS sdh_releases ("
        " aggregate_id TEXT PRIMARY KEY, track TEXT NOT NULL, semver TEXT NOT NULL,"
        " name TEXT NOT NULL, description TEXT NOT NULL, status TEXT NOT NULL,"
        " locked BOOLEAN NOT NULL, stages TEXT NOT NULL, requirements TEXT NOT NULL,"
        " notes TEXT NOT NULL, catalog TEXT, cloned_from TEXT, hold_reason TEXT NOT NULL,"
        " rescind_reason TEXT NOT NULL, created_at TEXT NOT NULL, created_by TEXT NOT NULL,"
        " updated_at TEXT NOT NULL, UNIQUE (track, semver))",
        "CREATE TABLE IF NOT EXISTS sdh_release_applications ("
        " release_id TEXT NOT NULL, application TEXT NOT NULL, stage INTEGER NOT NULL,"
        " PRIMARY KEY (release_id, application))",
        "CREATE INDEX IF NOT EXISTS sdh_release_applications_app"
        " ON sdh_release_applications (application)",
    )

    def on_ReleaseTrackCreated(self, cur: Cursor, e: RecordedEvent) -> None:
        d = e.data
        cur.execute(
            "INSERT INTO sdh_tracks (aggregate_id, name, description, catalog_schema, created_at,"
            " created_by) VALUES (%s, %s, %s, %s, %s, %s)",
            (
                e.aggregate_id,
                d["name"],
                d["description"],
                None if d["catalog_schema"] is None else dumps(d["catalog_schema"]),
                e.timestamp.isoformat(),
                e.actor,
            ),
        )

    def on_ReleaseCreated(self, cur: Cursor, e: RecordedEvent) -> None:
        d, at = e.data, e.timestamp.isoformat()
        cur.execute(
            "INSERT INTO sdh_releases (aggregate_id, track, semver, name, description, status,"
            " locked, stages, requirements, notes, catalog, cloned_from, hold_reason,"
            " rescind_reason, created_at, created_by, updated_at) VALUES"
            " (%s, %s, %s, %s, %s, 'draft', %s, %s, %s, '', NULL, %s, '', '', %s, %s, %s)",
            (
                e.aggregate_id,
                d["track"],
                d["semver"],
                d["name"],
                d["description"],
                False,
                dumps(d["stages"]),
                dumps(d["requirements"]),
                d["cloned_from"],
                at,
                e.actor,
                at,
            ),
        )
        self._index_applications(cur, e.aggregate_id, d["stages"])

    @staticmethod
    def _index_applications(cur: Cursor, release_id: str, stages: list[list[str]]) -> None:
        cur.execute("DELETE FROM sdh_release_applications WHERE release_id = %s", (release_id,))
        rows = [
            (release_id, app, number)
            for number, stage in enumerate(stages, start=1)
            for app in stage
        ]
        if rows:
            cur.executemany(
                "INSERT INTO sdh_release_applications (release_id, application, stage)"
                " VALUES (%s, %s, %s)",
                rows,
            )

    @staticmethod
    def _set(cur: Cursor, e: RecordedEvent, **columns: Any) -> None:
        assignments = ", ".join(f"{name} = %s" for name in columns)
        cur.execute(
            f"UPDATE sdh_releases SET {assignments}, updated_at = %s WHERE aggregate_id = %s",
            (*columns.values(), e.timestamp.isoformat(), e.aggregate_id),
        )

    @staticmethod
    def _requirements(cur: Cursor, release_id: str) -> dict[str, dict[str, Any]]:
        cur.execute("SELECT requirements FROM sdh_releases WHERE aggregate_id = %s", (release_id,))
        row = cur.fetchone()
        assert row is not None, f"release {release_id} has no creation event"
        requirements: dict[str, dict[str, Any]] = loads(row[0])
        return requirements

    def on_StagesSet(self, cur: Cursor, e: RecordedEvent) -> None:
        stages: list[list[str]] = e.data["stages"]
        old = self._requirements(cur, e.aggregate_id)
        requirements = {
            app: old.get(app) or _empty_requirement() for stage in stages for app in stage
        }
        self._set(cur, e, stages=dumps(stages), requirements=dumps(requirements))
        self._index_applications(cur, e.aggregate_id, stages)

    def on_ApplicationRequirementsSet(self, cur: Cursor, e: RecordedEvent) -> None:
        d = e.data
        requirements = self._requirements(cur, e.aggregate_id)
        requirements[d["application"]] = {
            "workflow": d["workflow"],
            "image": d["image"],
            "instructions": d["instructions"],
        }
        self._set(cur, e, requirements=dumps(requirements))

    def on_RequirementsLocked(self, cur: Cursor, e: RecordedEvent) -> None:
        self._set(cur, e, locked=True)

    def on_RequirementsUnlocked(self, cur: Cursor, e: RecordedEvent) -> None:
        self._set(cur, e, locked=False, status="draft", hold_reason="")

    def on_ReleaseMarkedReady(self, cur: Cursor, e: RecordedEvent) -> None:
        self._set(cur, e, status="ready")

    def on_ReleaseHeld(self, cur: Cursor, e: RecordedEvent) -> None:
        self._set(cur, e, status="on_hold", hold_reason=e.data["reason"])

    def on_ReleaseResumed(self, cur: Cursor, e: RecordedEvent) -> None:
        self._set(cur, e, status=e.data["status"], hold_reason="")

    def on_ReleaseRescinded(self, cur: Cursor, e: RecordedEvent) -> None:
        self._set(cur, e, status="rescinded", rescind_reason=e.data["reason"])

    def on_ReleaseNotesSet(self, cur: Cursor, e: RecordedEvent) -> None:
        self._set(cur, e, notes=e.data["markdown"])

    def on_CatalogDataSet(self, cur: Cursor, e: RecordedEvent) -> None:
        self._set(cur, e, catalog=dumps(e.data["data"]))


# A release targets a tenant when one of its applications has a pipeline to an
# environment mapped to one of the tenant's installations.
_TARGETS_TENANT = (
    "EXISTS (SELECT 1 FROM sdh_release_applications ra"
    " JOIN sdh_pipelines p ON p.application = ra.application"
    " JOIN sdh_environments e ON e.name = p.environment"
    " WHERE ra.release_id = r.aggregate_id AND e.tenant_id = %s)"
)


class ReleaseQueries:
    _TRACK_COLUMNS = ("name", "description", "catalog_schema", "created_at")
    _RELEASE_COLUMNS = (
        "track",
        "semver",
        "name",
        "description",
        "status",
        "locked",
        "stages",
        "requirements",
        "notes",
        "catalog",
        "cloned_from",
        "hold_reason",
        "rescind_reason",
        "created_at",
        "updated_at",
    )

    def __init__(self, store: ViewStore) -> None:
        self.store = store

    def tracks(
        self, limit: int, offset: int, only_tenant: str | None = None
    ) -> list[dict[str, Any]]:
        # A tenant sees only tracks with a release that targets it; filter before paging,
        # so a page is never short (nor hints at the tracks it may not see).
        where, params = "", []
        if only_tenant is not None:
            where = (
                " WHERE EXISTS (SELECT 1 FROM sdh_releases r"
                f" WHERE r.track = sdh_tracks.name AND {_TARGETS_TENANT})"
            )
            params = [only_tenant]
        with self.store.reader() as cur:
            cur.execute(
                f"SELECT {', '.join(self._TRACK_COLUMNS)} FROM sdh_tracks{where}"
                " ORDER BY name LIMIT %s OFFSET %s",
                (*params, limit, offset),
            )
            tracks = [self._track(r) for r in rows_as_dicts(cur, self._TRACK_COLUMNS)]
            summaries = self._summaries(cur, [t["name"] for t in tracks], only_tenant)
        for track in tracks:
            track["releases"] = summaries.get(track["name"], [])
        return tracks

    def track(self, name: str, only_tenant: str | None = None) -> dict[str, Any] | None:
        with self.store.reader() as cur:
            cur.execute(
                f"SELECT {', '.join(self._TRACK_COLUMNS)} FROM sdh_tracks WHERE name = %s",
                (name,),
            )
            tracks = [self._track(r) for r in rows_as_dicts(cur, self._TRACK_COLUMNS)]
            if not tracks:
                return None
            tracks[0]["releases"] = self._summaries(cur, [name], only_tenant).get(name, [])
        if only_tenant is not None and not tracks[0]["releases"]:
            return None
        return tracks[0]

    @staticmethod
    def _track(row: dict[str, Any]) -> dict[str, Any]:
        row["catalog_schema"] = loads(row["catalog_schema"])
        return row

    @staticmethod
    def _summaries(
        cur: Cursor, tracks: list[str], only_tenant: str | None
    ) -> dict[str, list[dict[str, Any]]]:
        if not tracks:
            return {}
        marks = ", ".join(["%s"] * len(tracks))
        params: list[Any] = list(tracks)
        scope = ""
        if only_tenant is not None:
            scope, params = f" AND {_TARGETS_TENANT}", [*params, only_tenant]
        cur.execute(
            "SELECT r.track, r.semver, r.name, r.status, r.locked, r.created_at"
            f" FROM sdh_releases r WHERE r.track IN ({marks}){scope}",
            params,
        )
        out: dict[str, list[dict[str, Any]]] = {}
        for track, semver, name, status, locked, created_at in list(cur.fetchall()):
            out.setdefault(track, []).append(
                {
                    "version": semver,
                    "name": name,
                    "status": RolloutQueries.release_status(cur, track, semver, status),
                    "locked": bool(locked),
                    "created_at": created_at,
                }
            )
        for releases in out.values():
            releases.sort(key=lambda r: semver_sort_key(r["version"]), reverse=True)
        return out

    def release(
        self, track: str, semver: str, only_tenant: str | None = None
    ) -> dict[str, Any] | None:
        params: list[Any] = [track, semver]
        scope = ""
        if only_tenant is not None:
            scope, params = f" AND {_TARGETS_TENANT}", [*params, only_tenant]
        columns = ", ".join(f"r.{c}" for c in self._RELEASE_COLUMNS)
        with self.store.reader() as cur:
            cur.execute(
                f"SELECT {columns} FROM sdh_releases r WHERE r.track = %s AND r.semver = %s{scope}",
                params,
            )
            rows = list(rows_as_dicts(cur, self._RELEASE_COLUMNS))
            if not rows:
                return None
            row = rows[0]
            row["status"] = RolloutQueries.release_status(cur, track, semver, row["status"])
        stages: list[list[str]] = loads(row.pop("stages"))
        requirements: dict[str, dict[str, Any]] = loads(row.pop("requirements"))
        row["version"] = row.pop("semver")
        row["locked"] = bool(row["locked"])
        row["catalog"] = loads(row["catalog"])
        row["stages"] = [
            [{"application": app, **requirements.get(app, _empty_requirement())} for app in stage]
            for stage in stages
        ]
        return row

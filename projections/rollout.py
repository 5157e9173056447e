"""Rollout views: status per targeted installation and application, and the history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from application.log import RecordedEvent
from domain.rollout import installation_status
from projections.base import Projection
from projections.store import Cursor, ViewStore, dumps, loads, rows_as_dicts


class RolloutProjection(Projection):
    tables = ("sdh_rollouts", "sdh_rollout_apps", "sdh_deployments")
    ddl = (
        "CREATE TABLE IF NOT EXISTS sdh_rollouts ("
        " aggregate_id TEXT PRIMARY KEY, track TEXT NOT NULL, semver TEXT NOT NULL,"
        " tenant_id TEXT NOT NULL, installation_id TEXT NOT NULL, plan TEXT NOT NULL,"
        " status TEXT NOT NULL, updated_at TEXT NOT NULL, UNIQUE (track, semver, installation_id))",
        "CREATE TABLE IF NOT EXISTS sdh_rollout_apps ("
        " rollout_id TEXT NOT NULL, application TEXT NOT NULL, phase TEXT NOT NULL,"
        " deployment_id TEXT NOT NULL, status TEXT NOT NULL, image TEXT NOT NULL,"
        " position BIGINT NOT NULL, updated_at TEXT NOT NULL,"
        " PRIMARY KEY (rollout_id, application, phase))",
        "CREATE INDEX IF NOT EXISTS sdh_rollout_apps_deployment ON sdh_rollout_apps"
        " (deployment_id)",
        "CREATE TABLE IF NOT EXISTS sdh_deployments ("
        " deployment_id TEXT PRIMARY KEY, rollout_id TEXT NOT NULL, track TEXT NOT NULL,"
        " semver TEXT NOT NULL, tenant_id TEXT NOT NULL, installation_id TEXT NOT NULL,"
        " application TEXT NOT NULL, phase TEXT NOT NULL, stage INTEGER NOT NULL,"
        " workflow TEXT, image TEXT NOT NULL, environments TEXT NOT NULL, status TEXT NOT NULL,"
        " requested_by TEXT NOT NULL, requested_at TEXT NOT NULL, started_at TEXT,"
        " finished_at TEXT, message TEXT NOT NULL, position BIGINT NOT NULL)",
        "CREATE INDEX IF NOT EXISTS sdh_deployments_release"
        " ON sdh_deployments (track, semver, position)",
        "CREATE INDEX IF NOT EXISTS sdh_deployments_pending ON sdh_deployments (status)",
    )

    # Deployment rows are written in bulk at the end of each batch (one executemany per
    # statement, in event order): a 10,000-deployment rollout is tens of thousands of
    # events, and one round trip each is what made PostgreSQL slow. Queued rows go first,
    # then transitions, so a transition never precedes the row it updates; a transition of
    # a deployment that a newer one replaced as "latest" simply matches no latest row.
    _INSERT_DEPLOYMENT = (
        "INSERT INTO sdh_deployments (deployment_id, rollout_id, track, semver, tenant_id,"
        " installation_id, application, phase, stage, workflow, image, environments, status,"
        " requested_by, requested_at, message, position)"
        " SELECT %s, aggregate_id, track, semver, tenant_id, installation_id, %s, %s, %s, %s,"
        " %s, %s, 'queued', %s, %s, '', %s FROM sdh_rollouts WHERE aggregate_id = %s"
    )
    _UPSERT_LATEST = (
        "INSERT INTO sdh_rollout_apps (rollout_id, application, phase, deployment_id, status,"
        " image, position, updated_at) VALUES (%s, %s, %s, %s, 'queued', %s, %s, %s)"
        " ON CONFLICT (rollout_id, application, phase) DO UPDATE SET"
        " deployment_id = excluded.deployment_id, status = excluded.status,"
        " image = excluded.image, position = excluded.position,"
        " updated_at = excluded.updated_at"
    )
    _UPDATE_DEPLOYMENT = (
        "UPDATE sdh_deployments SET status = %s, started_at = COALESCE(%s, started_at),"
        " finished_at = COALESCE(%s, finished_at), message = COALESCE(%s, message)"
        " WHERE deployment_id = %s"
    )
    _UPDATE_LATEST = (
        "UPDATE sdh_rollout_apps SET status = %s, position = %s, updated_at = %s"
        " WHERE deployment_id = %s"
    )

    def __init__(self) -> None:
        self.begin_batch()

    def begin_batch(self) -> None:
        self._dirty: set[str] = set()
        self._inserts: list[tuple[Any, ...]] = []
        self._latest: list[tuple[Any, ...]] = []
        self._updates: list[tuple[Any, ...]] = []
        self._latest_updates: list[tuple[Any, ...]] = []

    def on_RolloutStarted(self, cur: Cursor, e: RecordedEvent) -> None:
        d = e.data
        cur.execute(
            "INSERT INTO sdh_rollouts (aggregate_id, track, semver, tenant_id, installation_id,"
            " plan, status, updated_at) VALUES (%s, %s, %s, %s, %s, %s, 'yet_to_trigger', %s)",
            (
                e.aggregate_id,
                d["track"],
                d["semver"],
                d["tenant_id"],
                d["installation_id"],
                dumps(d["plan"]),
                e.timestamp.isoformat(),
            ),
        )

    def on_RolloutPlanChanged(self, cur: Cursor, e: RecordedEvent) -> None:
        cur.execute(
            "UPDATE sdh_rollouts SET plan = %s WHERE aggregate_id = %s",
            (dumps(e.data["plan"]), e.aggregate_id),
        )
        self._dirty.add(e.aggregate_id)

    def on_DeploymentQueued(self, cur: Cursor, e: RecordedEvent) -> None:
        d, at = e.data, e.timestamp.isoformat()
        self._inserts.append(
            (
                d["deployment_id"],
                d["application"],
                d["phase"],
                d["stage"],
                d["workflow"],
                d["image"],
                dumps([env["environment"] for env in d["environments"]]),
                e.actor,
                at,
                e.position,
                e.aggregate_id,
            )
        )
        self._latest.append(
            (
                e.aggregate_id,
                d["application"],
                d["phase"],
                d["deployment_id"],
                d["image"],
                e.position,
                at,
            )
        )
        self._dirty.add(e.aggregate_id)

    def _transition(self, e: RecordedEvent, status: str, finished: bool) -> None:
        at = e.timestamp.isoformat()
        dep_id = e.data["deployment_id"]
        self._updates.append(
            (
                status,
                None if finished else at,
                at if finished else None,
                e.data.get("message") if finished else None,
                dep_id,
            )
        )
        self._latest_updates.append((status, e.position, at, dep_id))
        self._dirty.add(e.aggregate_id)

    def on_DeploymentStarted(self, cur: Cursor, e: RecordedEvent) -> None:
        self._transition(e, "in_progress", finished=False)

    def on_DeploymentSucceeded(self, cur: Cursor, e: RecordedEvent) -> None:
        self._transition(e, "succeeded", finished=True)

    def on_DeploymentFailed(self, cur: Cursor, e: RecordedEvent) -> None:
        self._transition(e, "failed", finished=True)

    def end_batch(self, cur: Cursor) -> None:
        for sql, rows in (
            (self._INSERT_DEPLOYMENT, self._inserts),
            (self._UPSERT_LATEST, self._latest),
            (self._UPDATE_DEPLOYMENT, self._updates),
            (self._UPDATE_LATEST, self._latest_updates),
        ):
            if rows:
                cur.executemany(sql, rows)
        dirty = sorted(self._dirty)
        self.begin_batch()
        # One status computation per rollout the batch touched, not one per event.
        for chunk in (dirty[i : i + 500] for i in range(0, len(dirty), 500)):
            marks = ", ".join(["%s"] * len(chunk))
            cur.execute(
                f"SELECT aggregate_id, plan FROM sdh_rollouts WHERE aggregate_id IN ({marks})",
                chunk,
            )
            plans: dict[str, dict[str, int]] = {rid: loads(plan) for rid, plan in cur.fetchall()}
            cur.execute(
                "SELECT rollout_id, application, phase, status, updated_at FROM sdh_rollout_apps"
                f" WHERE rollout_id IN ({marks})",
                chunk,
            )
            latest: dict[str, dict[str, dict[str, str]]] = {}
            newest: dict[str, str] = {}
            for rollout_id, application, phase, status, updated_at in cur.fetchall():
                latest.setdefault(rollout_id, {}).setdefault(application, {})[phase] = status
                newest[rollout_id] = max(newest.get(rollout_id, ""), updated_at)
            cur.executemany(
                "UPDATE sdh_rollouts SET status = %s, updated_at = COALESCE(%s, updated_at)"
                " WHERE aggregate_id = %s",
                [
                    (
                        installation_status(plan, latest.get(rid, {})).value,
                        newest.get(rid),
                        rid,
                    )
                    for rid, plan in plans.items()
                ],
            )


# Installations a release targets: an application of the release has a pipeline to an
# environment mapped to the installation.
_TARGETS = (
    "SELECT DISTINCT e.tenant_id, e.installation_id, ra.application, ra.stage"
    " FROM sdh_releases r"
    " JOIN sdh_release_applications ra ON ra.release_id = r.aggregate_id"
    " JOIN sdh_pipelines p ON p.application = ra.application"
    " JOIN sdh_environments e ON e.name = p.environment"
    " WHERE r.track = %s AND r.semver = %s AND e.installation_id IS NOT NULL"
)


class RolloutQueries:
    _HISTORY_COLUMNS = (
        "deployment_id",
        "tenant_id",
        "installation_id",
        "application",
        "phase",
        "stage",
        "workflow",
        "image",
        "environments",
        "status",
        "requested_by",
        "requested_at",
        "started_at",
        "finished_at",
        "message",
    )

    def __init__(self, store: ViewStore) -> None:
        self.store = store

    @staticmethod
    def release_status(cur: Cursor, track: str, semver: str, base: str) -> str:
        """The release's status as users see it: ``ready`` becomes partially or completely
        released as deployments succeed on the installations it targets."""
        if base != "ready":
            return base
        cur.execute(
            "SELECT COUNT(*) FROM sdh_deployments WHERE track = %s AND semver = %s"
            " AND status = 'succeeded'",
            (track, semver),
        )
        row = cur.fetchone()
        if not row or not row[0]:
            return base
        cur.execute(
            f"SELECT COUNT(DISTINCT t.installation_id), COUNT(DISTINCT CASE WHEN"
            f" ro.status = 'completed' THEN t.installation_id END) FROM ({_TARGETS}) t"
            " LEFT JOIN sdh_rollouts ro ON ro.track = %s AND ro.semver = %s"
            " AND ro.installation_id = t.installation_id",
            (track, semver, track, semver),
        )
        counts = cur.fetchone()
        assert counts is not None
        targeted, completed = int(counts[0]), int(counts[1] or 0)
        if targeted and completed == targeted:
            return "completely_released"
        return "partially_released"

    def rollout(
        self,
        track: str,
        semver: str,
        status: str | None = None,
        tenant_id: str | None = None,
        limit: int = 1000,
        offset: int = 0,
    ) -> dict[str, Any] | None:
        """``tenant_id`` filters (and is how a tenant token is confined to its own)."""
        with self.store.reader() as cur:
            cur.execute(
                "SELECT status, requirements FROM sdh_releases WHERE track = %s AND semver = %s",
                (track, semver),
            )
            release = cur.fetchone()
            if release is None:
                return None
            requirements: dict[str, dict[str, Any]] = loads(release[1])
            release_status = RolloutQueries.release_status(cur, track, semver, str(release[0]))
            params: list[Any] = [track, semver]
            tenant_clause = ""
            if tenant_id is not None:
                tenant_clause, params = " AND e.tenant_id = %s", [*params, tenant_id]
            cur.execute(_TARGETS + tenant_clause, params)
            installations: dict[str, dict[str, Any]] = {}
            for tenant, installation_id, application, stage in cur.fetchall():
                inst = installations.setdefault(
                    installation_id,
                    {
                        "tenant_id": tenant,
                        "installation_id": installation_id,
                        "status": "yet_to_trigger",
                        "applications": {},
                    },
                )
                inst["applications"][application] = {
                    "application": application,
                    "stage": stage,
                    "status": "not_deployed",
                    "phase": None,
                    "image": requirements.get(application, {}).get("image"),
                    "deployment_id": None,
                    "updated_at": None,
                }
            rollout_params: list[Any] = [track, semver]
            rollout_tenant = ""
            if tenant_id is not None:
                rollout_tenant, rollout_params = (
                    " AND ro.tenant_id = %s",
                    [
                        *rollout_params,
                        tenant_id,
                    ],
                )
            cur.execute(
                "SELECT ro.tenant_id, ro.installation_id, ro.status, ro.plan, a.application,"
                " a.phase, a.status, a.image, a.deployment_id, a.position, a.updated_at"
                " FROM sdh_rollouts ro LEFT JOIN sdh_rollout_apps a ON a.rollout_id ="
                f" ro.aggregate_id WHERE ro.track = %s AND ro.semver = %s{rollout_tenant}"
                " ORDER BY a.position",
                rollout_params,
            )
            for (
                tenant,
                installation_id,
                inst_status,
                plan,
                application,
                phase,
                app_status,
                image,
                dep_id,
                _position,
                updated_at,
            ) in cur.fetchall():
                inst = installations.setdefault(
                    installation_id,
                    {
                        "tenant_id": tenant,
                        "installation_id": installation_id,
                        "status": inst_status,
                        "applications": {},
                    },
                )
                inst["status"] = inst_status
                if application is None:
                    continue
                stages: dict[str, int] = loads(plan)
                # Rows come oldest first: the last one is the application's latest deployment.
                inst["applications"][application] = {
                    "application": application,
                    "stage": stages.get(application),
                    "status": app_status,
                    "phase": phase,
                    "image": image,
                    "deployment_id": dep_id,
                    "updated_at": updated_at,
                }
        rows = sorted(installations.values(), key=lambda i: (i["tenant_id"], i["installation_id"]))
        if status is not None:
            rows = [i for i in rows if i["status"] == status]
        page = rows[offset : offset + limit]
        for inst in page:
            inst["applications"] = sorted(
                inst["applications"].values(), key=lambda a: (a["stage"] or 0, a["application"])
            )
        counts: dict[str, int] = {}
        for inst in rows:
            counts[inst["status"]] = counts.get(inst["status"], 0) + 1
        return {
            "release_status": release_status,
            "total": len(rows),
            "counts": counts,
            "installations": page,
        }

    def installation_counts(self, track: str, semver: str) -> dict[str, int]:
        """Installations per status among those whose rollout began (cheap, indexed)."""
        with self.store.reader() as cur:
            cur.execute(
                "SELECT status, COUNT(*) FROM sdh_rollouts WHERE track = %s AND semver = %s"
                " GROUP BY status",
                (track, semver),
            )
            return {str(status): int(count) for status, count in cur.fetchall()}

    def history(
        self,
        track: str,
        semver: str,
        tenant_id: str | None = None,
        installation_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        where, params = "WHERE track = %s AND semver = %s", [track, semver]
        if tenant_id is not None:
            where += " AND tenant_id = %s"
            params.append(tenant_id)
        if installation_id is not None:
            where += " AND installation_id = %s"
            params.append(installation_id)
        with self.store.reader() as cur:
            cur.execute(
                f"SELECT {', '.join(self._HISTORY_COLUMNS)} FROM sdh_deployments {where}"
                " ORDER BY position DESC LIMIT %s OFFSET %s",
                (*params, limit, offset),
            )
            return [_deployment(row) for row in rows_as_dicts(cur, self._HISTORY_COLUMNS)]

    def deployment(self, deployment_id: str) -> dict[str, Any] | None:
        with self.store.reader() as cur:
            cur.execute(
                f"SELECT {', '.join(self._HISTORY_COLUMNS)} FROM sdh_deployments"
                " WHERE deployment_id = %s",
                (deployment_id,),
            )
            rows = [_deployment(row) for row in rows_as_dicts(cur, self._HISTORY_COLUMNS)]
        return rows[0] if rows else None

    def unfinished(self) -> list[str]:
        """Deployments queued or in progress: what a restarted deployer reconciles."""
        with self.store.reader() as cur:
            cur.execute(
                "SELECT deployment_id FROM sdh_deployments WHERE status IN ('queued',"
                " 'in_progress') ORDER BY position"
            )
            return [str(r[0]) for r in cur.fetchall()]


def _deployment(row: dict[str, Any]) -> dict[str, Any]:
    """A deployment as the API shows it, in the history and on its own."""
    row["id"] = row.pop("deployment_id")
    row["environments"] = loads(row["environments"])
    row["duration_seconds"] = _duration(
        row["started_at"] or row["requested_at"], row["finished_at"]
    )
    return row


def _duration(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return round((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds(), 3)

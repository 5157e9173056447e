"""Scale check: one request deploying a 10-application stage to 1,000 installations.

On the simulated adapter with zero delay, measures from the request until every
deployment has succeeded and the read models are current, on SQLite and PostgreSQL,
and prints the figures next to the raw batched-insert rate of the same database,
measured in the same run.

    .venv/bin/python bench/rollout_scale.py [--installations 1000] [--apps 10] [--backend all]
"""

from __future__ import annotations

import argparse
import resource
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

from adapters.settings import Settings
from api.bootstrap import Runtime, build_runtime
from domain.application import Application
from domain.environment import Environment
from domain.tenant import Tenant

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
ACTOR = "bench"
ROW = "x" * 200  # about the size of a stored deployment event


def raw_sqlite_rate(path: Path, rows: int = 20_000, batch: int = 100) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, b BLOB)")
    start = time.perf_counter()
    for _ in range(0, rows, batch):
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO t (a, b) VALUES (?, ?)", [(str(i), ROW.encode()) for i in range(batch)]
        )
        conn.execute("COMMIT")
    rate = rows / (time.perf_counter() - start)
    conn.close()
    return rate


def raw_postgres_rate(schema: str, rows: int = 20_000, batch: int = 100) -> float:
    with psycopg.connect(PG_URL) as conn:
        conn.execute(f'CREATE TABLE "{schema}".t (id BIGSERIAL PRIMARY KEY, a TEXT, b BYTEA)')
        conn.commit()
        start = time.perf_counter()
        for _ in range(0, rows, batch):
            with conn.cursor() as cur:
                cur.executemany(
                    f'INSERT INTO "{schema}".t (a, b) VALUES (%s, %s)',
                    [(str(i), ROW.encode()) for i in range(batch)],
                )
            conn.commit()
        return rows / (time.perf_counter() - start)


def prepare(runtime: Runtime, installations: int, apps: int) -> list[str]:
    """The platform, saved in large batches (set-up is not what is measured)."""
    hub = runtime.hub
    envs = [Environment.register(f"env{n}", "", "", "", ACTOR) for n in range(installations)]
    hub.save(*envs)
    tenants, ids = [], []
    for n in range(installations // 10):
        tenant = Tenant.register(f"tenant{n}", f"Tenant {n}", "", ACTOR)
        reservations = []
        for k in range(10):
            inst = f"inst{n}-{k}"
            reservations.append(tenant.add_installation(inst, inst, ACTOR))
            env = envs[n * 10 + k]
            tenant.map_environments(inst, [env], [], ACTOR)
            ids.append(inst)
        tenants.append(tenant)
        hub.save(tenant, *reservations)
    hub.save(*envs)
    names = [f"app{a}" for a in range(apps)]
    for name in names:
        app = Application.register(name, "bench", "", ACTOR)
        for env in envs:
            app.set_pipeline(env.name, {"simulate": {"seconds": 0}}, None, None, ACTOR)
        app.register_image("ci", f"registry.example/{name}:1", "", ACTOR)
        hub.save(app)
    hub.create_track("bench", "", None, ACTOR)
    hub.create_release("bench", "1.0.0", None, "", None, ACTOR)
    hub.set_stages("bench", "1.0.0", [names], ACTOR)
    for name in names:
        hub.set_release_application(
            "bench", "1.0.0", name, None, f"registry.example/{name}:1", None, ACTOR
        )
    hub.lock_requirements("bench", "1.0.0", ACTOR)
    hub.mark_ready("bench", "1.0.0", ACTOR)
    return ids


def run(backend: str, installations: int, apps: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="sdh-bench-"))
    schema = "bench_" + uuid.uuid4().hex[:8]
    if backend == "postgres":
        settings = Settings(
            data_dir=workdir,
            admin_token="bench",
            database_url=PG_URL,
            database_schema=schema,
            poll_interval=0.05,
            log_level="WARNING",
        )
    else:
        settings = Settings(
            data_dir=workdir, admin_token="bench", poll_interval=0.05, log_level="WARNING"
        )
    runtime = build_runtime(settings)
    try:
        ids = prepare(runtime, installations, apps)
        runtime.start()
        runtime.wait_for(runtime.hub.last_position())
        head_before = runtime.hub.last_position()
        expected = installations * apps

        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        batch = runtime.hub.request_deployments(
            "bench", "1.0.0", ids, [f"app{a}" for a in range(apps)], "deploy", ACTOR
        )
        accepted = time.perf_counter() - start
        assert len(batch.deployments) == expected
        while True:
            done = runtime.rollouts.installation_counts("bench", "1.0.0").get("completed", 0)
            if done == installations and runtime.views.position() == runtime.hub.last_position():
                break
            if time.perf_counter() - start > 1800:
                raise SystemExit(f"{backend}: not finished after 30 min ({done} completed)")
            time.sleep(0.1)
        wall = time.perf_counter() - start
        # Peak resident memory of this process (kB on Linux): its growth is what the
        # rollout itself cost, on top of the platform set-up.
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        events = len(runtime.hub.read_events(head_before, 10 * expected))
        rollout = runtime.rollouts.rollout("bench", "1.0.0", limit=1)
        assert rollout is not None
        failed = rollout["counts"].get("failed", 0)
        assert failed == 0, f"{failed} installations failed"
        assert rollout["release_status"] == "completely_released"

        if backend == "postgres":
            with psycopg.connect(PG_URL, autocommit=True) as conn:
                conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            raw = raw_postgres_rate(schema)
        else:
            raw = raw_sqlite_rate(workdir / "raw.sqlite")
        print(
            f"{backend:9} {expected} deployments to {installations} installations: "
            f"accepted in {accepted:.2f} s (one save), all succeeded and views current in "
            f"{wall:.1f} s; {expected / wall:,.0f} deployments/s, {events / wall:,.0f} events/s "
            f"({events} events); raw batched insert {raw:,.0f} rows/s; "
            f"sdh events/s = {events / wall / raw:.3f} x raw; peak RSS {rss_after / 1024:.0f} MiB"
            f" (+{(rss_after - rss_before) / 1024:.0f} MiB during the rollout)"
        )
    finally:
        runtime.close()
        if backend == "postgres":
            with psycopg.connect(PG_URL, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--installations", type=int, default=1000)
    parser.add_argument("--apps", type=int, default=10)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "all"], default="all")
    args = parser.parse_args()
    for backend in ("sqlite", "postgres") if args.backend == "all" else (args.backend,):
        run(backend, args.installations, args.apps)


if __name__ == "__main__":
    main()

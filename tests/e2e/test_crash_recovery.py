"""Killing sdh mid-rollout and starting it again completes every accepted deployment once."""

from __future__ import annotations

import collections
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN, PG_URL, free_port
from tests.helpers import add_installation, all_events, sdh_env, start_sdh, stop_sdh

pytestmark = pytest.mark.e2e

INSTALLATIONS = 6


def _env(data_dir: Path, backend: str, schema: str | None) -> dict[str, str]:
    extra = {"SDH_ADMIN_TOKEN": ADMIN, "SDH_DEPLOY_CONCURRENCY": "3", "SDH_LOG_LEVEL": "WARNING"}
    if backend == "postgres":
        assert schema is not None
        extra.update(SDH_DATABASE_URL=PG_URL, SDH_DATABASE_SCHEMA=schema)
    return sdh_env(data_dir, **extra)


def _prepare(api: httpx.Client) -> list[str]:
    installations = []
    api.post("/applications", json={"name": "api"}).raise_for_status()
    api.post("/applications/api/images", json={"workflow": "ci", "image": "r/api:1"})
    api.post("/applications", json={"name": "worker"}).raise_for_status()
    api.post("/applications/worker/images", json={"workflow": "ci", "image": "r/worker:1"})
    for n in range(INSTALLATIONS):
        env, tenant, inst = f"env{n}", f"tenant{n}", f"inst{n}"
        api.post("/environments", json={"name": env}).raise_for_status()
        api.post("/tenants", json={"tenant_id": tenant, "display_name": tenant}).raise_for_status()
        add_installation(api, tenant, inst, [env])
        for app in ("api", "worker"):
            api.put(
                f"/applications/{app}/pipelines/{env}",
                json={"target": {"simulate": {"seconds": 0.4}}},
            ).raise_for_status()
        installations.append(inst)
    release = "/release-tracks/numero/releases/1.0.0"
    api.post("/release-tracks", json={"name": "numero"}).raise_for_status()
    api.post("/release-tracks/numero/releases", json={"version": "1.0.0"}).raise_for_status()
    api.put(release + "/stages", json={"stages": [["api", "worker"]]}).raise_for_status()
    for app in ("api", "worker"):
        api.put(f"{release}/applications/{app}", json={"image": f"r/{app}:1"}).raise_for_status()
    api.post(release + "/lock").raise_for_status()
    api.post(release + "/ready").raise_for_status()
    return installations


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_every_accepted_deployment_finishes_once_when_sdh_is_killed_mid_rollout(
    backend, tmp_path, request
):
    schema = request.getfixturevalue("pg_schema") if backend == "postgres" else None
    env = _env(tmp_path, backend, schema)
    port = free_port()
    base = f"http://127.0.0.1:{port}/api/v1"
    headers = {"Authorization": f"Bearer {ADMIN}"}

    process = start_sdh(env, port)
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=30) as api:
            installations = _prepare(api)
            accepted = api.post(
                "/release-tracks/numero/releases/1.0.0/deployments",
                json={"installations": installations, "applications": ["api", "worker"]},
            )
            assert accepted.status_code == 202
            ids = {d["id"] for d in accepted.json()["deployments"]}
            assert len(ids) == 2 * INSTALLATIONS
            # 12 deployments of 0.4 s on 3 workers take ~1.6 s: kill in the middle.
            time.sleep(0.6)
            before = api.get("/release-tracks/numero/releases/1.0.0/history").json()
            unfinished_at_kill = [h for h in before if h["finished_at"] is None]
            assert unfinished_at_kill, "the kill must interrupt deployments in flight"
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=10)

    process = start_sdh(env, port)
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=30) as api:
            deadline = time.monotonic() + 30
            rollout: dict = {}
            while time.monotonic() < deadline:
                rollout = api.get("/release-tracks/numero/releases/1.0.0/rollout").json()
                if all(i["status"] == "completed" for i in rollout["installations"]):
                    break
                time.sleep(0.1)
            assert [i["status"] for i in rollout["installations"]] == ["completed"] * INSTALLATIONS
            assert rollout["release_status"] == "completely_released"

            events = all_events(api)
            finished = collections.Counter(
                e["data"]["deployment_id"]
                for e in events
                if e["type"] in ("DeploymentSucceeded", "DeploymentFailed")
            )
            started = collections.Counter(
                e["data"]["deployment_id"] for e in events if e["type"] == "DeploymentStarted"
            )
            assert set(finished) == ids
            assert set(finished.values()) == {1}
            assert set(started.values()) == {1}
            assert all(e["type"] != "DeploymentFailed" for e in events)
            history = api.get("/release-tracks/numero/releases/1.0.0/history").json()
            assert sorted(h["id"] for h in history) == sorted(ids)
    finally:
        stop_sdh(process)

"""One process at a time runs the deployer and the relay; a standby takes over."""

from __future__ import annotations

import time
import uuid

import pytest

from adapters.leases import FileLease, PostgresAdvisoryLease
from api.bootstrap import build_runtime
from tests.conftest import PG_URL, make_settings, require_postgres

pytestmark = pytest.mark.integration


def test_file_lease_is_held_by_one_holder_when_two_compete(tmp_path):
    first, second = FileLease(tmp_path / "x.lock"), FileLease(tmp_path / "x.lock")
    assert first.acquire()
    assert first.acquire()  # still ours
    assert not second.acquire()
    first.release()
    assert second.acquire()
    second.release()


def test_postgres_lease_is_held_by_one_holder_when_two_compete():
    require_postgres()
    name = f"test:{uuid.uuid4().hex}"
    first, second = PostgresAdvisoryLease(PG_URL, name), PostgresAdvisoryLease(PG_URL, name)
    try:
        assert first.acquire()
        assert not second.acquire()
        assert PostgresAdvisoryLease(PG_URL, name + "-other").acquire()
        first.release()
        assert second.acquire()
    finally:
        first.release()
        second.release()


def test_postgres_lease_reports_loss_when_its_connection_dies():
    require_postgres()
    lease = PostgresAdvisoryLease(PG_URL, f"test:{uuid.uuid4().hex}")
    assert lease.acquire()
    assert lease._conn is not None
    lease._conn.close()
    # The lock died with the connection: the lease says so, then takes it again.
    assert not lease.acquire()
    assert lease.acquire()
    lease.release()


def _wait(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_standby_deployer_takes_over_when_the_leader_stops(backend, tmp_path, request):
    schema = request.getfixturevalue("pg_schema") if backend == "postgres" else None
    settings = make_settings(backend, tmp_path, schema)
    first, second = build_runtime(settings), build_runtime(settings)
    try:
        first.start()
        assert _wait(lambda: first.deploy_follower.leading)
        second.start()
        time.sleep(0.5)
        assert not second.deploy_follower.leading
        first.close()
        assert _wait(lambda: second.deploy_follower.leading)
        # The new leader works: a simulated deployment requested now finishes.
        hub, actor = second.hub, "t"
        hub.register_environment("env1", "", "", "", actor)
        hub.register_tenant("t1", "T1", "", actor)
        hub.add_installation("t1", "i1", "I1", actor)
        hub.map_environments("t1", "i1", ["env1"], actor)
        hub.register_application("api", "", "", actor)
        hub.set_pipeline("api", "env1", {"simulate": {"seconds": 0}}, None, None, actor)
        hub.register_image("api", "ci", "r/api:1", "", actor)
        hub.create_track("numero", "", None, actor)
        hub.create_release("numero", "1.0.0", None, "", None, actor)
        hub.set_stages("numero", "1.0.0", [["api"]], actor)
        hub.set_release_application("numero", "1.0.0", "api", None, "r/api:1", None, actor)
        hub.lock_requirements("numero", "1.0.0", actor)
        hub.mark_ready("numero", "1.0.0", actor)
        hub.request_deployments("numero", "1.0.0", ["i1"], ["api"], "deploy", actor)
        assert _wait(
            lambda: (
                [h["status"] for h in second.rollouts.history("numero", "1.0.0")] == ["succeeded"]
            )
        )
    finally:
        second.close()

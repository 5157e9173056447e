"""``GET .../audit?as_of=``: a release's state as of any time, over real HTTP.

The answer is replayed from the release's own stored events, never read from the read
models: it must survive the views being dropped. Runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest

from tests.helpers import all_events, assert_problem, ok

pytestmark = pytest.mark.e2e

IMAGE = "registry.example/payments:1.0.0"
AUDIT = "/release-tracks/numero/releases/1.0.0/audit"


def moment() -> datetime:
    """A time strictly between the events stored before and after it."""
    time.sleep(0.01)
    now = datetime.now(UTC)
    time.sleep(0.01)
    return now


@dataclass(frozen=True)
class Story:
    before_creation: datetime
    before_lock: datetime


@pytest.fixture
def story(api: httpx.Client) -> Story:
    """numero 1.0.0 is created, given its application and image, then locked."""
    before_creation = moment()
    ok(api.post("/applications", json={"name": "payments"}), 201)
    ok(api.post("/applications/payments/images", json={"workflow": "build", "image": IMAGE}), 201)
    ok(api.post("/release-tracks", json={"name": "numero"}), 201)
    ok(api.post("/release-tracks/numero/releases", json={"version": "1.0.0"}), 201)
    release = "/release-tracks/numero/releases/1.0.0"
    ok(api.put(f"{release}/stages", json={"stages": [["payments"]]}))
    ok(api.put(f"{release}/applications/payments", json={"workflow": "build", "image": IMAGE}))
    before_lock = moment()
    assert ok(api.post(f"{release}/lock"))["locked"] is True
    return Story(before_creation, before_lock)


def test_audit_shows_release_unlocked_with_earlier_events_when_as_of_precedes_lock(api, story):
    body = ok(api.get(AUDIT, params={"as_of": story.before_lock.isoformat()}))

    assert body["as_of"] == story.before_lock.isoformat()
    state = body["state"]
    assert (state["track"], state["version"], state["locked"]) == ("numero", "1.0.0", False)
    assert state["stages"] == [
        [{"application": "payments", "workflow": "build", "image": IMAGE, "instructions": ""}]
    ]
    events = body["events"]
    types = [e["type"] for e in events]
    # Created, stages set, image chosen: everything but the lock.
    assert (types[0], len(types)) == ("ReleaseCreated", 3)
    assert "RequirementsLocked" not in types
    assert all(datetime.fromisoformat(e["timestamp"]) <= story.before_lock for e in events)
    assert [e["version"] for e in events] == list(range(1, len(events) + 1))
    assert state["aggregate_version"] == len(events)
    # A time without a zone is read as UTC.
    naive = story.before_lock.replace(tzinfo=None).isoformat()
    assert ok(api.get(AUDIT, params={"as_of": naive})) == body


def test_audit_shows_latest_state_and_every_event_when_as_of_is_omitted(api, story):
    earlier = ok(api.get(AUDIT, params={"as_of": story.before_lock.isoformat()}))["events"]

    body = ok(api.get(AUDIT))

    state = body["state"]
    assert state["locked"] is True
    # The same state the read model shows, though computed from the events alone.
    view = ok(api.get("/release-tracks/numero/releases/1.0.0"))
    assert {k: state[k] for k in view if k in state} == {k: view[k] for k in view if k in state}
    assert state["modified_on"] == view["updated_at"]
    events = body["events"]
    assert events[: len(earlier)] == earlier
    assert [e["type"] for e in events[len(earlier) :]] == ["RequirementsLocked"]
    # The same events, with the same ids, as the global log holds for the release.
    log = all_events(api)
    release_log = [e for e in log if e["aggregate"] == "release"]
    keys = ("id", "type", "version", "timestamp", "actor", "data")
    assert [{k: e[k] for k in keys} for e in events] == [
        {k: e[k] for k in keys} for e in release_log
    ]


def test_audit_includes_event_stored_exactly_at_as_of_when_times_are_equal(api, story):
    lock = ok(api.get(AUDIT))["events"][-1]
    at = datetime.fromisoformat(lock["timestamp"])

    exactly = ok(api.get(AUDIT, params={"as_of": at.isoformat()}))
    just_before = ok(api.get(AUDIT, params={"as_of": (at - timedelta(microseconds=1)).isoformat()}))

    assert exactly["state"]["locked"] is True
    assert exactly["events"][-1] == lock
    assert just_before["state"]["locked"] is False
    # The same moment written in another zone.
    elsewhere = at.astimezone(timezone(timedelta(hours=5, minutes=30))).isoformat()
    assert ok(api.get(AUDIT, params={"as_of": elsewhere}))["state"]["locked"] is True


def test_audit_answers_not_found_when_release_did_not_exist_yet_or_at_all(api, story):
    assert_problem(
        api.get(AUDIT, params={"as_of": story.before_creation.isoformat()}), 404, "not_found"
    )
    assert_problem(api.get("/release-tracks/numero/releases/9.9.9/audit"), 404, "not_found")
    assert_problem(api.get("/release-tracks/nope/releases/1.0.0/audit"), 404, "not_found")


def test_audit_refuses_with_422_when_as_of_is_not_a_time(api, story):
    for as_of in ("yesterday", "2026-13-01T00:00:00", ""):
        assert_problem(api.get(AUDIT, params={"as_of": as_of}), 422, "invalid_input")


def test_audit_is_readable_by_viewer_but_not_by_tenant_when_tokens_differ(
    api, server, story, token_for
):
    ok(api.post("/tenants", json={"tenant_id": "acme", "display_name": "Acme"}), 201)
    viewer = token_for("viewer")
    tenant = token_for("tenant", tenant_id="acme")

    assert ok(viewer.get(AUDIT))["state"]["locked"] is True
    assert_problem(tenant.get(AUDIT), 403, "forbidden")
    with server.client(token=None) as anonymous:
        assert_problem(anonymous.get(AUDIT), 401, "unauthorized")


def test_audit_replays_from_events_when_read_models_are_gone(api, server, story):
    before = ok(api.get(AUDIT, params={"as_of": story.before_lock.isoformat()}))
    latest = ok(api.get(AUDIT))
    for follower in server.runtime.followers:
        follower.stop()

    server.runtime.views.drop_tables()

    assert ok(api.get(AUDIT, params={"as_of": story.before_lock.isoformat()})) == before
    after = ok(api.get(AUDIT))
    assert (after["state"], after["events"]) == (latest["state"], latest["events"])

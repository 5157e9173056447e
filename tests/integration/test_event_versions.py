"""Stored history stays readable when an event class evolves.

``tests/fixtures/events_v1.jsonl`` holds events exactly as an older sdh stored them:
``ImageRegistered`` before version 2 added the image ``digest`` (no ``digest``, no
``class_version`` in the state). They are written straight into the event store, then
read back through every path that decodes events: the aggregate, the global log, the
read models and the audit chain. Runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import StoredEvent

from api.bootstrap import Runtime
from application.audit import verify
from domain.application import Application

pytestmark = pytest.mark.integration

FIXTURE = Path(__file__).parent.parent / "fixtures" / "events_v1.jsonl"
LEGACY_ID = Application.create_id("legacy-app")
V1_IMAGES = ["registry.example/legacy-app:1.0.0", "registry.example/legacy-app:1.1.0"]
NEW_IMAGE = "registry.example/legacy-app:2.0.0"
NEW_DIGEST = "sha256:" + "c0ffee" * 10 + "abcd"


def v1_events() -> list[StoredEvent]:
    lines = FIXTURE.read_text().splitlines()
    records: list[dict[str, Any]] = [json.loads(line) for line in lines if line.strip()]
    return [
        StoredEvent(
            originator_id=UUID(r["originator_id"]),
            originator_version=r["originator_version"],
            topic=r["topic"],
            state=r["state"].encode(),
        )
        for r in records
    ]


@pytest.fixture
def legacy(runtime: Runtime) -> Runtime:
    """A store holding the v1 history, with the read models caught up on it."""
    runtime.hub.recorder.insert_events(v1_events())
    assert runtime.wait_for(runtime.hub.last_position())
    return runtime


def images_view(rt: Runtime) -> list[tuple[str, str | None]]:
    rows = rt.catalog.images("legacy-app", None, 100, 0)
    return sorted((row["image"], row["digest"]) for row in rows)


def test_fixture_holds_v1_image_events_when_read_as_stored():
    """Guards the fixture itself: it must stay what an older sdh wrote."""
    events = v1_events()
    assert {e.originator_id for e in events} == {LEGACY_ID}
    assert [e.originator_version for e in events] == [1, 2, 3]
    created, *images = (json.loads(e.state) for e in events)
    assert created["originator_topic"] == "sdh.application"
    assert [e.topic for e in events[1:]] == ["sdh.application.ImageRegistered"] * 2
    for state in images:
        assert "digest" not in state
        assert "class_version" not in state
        assert state["timestamp"]["_type_"] == "datetime_iso"


def test_application_replays_v1_images_when_loaded_from_old_history(legacy):
    app = legacy.hub.get_application("legacy-app")

    assert app.name == "legacy-app"
    assert app.workflows == {"build": V1_IMAGES}
    assert app.version == 3


def test_log_shows_v1_images_with_digest_none_when_read_after_upcasting(legacy):
    events = legacy.hub.read_events(0, 100)
    images = [e for e in events if e.type == "ImageRegistered"]

    assert [e.data["image"] for e in images] == V1_IMAGES
    assert all("digest" in e.data and e.data["digest"] is None for e in images)
    assert [e.data["commit"] for e in images] == ["1a2b3c4", "5d6e7f8"]
    assert images[0].timestamp.isoformat() == "2026-01-05T10:05:00+00:00"
    # Upcasting happens on read: the stored bytes are never rewritten.
    stored = [n.state for n in legacy.hub.read_notifications(0, 100)]
    assert stored == [e.state for e in v1_events()]


def test_read_models_list_v1_images_with_digest_none_when_projected(legacy):
    assert images_view(legacy) == [(V1_IMAGES[0], None), (V1_IMAGES[1], None)]
    assert legacy.catalog.application("legacy-app") is not None


def test_image_registered_now_is_stored_as_v2_beside_v1_images_when_history_is_old(legacy):
    outcome = legacy.hub.register_image(
        "legacy-app", "build", NEW_IMAGE, "9a8b7c6", "ci", digest=NEW_DIGEST
    )
    assert legacy.wait_for(outcome.position)

    (stored,) = legacy.hub.read_notifications(outcome.position - 1, 1)
    state = json.loads(stored.state)
    assert stored.topic == "sdh.application.ImageRegistered"
    assert (state["class_version"], state["digest"]) == (2, NEW_DIGEST)

    assert legacy.hub.get_application("legacy-app").workflows == {"build": [*V1_IMAGES, NEW_IMAGE]}
    digests = [e.data["digest"] for e in legacy.hub.read_events(0, 100)[1:]]
    assert digests == [None, None, NEW_DIGEST]
    assert images_view(legacy) == [
        (V1_IMAGES[0], None),
        (V1_IMAGES[1], None),
        (NEW_IMAGE, NEW_DIGEST),
    ]


def test_audit_chain_verifies_when_history_mixes_event_versions(legacy):
    legacy.hub.register_image("legacy-app", "build", NEW_IMAGE, "9a8b7c6", "ci", NEW_DIGEST)
    deadline = time.monotonic() + 10
    while (head := legacy.chain.head()) is None or head.position < legacy.hub.last_position():
        assert time.monotonic() < deadline, "the audit chain never caught up"
        time.sleep(0.02)

    verdict = verify(legacy.hub.iter_notifications(), legacy.chain.links())

    assert verdict.ok, verdict
    assert (verdict.checked, verdict.unchained) == (4, 0)

"""The read models are a pure function of the event log.

Dropping every view and replaying the log from zero gives back exactly the same query
answers (timestamps included, since they come from the events); the views' tracked
position reaches the log's head; and a batch the views already applied is ignored, so
a follower that re-reads (after a crash, or racing another process) changes nothing.
Runs on SQLite and on PostgreSQL through the ``backend`` parameter.
"""

from __future__ import annotations

from typing import Any

import pytest

from api.bootstrap import Runtime, build_runtime

pytestmark = pytest.mark.integration

ACTOR = "rebuild-test"
RELEASES = (("numero", "1.0.0"), ("numero", "1.0.1"), ("numero", "2.0.0"), ("ledger", "0.1.0"))


def build_state(rt: Runtime) -> None:
    """Every kind of event the views handle, including changes that overwrite earlier rows."""
    hub = rt.hub
    for env in ("doc1", "doc2", "doc3", "doc4"):
        hub.register_environment(env, "prod-eu", f"ns-{env}", f"{env} env", ACTOR)
    hub.register_tenant("flareup123", "flareup.xyz", "", ACTOR)
    hub.change_tenant("flareup123", "Flareup", "renamed", ACTOR)
    hub.add_installation("flareup123", "flareup-prod-1", "Flareup Prod", ACTOR)
    hub.add_installation("flareup123", "flareup-qa", "Flareup QA", ACTOR)
    hub.map_environments("flareup123", "flareup-prod-1", ["doc1", "doc3"], ACTOR)
    # Remapping unmaps doc3 again.
    hub.map_environments("flareup123", "flareup-prod-1", ["doc1", "doc2"], ACTOR)
    hub.register_tenant("acme", "Acme", "", ACTOR)
    hub.add_installation("acme", "acme-prod", "Acme Prod", ACTOR)
    hub.map_environments("acme", "acme-prod", ["doc3"], ACTOR)

    for app, env in (("payments", "doc1"), ("checkout", "doc2"), ("reports", "doc3")):
        hub.register_application(app, "shop", f"{app} service", ACTOR)
        hub.set_pipeline(app, env, {}, None, None, ACTOR)
        hub.register_image(app, "build", f"{app}:1", "abc123", ACTOR)
        hub.register_image(app, "build", f"{app}:2", "def456", ACTOR)
    hub.set_pipeline("payments", "doc4", {"simulate": {"outcome": "failed"}}, {}, None, ACTOR)
    hub.set_pipeline("payments", "doc4", {"simulate": {"seconds": 1}}, None, {}, ACTOR)

    schema = {"type": "object", "properties": {"tier": {"type": "string"}}}
    hub.create_track("numero", "HRMS", schema, ACTOR)
    hub.create_track("ledger", "", None, ACTOR)

    hub.create_release("numero", "1.0.0", None, "first", None, ACTOR)
    hub.set_stages("numero", "1.0.0", [["payments"], ["checkout", "reports"]], ACTOR)
    hub.set_stages("numero", "1.0.0", [["payments"], ["checkout"]], ACTOR)
    for app in ("payments", "checkout"):
        hub.set_release_application("numero", "1.0.0", app, "build", f"{app}:1", None, ACTOR)
    hub.set_release_application("numero", "1.0.0", "checkout", None, "checkout:2", "# go", ACTOR)
    hub.lock_requirements("numero", "1.0.0", ACTOR)
    hub.mark_ready("numero", "1.0.0", ACTOR)
    hub.hold("numero", "1.0.0", "sign-off", ACTOR)
    hub.resume("numero", "1.0.0", "", ACTOR)
    hub.set_notes("numero", "1.0.0", "# Numero 1.0.0", ACTOR)
    hub.set_catalog("numero", "1.0.0", {"tier": "gold"}, ACTOR)

    hub.create_release("numero", "1.0.1", "patch", "", "1.0.0", ACTOR)
    hub.lock_requirements("numero", "1.0.1", ACTOR)
    hub.mark_ready("numero", "1.0.1", ACTOR)
    hub.unlock_requirements("numero", "1.0.1", ACTOR)

    hub.create_release("numero", "2.0.0", None, "", None, ACTOR)
    hub.set_stages("numero", "2.0.0", [["reports"]], ACTOR)
    hub.set_release_application("numero", "2.0.0", "reports", "build", "reports:2", None, ACTOR)
    hub.lock_requirements("numero", "2.0.0", ACTOR)
    hub.mark_ready("numero", "2.0.0", ACTOR)
    hub.hold("numero", "2.0.0", "bug", ACTOR)
    hub.rescind("numero", "2.0.0", "broken", ACTOR)

    hub.create_release("ledger", "0.1.0", None, "", None, ACTOR)
    hub.set_catalog("ledger", "0.1.0", ["free", {"form": 1}], ACTOR)

    hub.issue_token("ci", "developer", None, None, ACTOR)
    hub.issue_token("flareup-poc", "tenant", "flareup123", 30, ACTOR)
    hub.issue_token("old", "viewer", None, None, ACTOR)
    hub.revoke_token("old", ACTOR)


def snapshot(rt: Runtime) -> dict[str, Any]:
    apps = ("payments", "checkout", "reports")
    return {
        "tenants": rt.tenants.tenants(1000, 0),
        "flareup": rt.tenants.tenant("flareup123"),
        "tracks": rt.releases.tracks(1000, 0),
        "tracks_for_flareup": rt.releases.tracks(1000, 0, only_tenant="flareup123"),
        "tracks_for_acme": rt.releases.tracks(1000, 0, only_tenant="acme"),
        "releases": {f"{t} {v}": rt.releases.release(t, v) for t, v in RELEASES},
        "releases_for_flareup": {
            f"{t} {v}": rt.releases.release(t, v, only_tenant="flareup123") for t, v in RELEASES
        },
        "environments": rt.catalog.environments(1000, 0),
        "applications": rt.catalog.applications(None, 1000, 0),
        "images": {app: rt.catalog.images(app, None, 1000, 0) for app in apps},
        "tokens": rt.tokens.tokens(),
    }


def settled(rt: Runtime) -> dict[str, Any]:
    """Waits until the running follower has applied the whole log, then stops it."""
    assert rt.wait_for(rt.hub.last_position())
    for follower in rt.followers:
        follower.stop()
    return snapshot(rt)


def test_views_answer_identically_when_rebuilt_from_the_log(runtime):
    build_state(runtime)
    before = settled(runtime)
    # The state is what it should be, so the comparison below is not between two empties.
    assert before["releases"]["numero 1.0.0"]["status"] == "ready"
    assert before["releases"]["numero 1.0.1"]["status"] == "draft"
    assert before["releases"]["numero 2.0.0"]["status"] == "rescinded"
    assert before["releases_for_flareup"]["numero 2.0.0"] is None
    assert [t["name"] for t in before["tracks_for_acme"]] == ["numero"]
    assert [t["name"] for t in before["tokens"]] == ["ci", "flareup-poc"]
    doc3 = next(e for e in before["environments"] if e["name"] == "doc3")
    assert doc3["installation"] == {"tenant_id": "acme", "installation_id": "acme-prod"}

    runtime.views.rebuild()
    assert runtime.views.position() == 0
    assert runtime.views.stored_position() == 0
    assert runtime.releases.tracks(1000, 0) == []
    assert runtime.catalog.environments(1000, 0) == []

    replayed = runtime.projector.catch_up()

    head = runtime.hub.last_position()
    assert replayed == len(runtime.hub.read_events(0, 10_000))
    assert runtime.views.position() == head
    assert runtime.views.stored_position() == head
    assert runtime.projector.lag() == 0
    assert snapshot(runtime) == before


def test_views_change_nothing_when_an_applied_batch_is_handled_again(runtime):
    build_state(runtime)
    settled(runtime)
    events = runtime.hub.read_events(0, 10_000)
    assert len(events) > 50

    # Replay the log in batches, re-delivering each earlier batch after the next one.
    runtime.views.rebuild()
    batches = [events[i : i + 7] for i in range(0, len(events), 7)]
    for number, batch in enumerate(batches):
        runtime.views.handle(batch)
        position, state = runtime.views.position(), snapshot(runtime)
        assert position == batch[-1].position
        for earlier in batches[max(0, number - 1) : number + 1]:
            runtime.views.handle(earlier)
            assert runtime.views.position() == position
            assert runtime.views.stored_position() == position
            assert snapshot(runtime) == state
    head = runtime.hub.last_position()
    assert runtime.views.position() == head

    final = snapshot(runtime)
    runtime.views.handle(events)
    runtime.views.handle(events[10:20])
    runtime.views.handle(events[-1:])
    assert runtime.views.position() == head
    assert snapshot(runtime) == final
    # Nothing is left for the follower either.
    assert runtime.projector.catch_up() == 0


def test_views_resume_at_their_stored_position_when_a_new_process_opens_them(runtime, settings):
    build_state(runtime)
    before = settled(runtime)
    head = runtime.hub.last_position()

    other = build_runtime(settings)
    try:
        assert other.views.position() == head
        assert other.projector.lag() == 0
        assert other.projector.catch_up() == 0
        assert snapshot(other) == before
        # An event stored through the second process is applied once: the first
        # process's follower reads it too, sees the stored position and skips it (an
        # image row inserted twice would break its primary key).
        other.hub.register_image("payments", "build", "payments:3", "", ACTOR)
        other.projector.catch_up()
        after = snapshot(other)
        runtime.projector.catch_up()
        assert runtime.views.position() == runtime.hub.last_position() == head + 1
        assert snapshot(runtime) == after
        assert [i["image"] for i in after["images"]["payments"]] == [
            "payments:3",
            "payments:2",
            "payments:1",
        ]
    finally:
        other.close()

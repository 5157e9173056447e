"""Release tracks and releases over real HTTP: every rule of API.md's section, every refusal
with its exact status and problem ``code``, roles, tenant scoping and read-your-writes.

A refused command must change nothing: after every refusal the release reads exactly as
before (every field, ``updated_at`` included) and no event was stored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.helpers import add_installation, assert_problem, event_head, ok

pytestmark = pytest.mark.e2e

TRACK = "numero"
RELEASES = f"/release-tracks/{TRACK}/releases"
CATALOG_SCHEMA = {
    "type": "object",
    "properties": {"tier": {"enum": ["gold", "silver"]}, "seats": {"type": "integer"}},
    "required": ["tier"],
    "additionalProperties": False,
}
PAYMENTS_IMAGE = "registry.example/payments:1.0.0"
CHECKOUT_IMAGES = ("registry.example/checkout:1.0.0", "registry.example/checkout:1.1.0")
ORPHAN_IMAGE = "registry.example/reports:0.9.0"


def release_path(version: str, track: str = TRACK) -> str:
    return f"/release-tracks/{track}/releases/{version}"


@dataclass
class Hub:
    """The served API plus what a refusal check needs: the event log head."""

    api: httpx.Client
    head: Callable[[], int]

    def release(self, version: str, track: str = TRACK) -> dict[str, Any]:
        return ok(self.api.get(release_path(version, track)))

    def refused(
        self,
        version: str,
        call: Callable[[], httpx.Response],
        status: int,
        code: str,
        track: str = TRACK,
    ) -> dict[str, Any]:
        """Runs a call that must be refused; asserts the refusal changed nothing."""
        before = self.release(version, track)
        head = self.head()
        problem = assert_problem(call(), status, code)
        assert self.head() == head, "a refused command stored an event"
        assert self.release(version, track) == before
        return problem


@pytest.fixture
def hub(api: httpx.Client, server: Any) -> Hub:
    return Hub(api, server.runtime.hub.last_position)


@pytest.fixture
def platform(api: httpx.Client) -> None:
    """The seed's platform: flareup123's installation maps doc1+doc2; acme's maps doc3;
    doc4 belongs to nobody. payments deploys to doc1, checkout to doc2, reports to doc3,
    and audit only to the unmapped doc4."""
    for env in ("doc1", "doc2", "doc3", "doc4"):
        ok(api.post("/environments", json={"name": env}), 201)
    ok(api.post("/tenants", json={"tenant_id": "flareup123", "display_name": "flareup.xyz"}), 201)
    add_installation(api, "flareup123", "flareup-prod-1", ["doc1", "doc2"], "Flareup Prod")
    ok(api.post("/tenants", json={"tenant_id": "acme", "display_name": "Acme"}), 201)
    add_installation(api, "acme", "acme-prod", ["doc3"], "Acme Prod")
    apps = {
        "payments": ("doc1", [("build", PAYMENTS_IMAGE)]),
        "checkout": ("doc2", [("build", CHECKOUT_IMAGES[0]), ("build", CHECKOUT_IMAGES[1])]),
        "reports": ("doc3", [("build", ORPHAN_IMAGE)]),
        "audit": ("doc4", [("build", "registry.example/audit:1.0.0")]),
    }
    for name, (env, images) in apps.items():
        ok(api.post("/applications", json={"name": name}), 201)
        ok(api.put(f"/applications/{name}/pipelines/{env}", json={"target": {}}))
        for workflow, image in images:
            ok(
                api.post(
                    f"/applications/{name}/images", json={"workflow": workflow, "image": image}
                ),
                201,
            )
    ok(api.post("/release-tracks", json={"name": TRACK, "catalog_schema": CATALOG_SCHEMA}), 201)


def make_release(
    api: httpx.Client,
    version: str,
    stages: list[list[str]] | None = None,
    images: dict[str, str] | None = None,
    track: str = TRACK,
) -> dict[str, Any]:
    """A draft with the given stages and chosen images (workflow "build")."""
    ok(api.post(f"/release-tracks/{track}/releases", json={"version": version}), 201)
    if stages is not None:
        ok(api.put(release_path(version, track) + "/stages", json={"stages": stages}))
    for app, image in (images or {}).items():
        ok(
            api.put(
                release_path(version, track) + f"/applications/{app}",
                json={"workflow": "build", "image": image},
            )
        )
    return ok(api.get(release_path(version, track)))


def seed_draft(api: httpx.Client, version: str = "1.0.0") -> dict[str, Any]:
    return make_release(
        api,
        version,
        [["payments"], ["checkout"]],
        {"payments": PAYMENTS_IMAGE, "checkout": CHECKOUT_IMAGES[0]},
    )


def seed_ready(api: httpx.Client, version: str = "1.0.0") -> dict[str, Any]:
    seed_draft(api, version)
    ok(api.post(release_path(version) + "/lock"))
    return ok(api.post(release_path(version) + "/ready"))


# --- creating tracks and releases ------------------------------------------------------------


@pytest.mark.usefixtures("platform")
def test_release_is_an_unlocked_empty_draft_named_after_version_when_created(api):
    created = ok(api.post(RELEASES, json={"version": "1.0.0"}), 201)

    assert created == api.get(release_path("1.0.0")).json()
    assert {k: created[k] for k in ("version", "name", "description", "status", "locked")} == {
        "version": "1.0.0",
        "name": "1.0.0",
        "description": "",
        "status": "draft",
        "locked": False,
    }
    assert created["stages"] == []
    assert created["notes"] == ""
    assert created["catalog"] is None
    named = ok(
        api.post(
            RELEASES, json={"version": "1.1.0-beta.1", "name": "numero-beta", "description": "b"}
        ),
        201,
    )
    assert (named["version"], named["name"], named["description"]) == (
        "1.1.0-beta.1",
        "numero-beta",
        "b",
    )
    listed = ok(api.get(f"/release-tracks/{TRACK}"))["releases"]
    assert sorted((r["version"], r["name"], r["status"]) for r in listed) == [
        ("1.0.0", "1.0.0", "draft"),
        ("1.1.0-beta.1", "numero-beta", "draft"),
    ]


@pytest.mark.usefixtures("platform")
def test_create_release_is_refused_as_invalid_semver_when_version_is_not_semver(api, hub):
    track_before = ok(api.get(f"/release-tracks/{TRACK}"))
    head = hub.head()
    for version in ("1.0", "v1.0.0", "01.0.0", "1.0.0.0", "latest", "1.0.0-"):
        response = api.post(RELEASES, json={"version": version})
        assert_problem(response, 422, "invalid_semver")
    assert hub.head() == head
    assert ok(api.get(f"/release-tracks/{TRACK}")) == track_before
    assert track_before["releases"] == []


@pytest.mark.usefixtures("platform")
def test_create_release_is_refused_as_duplicate_when_version_exists_in_track(api, hub):
    seed_draft(api)
    ok(api.put(release_path("1.0.0") + "/notes", json={"markdown": "original"}))

    hub.refused(
        "1.0.0",
        lambda: api.post(RELEASES, json={"version": "1.0.0", "name": "again"}),
        409,
        "duplicate",
    )
    ok(api.post(RELEASES, json={"version": "1.0.1"}), 201)
    hub.refused(
        "1.0.0",
        lambda: api.post(RELEASES, json={"version": "1.0.0", "clone_from": "1.0.1"}),
        409,
        "duplicate",
    )
    # The same version in another track is another release.
    ok(api.post("/release-tracks", json={"name": "other"}), 201)
    ok(api.post("/release-tracks/other/releases", json={"version": "1.0.0"}), 201)


@pytest.mark.usefixtures("platform")
def test_create_release_is_not_found_when_clone_source_is_not_a_version_of_the_track(api, hub):
    seed_draft(api)
    ok(api.post("/release-tracks", json={"name": "other"}), 201)
    ok(api.post("/release-tracks/other/releases", json={"version": "9.9.9"}), 201)
    track_before = ok(api.get(f"/release-tracks/{TRACK}"))
    head = hub.head()

    for source in ("2.0.0", "9.9.9", "not-a-version"):
        response = api.post(RELEASES, json={"version": "1.0.1", "clone_from": source})
        assert_problem(response, 404, "not_found")

    assert hub.head() == head
    assert ok(api.get(f"/release-tracks/{TRACK}")) == track_before
    assert_problem(api.get(release_path("1.0.1")), 404, "not_found")


@pytest.mark.usefixtures("platform")
def test_release_calls_are_not_found_when_track_or_version_is_unknown(api, hub):
    head = hub.head()
    assert_problem(
        api.post("/release-tracks/nope/releases", json={"version": "1.0.0"}), 404, "not_found"
    )
    assert_problem(api.get("/release-tracks/nope"), 404, "not_found")
    assert_problem(api.get(release_path("1.0.0", "nope")), 404, "not_found")
    assert_problem(api.get(release_path("4.0.0")), 404, "not_found")
    assert_problem(api.get(release_path("garbage")), 404, "not_found")
    assert_problem(api.post(release_path("4.0.0") + "/lock"), 404, "not_found")
    assert_problem(
        api.put(release_path("4.0.0") + "/notes", json={"markdown": "x"}), 404, "not_found"
    )
    assert hub.head() == head


def test_track_is_refused_when_catalog_schema_is_not_a_json_schema(api, hub):
    head = hub.head()
    response = api.post(
        "/release-tracks", json={"name": "broken", "catalog_schema": {"type": "no-such-type"}}
    )
    assert_problem(response, 422, "invalid_catalog_schema")
    response = api.post(
        "/release-tracks",
        json={"name": "broken", "catalog_schema": {"properties": {"a": {"minimum": "zero"}}}},
    )
    assert_problem(response, 422, "invalid_catalog_schema")
    assert hub.head() == head
    assert_problem(api.get("/release-tracks/broken"), 404, "not_found")
    assert api.get("/release-tracks").json() == []


def test_track_is_refused_as_duplicate_when_name_exists(api, hub):
    created = ok(api.post("/release-tracks", json={"name": TRACK, "description": "first"}), 201)
    assert created["name"] == TRACK
    assert created["description"] == "first"
    assert created["releases"] == []
    head = hub.head()
    assert_problem(
        api.post("/release-tracks", json={"name": TRACK, "description": "second"}), 409, "duplicate"
    )
    assert hub.head() == head
    assert api.get(f"/release-tracks/{TRACK}").json() == created


@pytest.mark.usefixtures("platform")
def test_release_body_is_refused_when_it_has_unknown_fields(api, hub):
    seed_draft(api)
    head = hub.head()
    assert_problem(
        api.post(RELEASES, json={"version": "2.0.0", "status": "ready"}), 422, "invalid_input"
    )
    hub.refused(
        "1.0.0",
        lambda: api.put(
            release_path("1.0.0") + "/stages", json={"stages": [["payments"]], "locked": True}
        ),
        422,
        "invalid_input",
    )
    hub.refused(
        "1.0.0",
        lambda: api.put(release_path("1.0.0") + "/notes", json={"text": "x"}),
        422,
        "invalid_input",
    )
    assert hub.head() == head
    assert_problem(api.get(release_path("2.0.0")), 404, "not_found")


# --- requirements ----------------------------------------------------------------------------


@pytest.mark.usefixtures("platform")
def test_stages_keep_chosen_images_only_for_applications_that_stay_when_stages_are_reset(api):
    seed_draft(api)
    ok(
        api.put(
            release_path("1.0.0") + "/applications/checkout", json={"instructions": "# migrate"}
        )
    )

    merged = ok(
        api.put(release_path("1.0.0") + "/stages", json={"stages": [["checkout", "payments"]]})
    )
    assert merged["stages"] == [
        [
            {
                "application": "checkout",
                "workflow": "build",
                "image": CHECKOUT_IMAGES[0],
                "instructions": "# migrate",
            },
            {
                "application": "payments",
                "workflow": "build",
                "image": PAYMENTS_IMAGE,
                "instructions": "",
            },
        ]
    ]
    dropped = ok(api.put(release_path("1.0.0") + "/stages", json={"stages": [["checkout"]]}))
    assert [[a["application"] for a in s] for s in dropped["stages"]] == [["checkout"]]
    readded = ok(
        api.put(release_path("1.0.0") + "/stages", json={"stages": [["payments"], ["checkout"]]})
    )
    assert readded["stages"][0] == [
        {"application": "payments", "workflow": None, "image": None, "instructions": ""}
    ]
    assert readded["stages"][1][0]["image"] == CHECKOUT_IMAGES[0]
    assert api.get(release_path("1.0.0")).json() == readded


@pytest.mark.usefixtures("platform")
def test_stages_are_refused_when_they_name_unknown_repeated_or_no_applications(api, hub):
    seed_draft(api)
    stages = release_path("1.0.0") + "/stages"
    hub.refused(
        "1.0.0",
        lambda: api.put(stages, json={"stages": [["payments"], ["ghost"]]}),
        404,
        "not_found",
    )
    hub.refused(
        "1.0.0",
        lambda: api.put(stages, json={"stages": [["payments"], ["payments"]]}),
        422,
        "invalid_stages",
    )
    hub.refused(
        "1.0.0", lambda: api.put(stages, json={"stages": [["payments"], []]}), 422, "invalid_stages"
    )
    hub.refused(
        "1.0.0", lambda: api.put(stages, json={"stages": [["Not Valid"]]}), 422, "invalid_input"
    )


@pytest.mark.usefixtures("platform")
def test_image_is_refused_when_it_is_not_registered_for_the_application(api, hub):
    seed_draft(api)
    payments = release_path("1.0.0") + "/applications/payments"
    # Registered, but for another application.
    hub.refused(
        "1.0.0", lambda: api.put(payments, json={"image": CHECKOUT_IMAGES[0]}), 422, "unknown_image"
    )
    hub.refused(
        "1.0.0",
        lambda: api.put(payments, json={"workflow": "build", "image": "registry.example/nope:1"}),
        422,
        "unknown_image",
    )
    hub.refused(
        "1.0.0", lambda: api.put(payments, json={"workflow": "nightly"}), 422, "unknown_workflow"
    )
    hub.refused(
        "1.0.0",
        lambda: api.put(
            release_path("1.0.0") + "/applications/reports", json={"image": ORPHAN_IMAGE}
        ),
        404,
        "application_not_in_release",
    )
    hub.refused(
        "1.0.0",
        lambda: api.put(release_path("1.0.0") + "/applications/ghost", json={"instructions": "x"}),
        404,
        "not_found",
    )
    # A registered image of the application is accepted.
    chosen = ok(
        api.put(
            release_path("1.0.0") + "/applications/checkout", json={"image": CHECKOUT_IMAGES[1]}
        )
    )
    assert chosen["stages"][1][0]["image"] == CHECKOUT_IMAGES[1]
    assert chosen["stages"][1][0]["workflow"] == "build"


@pytest.mark.usefixtures("platform")
def test_requirements_are_refused_as_locked_when_release_is_locked(api, hub, token_for):
    seed_draft(api)
    locked = ok(api.post(release_path("1.0.0") + "/lock"))
    assert locked["locked"] is True
    assert locked["status"] == "draft"
    developer = token_for("developer")
    path = release_path("1.0.0")

    hub.refused(
        "1.0.0",
        lambda: api.put(path + "/stages", json={"stages": [["payments"]]}),
        409,
        "release_locked",
    )
    hub.refused(
        "1.0.0",
        lambda: api.put(path + "/applications/checkout", json={"image": CHECKOUT_IMAGES[1]}),
        409,
        "release_locked",
    )
    hub.refused(
        "1.0.0",
        lambda: api.put(path + "/applications/payments", json={"instructions": "late"}),
        409,
        "release_locked",
    )
    hub.refused(
        "1.0.0",
        lambda: developer.put(path + "/applications/payments", json={"instructions": "late"}),
        409,
        "release_locked",
    )
    hub.refused("1.0.0", lambda: api.post(path + "/lock"), 409, "release_locked")


@pytest.mark.usefixtures("platform")
def test_lock_is_refused_as_incomplete_when_release_lacks_applications_or_an_image(api, hub):
    make_release(api, "1.0.0")
    hub.refused(
        "1.0.0", lambda: api.post(release_path("1.0.0") + "/lock"), 409, "requirements_incomplete"
    )
    make_release(api, "1.0.1", [["payments"], ["checkout"]], {"payments": PAYMENTS_IMAGE})
    problem = hub.refused(
        "1.0.1", lambda: api.post(release_path("1.0.1") + "/lock"), 409, "requirements_incomplete"
    )
    assert "checkout" in problem["detail"]
    # Choosing the missing image makes it lockable.
    ok(
        api.put(
            release_path("1.0.1") + "/applications/checkout", json={"image": CHECKOUT_IMAGES[0]}
        )
    )
    assert ok(api.post(release_path("1.0.1") + "/lock"))["locked"] is True


@pytest.mark.usefixtures("platform")
def test_ready_is_refused_when_requirements_are_not_locked(api, hub):
    seed_draft(api)
    hub.refused(
        "1.0.0", lambda: api.post(release_path("1.0.0") + "/ready"), 409, "release_not_locked"
    )


@pytest.mark.usefixtures("platform")
def test_ready_is_refused_when_no_installation_is_targeted(api, hub):
    # audit deploys only to doc4, which no installation maps.
    make_release(api, "1.0.0", [["audit"]], {"audit": "registry.example/audit:1.0.0"})
    ok(api.post(release_path("1.0.0") + "/lock"))
    hub.refused(
        "1.0.0", lambda: api.post(release_path("1.0.0") + "/ready"), 409, "no_targeted_installation"
    )
    # An application without any pipeline targets nothing either.
    ok(api.post("/applications", json={"name": "docs"}), 201)
    ok(api.post("/applications/docs/images", json={"workflow": "build", "image": "docs:1"}), 201)
    make_release(api, "1.0.1", [["docs"]], {"docs": "docs:1"})
    ok(api.post(release_path("1.0.1") + "/lock"))
    hub.refused(
        "1.0.1", lambda: api.post(release_path("1.0.1") + "/ready"), 409, "no_targeted_installation"
    )
    # Once doc4 is mapped to an installation, the same release can be marked ready.
    ok(
        api.put(
            "/tenants/acme/installations/acme-prod/environments",
            json={"environments": ["doc3", "doc4"]},
        )
    )
    assert ok(api.post(release_path("1.0.0") + "/ready"))["status"] == "ready"


@pytest.mark.usefixtures("platform")
def test_hold_and_resume_are_refused_when_release_is_not_in_a_holdable_status(api, hub):
    seed_draft(api)
    path = release_path("1.0.0")
    hub.refused(
        "1.0.0", lambda: api.post(path + "/hold", json={"reason": "x"}), 409, "invalid_status"
    )
    hub.refused("1.0.0", lambda: api.post(path + "/resume"), 409, "invalid_status")
    ok(api.post(path + "/lock"))
    hub.refused("1.0.0", lambda: api.post(path + "/hold"), 409, "invalid_status")
    ok(api.post(path + "/ready"))
    hub.refused("1.0.0", lambda: api.post(path + "/resume"), 409, "invalid_status")
    hub.refused("1.0.0", lambda: api.post(path + "/ready"), 409, "invalid_status")


@pytest.mark.usefixtures("platform")
def test_resume_returns_release_to_ready_when_it_was_held_from_ready(api, hub):
    seed_ready(api)
    path = release_path("1.0.0")
    held = ok(api.post(path + "/hold", json={"reason": "waiting for sign-off"}))
    assert held["status"] == "on_hold"
    assert held["locked"] is True
    assert held["hold_reason"] == "waiting for sign-off"
    hub.refused("1.0.0", lambda: api.post(path + "/hold"), 409, "invalid_status")
    hub.refused("1.0.0", lambda: api.post(path + "/ready"), 409, "invalid_status")

    resumed = ok(api.post(path + "/resume", json={"reason": "signed off"}))
    assert resumed["status"] == "ready"
    assert resumed["locked"] is True
    assert resumed["hold_reason"] == ""
    # A hold without a body is accepted too.
    assert ok(api.post(path + "/hold"))["status"] == "on_hold"
    assert ok(api.post(path + "/resume"))["status"] == "ready"
    summary = ok(api.get(f"/release-tracks/{TRACK}"))["releases"]
    assert [(r["version"], r["status"]) for r in summary] == [("1.0.0", "ready")]


@pytest.mark.usefixtures("platform")
def test_rescind_is_refused_when_reason_is_missing(api, hub):
    seed_ready(api)
    path = release_path("1.0.0") + "/rescind"
    hub.refused("1.0.0", lambda: api.post(path), 422, "invalid_input")
    hub.refused("1.0.0", lambda: api.post(path, json={}), 422, "invalid_input")
    hub.refused("1.0.0", lambda: api.post(path, json={"reason": ""}), 422, "invalid_input")
    hub.refused("1.0.0", lambda: api.post(path, json={"reason": None}), 422, "invalid_input")
    rescinded = ok(api.post(path, json={"reason": "critical bug in payments"}))
    assert rescinded["status"] == "rescinded"
    assert rescinded["rescind_reason"] == "critical bug in payments"


@pytest.mark.parametrize("state", ["draft", "locked", "on_hold"])
@pytest.mark.usefixtures("platform")
def test_every_change_is_refused_as_rescinded_when_release_was_rescinded(api, hub, state):
    path = release_path("1.0.0")
    seed_draft(api)
    if state != "draft":
        ok(api.post(path + "/lock"))
    if state in ("ready", "on_hold"):
        ok(api.post(path + "/ready"))
    if state == "on_hold":
        ok(api.post(path + "/hold"))
    ok(api.put(path + "/notes", json={"markdown": "before"}))
    ok(api.put(path + "/catalog", json={"data": {"tier": "gold"}}))
    rescinded = ok(api.post(path + "/rescind", json={"reason": "buggy"}))
    assert rescinded["status"] == "rescinded"
    assert rescinded["locked"] is (state != "draft")

    changes: dict[str, Callable[[], httpx.Response]] = {
        "stages": lambda: api.put(path + "/stages", json={"stages": [["checkout"]]}),
        "image": lambda: api.put(
            path + "/applications/checkout", json={"image": CHECKOUT_IMAGES[1]}
        ),
        "instructions": lambda: api.put(
            path + "/applications/payments", json={"instructions": "new"}
        ),
        "lock": lambda: api.post(path + "/lock"),
        "unlock": lambda: api.post(path + "/unlock"),
        "ready": lambda: api.post(path + "/ready"),
        "hold": lambda: api.post(path + "/hold", json={"reason": "x"}),
        "resume": lambda: api.post(path + "/resume"),
        "rescind": lambda: api.post(path + "/rescind", json={"reason": "again"}),
        "notes": lambda: api.put(path + "/notes", json={"markdown": "after"}),
        "catalog": lambda: api.put(path + "/catalog", json={"data": {"tier": "silver"}}),
    }
    for change, call in changes.items():
        problem = hub.refused("1.0.0", call, 409, "release_rescinded")
        assert problem["detail"], change
    after = hub.release("1.0.0")
    assert (after["notes"], after["catalog"], after["status"]) == (
        "before",
        {"tier": "gold"},
        "rescinded",
    )


@pytest.mark.usefixtures("platform")
def test_notes_and_catalog_stay_editable_when_release_is_locked_or_ready(api):
    seed_draft(api)
    path = release_path("1.0.0")
    ok(api.post(path + "/lock"))
    noted = ok(api.put(path + "/notes", json={"markdown": "# 1.0.0\n\n* payments"}))
    assert noted["notes"] == "# 1.0.0\n\n* payments"
    assert noted["locked"] is True
    cataloged = ok(api.put(path + "/catalog", json={"data": {"tier": "gold", "seats": 5}}))
    assert cataloged["catalog"] == {"tier": "gold", "seats": 5}
    ok(api.post(path + "/ready"))
    ready_noted = ok(api.put(path + "/notes", json={"markdown": "final"}))
    assert (ready_noted["notes"], ready_noted["status"]) == ("final", "ready")
    ready_catalog = ok(api.put(path + "/catalog", json={"data": {"tier": "silver"}}))
    assert ready_catalog["catalog"] == {"tier": "silver"}
    assert api.get(path).json() == ready_catalog


@pytest.mark.usefixtures("platform")
def test_catalog_is_refused_when_data_breaks_the_track_schema(api, hub):
    seed_draft(api)
    path = release_path("1.0.0") + "/catalog"
    for data in (
        {"tier": "bronze"},
        {"seats": 3},
        {"tier": "gold", "seats": "many"},
        {"tier": "gold", "extra": 1},
        ["tier", "gold"],
        None,
    ):
        problem = hub.refused(
            "1.0.0", lambda data=data: api.put(path, json={"data": data}), 422, "catalog_invalid"
        )
        assert problem["errors"], data
    hub.refused("1.0.0", lambda: api.put(path, json={}), 422, "invalid_input")
    valid = ok(api.put(path, json={"data": {"tier": "gold", "seats": 10}}))
    assert valid["catalog"] == {"tier": "gold", "seats": 10}


def test_catalog_accepts_any_data_when_track_has_no_schema(api):
    ok(api.post("/release-tracks", json={"name": "free"}), 201)
    ok(api.post("/release-tracks/free/releases", json={"version": "0.1.0"}), 201)
    for data in ({"anything": [1, 2, {"x": None}]}, [1, "two"], "text", 3.5):
        stored = ok(api.put(release_path("0.1.0", "free") + "/catalog", json={"data": data}))
        assert stored["catalog"] == data
        assert api.get(release_path("0.1.0", "free")).json()["catalog"] == data


@pytest.mark.usefixtures("platform")
def test_unlock_returns_release_to_draft_when_it_was_ready(api, hub):
    seed_ready(api)
    path = release_path("1.0.0")
    unlocked = ok(api.post(path + "/unlock"))
    assert (unlocked["status"], unlocked["locked"]) == ("draft", False)
    hub.refused("1.0.0", lambda: api.post(path + "/unlock"), 409, "release_not_locked")
    hub.refused("1.0.0", lambda: api.post(path + "/ready"), 409, "release_not_locked")
    # Requirements are editable again.
    edited = ok(api.put(path + "/applications/checkout", json={"image": CHECKOUT_IMAGES[1]}))
    assert edited["stages"][1][0]["image"] == CHECKOUT_IMAGES[1]
    ok(api.post(path + "/lock"))
    assert ok(api.post(path + "/ready"))["status"] == "ready"
    # Unlocking a held release also returns it to draft.
    ok(api.post(path + "/hold"))
    assert ok(api.post(path + "/unlock"))["status"] == "draft"
    hub.refused("1.0.0", lambda: api.post(path + "/resume"), 409, "invalid_status")


# --- read-your-writes ------------------------------------------------------------------------


@pytest.mark.usefixtures("platform")
def test_every_write_is_reflected_in_its_answer_and_the_next_read_when_made(api):
    path = release_path("1.0.0")

    def write(method: str, url: str, json: Any = None, status: int = 200) -> dict[str, Any]:
        answer = ok(api.request(method, url, json=json), status)
        assert api.get(path).json() == answer, f"{method} {url}"
        summary = ok(api.get(f"/release-tracks/{TRACK}"))["releases"]
        assert {
            "version": "1.0.0",
            "name": answer["name"],
            "status": answer["status"],
        }.items() <= next(r for r in summary if r["version"] == "1.0.0").items()
        return answer

    created = write("POST", RELEASES, {"version": "1.0.0", "name": "first"}, status=201)
    assert created["name"] == "first"
    staged = write("PUT", path + "/stages", {"stages": [["payments"], ["checkout"]]})
    assert [[a["application"] for a in s] for s in staged["stages"]] == [["payments"], ["checkout"]]
    chosen = write(
        "PUT", path + "/applications/payments", {"workflow": "build", "image": PAYMENTS_IMAGE}
    )
    assert chosen["stages"][0][0]["image"] == PAYMENTS_IMAGE
    chosen = write("PUT", path + "/applications/checkout", {"image": CHECKOUT_IMAGES[1]})
    assert chosen["stages"][1][0]["image"] == CHECKOUT_IMAGES[1]
    instructed = write("PUT", path + "/applications/checkout", {"instructions": "run migrations"})
    assert instructed["stages"][1][0]["instructions"] == "run migrations"
    assert instructed["stages"][1][0]["image"] == CHECKOUT_IMAGES[1]
    assert write("POST", path + "/lock")["locked"] is True
    assert write("PUT", path + "/notes", {"markdown": "hello"})["notes"] == "hello"
    assert write("PUT", path + "/catalog", {"data": {"tier": "gold"}})["catalog"] == {
        "tier": "gold"
    }
    assert write("POST", path + "/ready")["status"] == "ready"
    assert write("POST", path + "/hold", {"reason": "wait"})["status"] == "on_hold"
    assert write("POST", path + "/resume")["status"] == "ready"
    unlocked = write("POST", path + "/unlock")
    assert (unlocked["status"], unlocked["locked"]) == ("draft", False)
    assert write("POST", path + "/rescind", {"reason": "superseded"})["status"] == "rescinded"
    cloned = ok(api.post(RELEASES, json={"version": "1.0.1", "clone_from": "1.0.0"}), 201)
    assert api.get(release_path("1.0.1")).json() == cloned
    assert cloned["stages"] == unlocked["stages"]


# --- roles -----------------------------------------------------------------------------------


def release_writes(path: str) -> dict[str, Callable[[httpx.Client], httpx.Response]]:
    return {
        "create track": lambda c: c.post("/release-tracks", json={"name": "t2"}),
        "create release": lambda c: c.post(RELEASES, json={"version": "3.0.0"}),
        "stages": lambda c: c.put(path + "/stages", json={"stages": [["payments"]]}),
        "image": lambda c: c.put(
            path + "/applications/checkout", json={"image": CHECKOUT_IMAGES[1]}
        ),
        "workflow": lambda c: c.put(path + "/applications/checkout", json={"workflow": "build"}),
        "instructions": lambda c: c.put(
            path + "/applications/checkout", json={"instructions": "x"}
        ),
        "lock": lambda c: c.post(path + "/lock"),
        "unlock": lambda c: c.post(path + "/unlock"),
        "ready": lambda c: c.post(path + "/ready"),
        "hold": lambda c: c.post(path + "/hold"),
        "resume": lambda c: c.post(path + "/resume"),
        "rescind": lambda c: c.post(path + "/rescind", json={"reason": "r"}),
        "notes": lambda c: c.put(path + "/notes", json={"markdown": "n"}),
        "catalog": lambda c: c.put(path + "/catalog", json={"data": {"tier": "gold"}}),
    }


@pytest.mark.parametrize("role", ["viewer", "deployer", "tenant"])
@pytest.mark.usefixtures("platform")
def test_release_writes_are_forbidden_when_role_may_only_read(api, hub, token_for, role):
    seed_draft(api)
    client = token_for(role, tenant_id="flareup123" if role == "tenant" else None)
    tracks_before = ok(api.get("/release-tracks"))
    for name, call in release_writes(release_path("1.0.0")).items():
        problem = hub.refused("1.0.0", lambda call=call: call(client), 403, "forbidden")
        assert problem["detail"], name
    assert ok(api.get("/release-tracks")) == tracks_before
    # Reading is allowed (the tenant's view is scoped; see the tenant tests).
    assert ok(client.get(release_path("1.0.0")))["version"] == "1.0.0"
    assert ok(client.get(f"/release-tracks/{TRACK}"))["name"] == TRACK


@pytest.mark.usefixtures("platform")
def test_release_calls_are_unauthorized_when_token_is_missing_or_unknown(server, hub):
    with server.client(None) as anonymous, server.client("not-a-token") as stranger:
        for client in (anonymous, stranger):
            assert_problem(client.get("/release-tracks"), 401, "unauthorized")
            assert_problem(client.get(release_path("1.0.0")), 401, "unauthorized")
            assert_problem(client.post(RELEASES, json={"version": "1.0.0"}), 401, "unauthorized")


@pytest.mark.usefixtures("platform")
def test_developer_may_write_only_instructions_when_editing_a_release(api, hub, token_for):
    seed_draft(api)
    developer = token_for("developer")
    path = release_path("1.0.0")
    app = path + "/applications/checkout"
    hub.refused("1.0.0", lambda: developer.put(app, json={"workflow": "build"}), 403, "forbidden")
    hub.refused(
        "1.0.0", lambda: developer.put(app, json={"image": CHECKOUT_IMAGES[1]}), 403, "forbidden"
    )
    hub.refused(
        "1.0.0",
        lambda: developer.put(app, json={"image": CHECKOUT_IMAGES[1], "instructions": "x"}),
        403,
        "forbidden",
    )
    for name, call in release_writes(path).items():
        if name == "instructions":
            continue
        problem = hub.refused("1.0.0", lambda call=call: call(developer), 403, "forbidden")
        assert problem["detail"], name

    written = ok(developer.put(app, json={"instructions": "## Checkout\nflush the cache"}))
    checkout = written["stages"][1][0]
    assert checkout == {
        "application": "checkout",
        "workflow": "build",
        "image": CHECKOUT_IMAGES[0],
        "instructions": "## Checkout\nflush the cache",
    }
    assert developer.get(path).json() == written


@pytest.mark.usefixtures("platform")
def test_release_manager_may_make_every_release_call_when_managing_releases(token_for):
    manager = token_for("release-manager")
    schema = {"type": "object", "properties": {"tier": {"type": "string"}}}
    ok(manager.post("/release-tracks", json={"name": "rm", "catalog_schema": schema}), 201)
    ok(manager.post("/release-tracks/rm/releases", json={"version": "1.0.0"}), 201)
    path = release_path("1.0.0", "rm")
    ok(manager.put(path + "/stages", json={"stages": [["payments"], ["checkout"]]}))
    ok(manager.put(path + "/applications/payments", json={"workflow": "build"}))
    ok(manager.put(path + "/applications/payments", json={"image": PAYMENTS_IMAGE}))
    ok(
        manager.put(
            path + "/applications/checkout",
            json={"workflow": "build", "image": CHECKOUT_IMAGES[0], "instructions": "i"},
        )
    )
    ok(manager.post(path + "/lock"))
    ok(manager.post(path + "/unlock"))
    ok(manager.post(path + "/lock"))
    ok(manager.post(path + "/ready"))
    ok(manager.post(path + "/hold", json={"reason": "r"}))
    ok(manager.post(path + "/resume"))
    ok(manager.put(path + "/notes", json={"markdown": "n"}))
    ok(manager.put(path + "/catalog", json={"data": {"tier": "gold"}}))
    cloned = ok(
        manager.post(
            "/release-tracks/rm/releases", json={"version": "1.0.1", "clone_from": "1.0.0"}
        ),
        201,
    )
    assert cloned["stages"][1][0]["instructions"] == "i"
    final = ok(manager.post(path + "/rescind", json={"reason": "r"}))
    assert final["status"] == "rescinded"
    assert (final["notes"], final["catalog"], final["locked"]) == ("n", {"tier": "gold"}, True)
    assert final["stages"][0][0]["image"] == PAYMENTS_IMAGE


# --- tenant tokens ---------------------------------------------------------------------------


@pytest.mark.usefixtures("platform")
def test_tenant_reads_release_with_notes_and_instructions_when_it_targets_its_installation(
    api, token_for
):
    seed_draft(api)
    path = release_path("1.0.0")
    ok(api.put(path + "/applications/payments", json={"instructions": "rotate keys"}))
    ok(api.put(path + "/notes", json={"markdown": "# Numero 1.0.0"}))
    flareup = token_for("tenant", tenant_id="flareup123")

    seen = ok(flareup.get(path))
    assert seen == api.get(path).json()
    assert seen["notes"] == "# Numero 1.0.0"
    assert seen["stages"][0][0]["instructions"] == "rotate keys"
    track = ok(flareup.get(f"/release-tracks/{TRACK}"))
    assert [r["version"] for r in track["releases"]] == ["1.0.0"]
    assert [t["name"] for t in ok(flareup.get("/release-tracks"))] == [TRACK]


@pytest.mark.usefixtures("platform")
def test_tenant_gets_not_found_when_release_targets_none_of_its_installations(api, token_for):
    seed_draft(api)
    # reports deploys to doc3 (acme's); audit to doc4 (nobody's).
    make_release(api, "2.0.0", [["reports"]], {"reports": ORPHAN_IMAGE})
    make_release(api, "3.0.0", [["audit"]])
    make_release(api, "4.0.0")
    ok(api.post("/release-tracks", json={"name": "acme-only"}), 201)
    make_release(api, "1.0.0", [["reports"]], track="acme-only")
    flareup = token_for("tenant", tenant_id="flareup123")
    acme = token_for("tenant", tenant_id="acme")

    for version in ("2.0.0", "3.0.0", "4.0.0", "9.9.9"):
        assert_problem(flareup.get(release_path(version)), 404, "not_found")
    assert_problem(flareup.get(release_path("1.0.0", "acme-only")), 404, "not_found")
    assert_problem(flareup.get("/release-tracks/acme-only"), 404, "not_found")
    listed = ok(flareup.get("/release-tracks"))
    assert [t["name"] for t in listed] == [TRACK]
    assert [r["version"] for r in listed[0]["releases"]] == ["1.0.0"]
    assert [r["version"] for r in ok(flareup.get(f"/release-tracks/{TRACK}"))["releases"]] == [
        "1.0.0"
    ]

    # Paging counts only the tracks the tenant may see.
    first_page = ok(flareup.get("/release-tracks", params={"limit": 1}))
    assert [t["name"] for t in first_page] == [TRACK]
    assert ok(flareup.get("/release-tracks", params={"limit": 1, "offset": 1})) == []

    # acme sees exactly the releases that target its installation.
    assert ok(acme.get(release_path("2.0.0")))["version"] == "2.0.0"
    assert_problem(acme.get(release_path("1.0.0")), 404, "not_found")
    acme_tracks = {
        t["name"]: [r["version"] for r in t["releases"]] for t in ok(acme.get("/release-tracks"))
    }
    assert acme_tracks == {"acme-only": ["1.0.0"], TRACK: ["2.0.0"]}
    pages = [ok(acme.get("/release-tracks", params={"limit": 1, "offset": n})) for n in (0, 1, 2)]
    assert [[t["name"] for t in page] for page in pages] == [["acme-only"], [TRACK], []]
    # Staff see everything.
    staff = {
        t["name"]: sorted(r["version"] for r in t["releases"])
        for t in ok(api.get("/release-tracks"))
    }
    assert staff == {"acme-only": ["1.0.0"], TRACK: ["1.0.0", "2.0.0", "3.0.0", "4.0.0"]}


@pytest.mark.usefixtures("platform")
def test_tenant_loses_sight_of_release_when_its_applications_stop_targeting_the_tenant(
    api, token_for
):
    seed_draft(api)
    flareup = token_for("tenant", tenant_id="flareup123")
    assert ok(flareup.get(release_path("1.0.0")))["version"] == "1.0.0"
    ok(api.put(release_path("1.0.0") + "/stages", json={"stages": [["reports"]]}))
    assert_problem(flareup.get(release_path("1.0.0")), 404, "not_found")
    assert ok(flareup.get("/release-tracks")) == []


# --- hostile input -----------------------------------------------------------------------------


def test_track_is_refused_when_a_catalog_schema_ref_does_not_resolve_within_it(api, hub):
    head = hub.head()
    for schema in (
        {"$ref": "#/definitions/missing"},
        {"properties": {"tier": {"$ref": "#/$defs/tier"}}},
        # A remote reference is never fetched: it cannot resolve.
        {"$ref": "http://127.0.0.1:9/schema.json"},
        {"items": {"$ref": "https://example.invalid/tier.json"}},
    ):
        response = api.post("/release-tracks", json={"name": "refs", "catalog_schema": schema})
        assert_problem(response, 422, "invalid_catalog_schema")
    assert hub.head() == head
    assert api.get("/release-tracks").json() == []
    local = {"properties": {"tier": {"$ref": "#/$defs/tier"}}, "$defs": {"tier": {"enum": ["a"]}}}
    created = ok(api.post("/release-tracks", json={"name": "refs", "catalog_schema": local}), 201)
    assert created["catalog_schema"] == local
    ok(api.post("/release-tracks/refs/releases", json={"version": "1.0.0"}), 201)
    hub.refused(
        "1.0.0",
        lambda: api.put(release_path("1.0.0", "refs") + "/catalog", json={"data": {"tier": "b"}}),
        422,
        "catalog_invalid",
        track="refs",
    )
    stored = ok(api.put(release_path("1.0.0", "refs") + "/catalog", json={"data": {"tier": "a"}}))
    assert stored["catalog"] == {"tier": "a"}


def test_catalog_is_refused_when_the_track_schema_refers_to_itself_endlessly(api, hub):
    ok(api.post("/release-tracks", json={"name": "loop", "catalog_schema": {"$ref": "#"}}), 201)
    ok(api.post("/release-tracks/loop/releases", json={"version": "1.0.0"}), 201)
    hub.refused(
        "1.0.0",
        lambda: api.put(release_path("1.0.0", "loop") + "/catalog", json={"data": {"a": 1}}),
        422,
        "invalid_catalog_schema",
        track="loop",
    )
    # The server is still answering and the release is still writable.
    noted = ok(api.put(release_path("1.0.0", "loop") + "/notes", json={"markdown": "fine"}))
    assert noted["notes"] == "fine"


@pytest.mark.usefixtures("platform")
def test_release_text_is_refused_when_it_contains_nul(api, hub):
    # PostgreSQL text columns cannot hold NUL: accepting one would wedge the read models.
    seed_ready(api)
    path = release_path("1.0.0")
    for method, url, body in (
        ("PUT", path + "/notes", {"markdown": "a\x00b"}),
        ("PUT", path + "/catalog", {"data": {"tier": "gold", "note": "\x00"}}),
        ("POST", path + "/hold", {"reason": "\x00"}),
        ("POST", path + "/rescind", {"reason": "bad\x00"}),
    ):
        hub.refused(
            "1.0.0", lambda m=method, u=url, b=body: api.request(m, u, json=b), 422, "invalid_input"
        )
    ok(api.post(path + "/unlock"))
    hub.refused(
        "1.0.0",
        lambda: api.put(path + "/applications/payments", json={"instructions": "x\x00"}),
        422,
        "invalid_input",
    )
    assert_problem(
        api.post(RELEASES, json={"version": "2.0.0", "name": "n\x00"}), 422, "invalid_input"
    )
    # The read models still follow: the next write is visible at once.
    assert ok(api.put(path + "/notes", json={"markdown": "still fine"}))["notes"] == "still fine"
    assert api.get(path).json()["notes"] == "still fine"


@pytest.mark.parametrize("raw", ['{"data": NaN}', '{"data": {"a": [Infinity]}}'])
def test_catalog_refuses_non_finite_numbers_when_body_has_nan_or_infinity(api, raw):
    api.post("/release-tracks", json={"name": "nan-track"})
    api.post("/release-tracks/nan-track/releases", json={"version": "1.0.0"})
    head = event_head(api)
    response = api.put(
        "/release-tracks/nan-track/releases/1.0.0/catalog",
        content=raw,
        headers={"Content-Type": "application/json"},
    )
    assert_problem(response, 422, "invalid_input")
    assert event_head(api) == head

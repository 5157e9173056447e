"""The hub's use cases on an in-memory event store."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError

from application.hub import MAX_ATTEMPTS, Hub, Outcome
from domain.errors import (
    CatalogDataInvalidError,
    ConcurrentModificationError,
    DomainError,
    DuplicateError,
    EnvironmentAlreadyMappedError,
    InvalidCatalogSchemaError,
    InvalidIdentifierError,
    NoTargetedInstallationError,
    NotFoundError,
    ReleaseRescindedError,
    RequirementsIncompleteError,
)
from domain.release import Release, ReleaseStatus

pytestmark = pytest.mark.unit

ACTOR = "alice"
TRACK = "shop"
CATALOG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"tier": {"enum": ["gold", "silver"]}, "seats": {"type": "integer"}},
    "required": ["tier"],
    "additionalProperties": False,
}


@pytest.fixture
def hub() -> Iterator[Hub]:
    hub = Hub(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    yield hub
    hub.close()


def platform(hub: Hub) -> None:
    """Environments, the 'api' application with a built image, and a tenant with two
    installations; nothing mapped and no pipelines yet."""
    for env in ("prod-eu", "prod-us", "staging"):
        hub.register_environment(env, "cluster-1", env, "", ACTOR)
    hub.register_application("api", "shop", "", ACTOR)
    hub.register_image("api", "build", "api:1", "c0ffee", ACTOR)
    hub.register_tenant("acme", "Acme", "", ACTOR)
    hub.add_installation("acme", "acme-prod", "Production", ACTOR)
    hub.add_installation("acme", "acme-test", "Test", ACTOR)
    hub.create_track(TRACK, "", CATALOG_SCHEMA, ACTOR)


def locked_release(hub: Hub, semver: str = "1.0.0") -> None:
    hub.create_release(TRACK, semver, None, "", None, ACTOR)
    hub.set_stages(TRACK, semver, [["api"]], ACTOR)
    hub.set_release_application(TRACK, semver, "api", None, "api:1", "migrate", ACTOR)
    hub.lock_requirements(TRACK, semver, ACTOR)


def events_of(hub: Hub) -> list[Any]:
    return hub.read_events(0, 1000)


# --- duplicates -----------------------------------------------------------------------------


def test_register_environment_raises_duplicate_and_records_nothing_when_name_is_taken(
    hub: Hub,
) -> None:
    hub.register_environment("prod-eu", "cluster-1", "shop", "first", ACTOR)
    position = hub.last_position()
    with pytest.raises(DuplicateError) as raised:
        hub.register_environment("prod-eu", "cluster-2", "other", "second", ACTOR)
    assert raised.value.code == "duplicate"
    assert hub.last_position() == position
    assert hub.get_environment("prod-eu").cluster == "cluster-1"


def test_register_tenant_raises_duplicate_when_tenant_id_is_taken(hub: Hub) -> None:
    hub.register_tenant("acme", "Acme", "", ACTOR)
    with pytest.raises(DuplicateError):
        hub.register_tenant("acme", "Other Acme", "", ACTOR)
    assert hub.get_tenant("acme").display_name == "Acme"


def test_register_tenant_raises_invalid_identifier_when_tenant_id_breaks_pattern(
    hub: Hub,
) -> None:
    with pytest.raises(InvalidIdentifierError):
        hub.register_tenant("Acme_Corp", "Acme", "", ACTOR)
    assert hub.last_position() == 0


def test_register_application_raises_duplicate_when_name_is_taken(hub: Hub) -> None:
    hub.register_application("api", "shop", "", ACTOR)
    with pytest.raises(DuplicateError):
        hub.register_application("api", "crm", "", ACTOR)
    assert hub.get_application("api").project == "shop"


def test_add_installation_raises_duplicate_when_id_is_used_by_another_tenant(hub: Hub) -> None:
    hub.register_tenant("acme", "Acme", "", ACTOR)
    hub.register_tenant("globex", "Globex", "", ACTOR)
    hub.add_installation("acme", "prod", "Acme production", ACTOR)
    position = hub.last_position()

    with pytest.raises(DuplicateError):
        hub.add_installation("globex", "prod", "Globex production", ACTOR)

    assert hub.last_position() == position
    assert hub.get_tenant("globex").installations == {}
    assert list(hub.get_tenant("acme").installations) == ["prod"]


def test_add_installation_raises_duplicate_when_same_tenant_adds_it_twice(hub: Hub) -> None:
    hub.register_tenant("acme", "Acme", "", ACTOR)
    hub.add_installation("acme", "prod", "Production", ACTOR)
    with pytest.raises(DuplicateError):
        hub.add_installation("acme", "prod", "Again", ACTOR)
    assert hub.get_tenant("acme").installations["prod"]["display_name"] == "Production"


def test_create_track_raises_duplicate_when_name_is_taken(hub: Hub) -> None:
    hub.create_track(TRACK, "first", None, ACTOR)
    with pytest.raises(DuplicateError):
        hub.create_track(TRACK, "second", CATALOG_SCHEMA, ACTOR)
    track = hub.get_track(TRACK)
    assert (track.description, track.catalog_schema) == ("first", None)


def test_create_release_raises_duplicate_when_version_exists_in_track(hub: Hub) -> None:
    hub.create_track(TRACK, "", None, ACTOR)
    hub.create_track("crm", "", None, ACTOR)
    hub.create_release(TRACK, "1.0.0", "First", "", None, ACTOR)
    with pytest.raises(DuplicateError):
        hub.create_release(TRACK, "1.0.0", "Again", "", None, ACTOR)
    assert hub.get_release(TRACK, "1.0.0").name == "First"
    # The same version in another track is another release.
    hub.create_release("crm", "1.0.0", None, "", None, ACTOR)
    assert hub.get_release("crm", "1.0.0").track == "crm"


def test_create_release_raises_not_found_when_track_is_missing(hub: Hub) -> None:
    with pytest.raises(NotFoundError):
        hub.create_release("nope", "1.0.0", None, "", None, ACTOR)
    assert hub.last_position() == 0


# --- clone ----------------------------------------------------------------------------------


def test_create_release_raises_not_found_when_clone_from_version_is_missing(hub: Hub) -> None:
    platform(hub)
    locked_release(hub, "1.0.0")
    position = hub.last_position()
    with pytest.raises(NotFoundError) as raised:
        hub.create_release(TRACK, "1.1.0", None, "", "0.9.0", ACTOR)
    assert raised.value.code == "not_found"
    assert hub.last_position() == position
    with pytest.raises(NotFoundError):
        hub.get_release(TRACK, "1.1.0")


def test_create_release_raises_not_found_when_clone_from_is_in_another_track(hub: Hub) -> None:
    platform(hub)
    locked_release(hub, "1.0.0")
    hub.create_track("crm", "", None, ACTOR)
    with pytest.raises(NotFoundError):
        hub.create_release("crm", "1.1.0", None, "", "1.0.0", ACTOR)


def test_create_release_copies_requirements_when_cloning_an_existing_version(hub: Hub) -> None:
    platform(hub)
    locked_release(hub, "1.0.0")
    hub.set_notes(TRACK, "1.0.0", "# Notes", ACTOR)

    hub.create_release(TRACK, "1.1.0", None, "", "1.0.0", ACTOR)

    clone = hub.get_release(TRACK, "1.1.0")
    assert clone.stages == [["api"]]
    assert clone.requirements == {
        "api": {"workflow": "build", "image": "api:1", "instructions": "migrate"}
    }
    assert (clone.cloned_from, clone.notes, clone.locked) == ("1.0.0", "", False)


# --- environment mapping --------------------------------------------------------------------


def test_map_environments_raises_already_mapped_when_env_belongs_to_another_installation(
    hub: Hub,
) -> None:
    platform(hub)
    hub.register_tenant("globex", "Globex", "", ACTOR)
    hub.add_installation("globex", "gx-prod", "Production", ACTOR)
    hub.map_environments("acme", "acme-prod", ["prod-eu"], ACTOR)
    position = hub.last_position()

    with pytest.raises(EnvironmentAlreadyMappedError) as raised:
        hub.map_environments("globex", "gx-prod", ["prod-us", "prod-eu"], ACTOR)

    assert raised.value.code == "environment_already_mapped"
    assert hub.last_position() == position
    assert hub.get_environment("prod-eu").installation == {
        "tenant_id": "acme",
        "installation_id": "acme-prod",
    }
    assert hub.get_environment("prod-us").installation is None
    assert hub.get_tenant("globex").installations["gx-prod"]["environments"] == []


def test_map_environments_raises_already_mapped_when_env_belongs_to_sibling_installation(
    hub: Hub,
) -> None:
    platform(hub)
    hub.map_environments("acme", "acme-prod", ["prod-eu"], ACTOR)
    with pytest.raises(EnvironmentAlreadyMappedError):
        hub.map_environments("acme", "acme-test", ["prod-eu"], ACTOR)
    tenant = hub.get_tenant("acme")
    assert tenant.installations["acme-prod"]["environments"] == ["prod-eu"]
    assert tenant.installations["acme-test"]["environments"] == []


def test_map_environments_unmaps_removed_environments_when_remapping(hub: Hub) -> None:
    platform(hub)
    hub.map_environments("acme", "acme-prod", ["prod-eu", "prod-us"], ACTOR)

    outcome = hub.map_environments("acme", "acme-prod", ["prod-us", "staging", "staging"], ACTOR)

    assert outcome.changed
    assert outcome.position == hub.last_position()
    mapped = {"tenant_id": "acme", "installation_id": "acme-prod"}
    assert hub.get_environment("prod-eu").installation is None
    assert hub.get_environment("prod-us").installation == mapped
    assert hub.get_environment("staging").installation == mapped
    installation = hub.get_tenant("acme").installations["acme-prod"]
    assert installation["environments"] == ["prod-us", "staging"]
    # The freed environment can now go elsewhere.
    hub.map_environments("acme", "acme-test", ["prod-eu"], ACTOR)
    assert hub.get_environment("prod-eu").installation == {
        "tenant_id": "acme",
        "installation_id": "acme-test",
    }


def test_map_environments_raises_not_found_when_environment_is_unknown(hub: Hub) -> None:
    platform(hub)
    position = hub.last_position()
    with pytest.raises(NotFoundError):
        hub.map_environments("acme", "acme-prod", ["prod-eu", "mars"], ACTOR)
    assert hub.last_position() == position
    assert hub.get_environment("prod-eu").installation is None


def test_map_environments_reports_unchanged_when_mapping_is_the_same(hub: Hub) -> None:
    platform(hub)
    hub.map_environments("acme", "acme-prod", ["prod-eu"], ACTOR)
    position = hub.last_position()
    assert hub.map_environments("acme", "acme-prod", ["prod-eu"], ACTOR) == Outcome(0, False)
    assert hub.last_position() == position


# --- ready and targeted installations ---------------------------------------------------------


def test_mark_ready_raises_no_targeted_installation_when_no_environment_is_mapped(
    hub: Hub,
) -> None:
    platform(hub)
    hub.set_pipeline("api", "prod-eu", {"simulate": {}}, None, None, ACTOR)
    locked_release(hub)
    with pytest.raises(NoTargetedInstallationError) as raised:
        hub.mark_ready(TRACK, "1.0.0", ACTOR)
    assert raised.value.code == "no_targeted_installation"
    assert hub.get_release(TRACK, "1.0.0").status is ReleaseStatus.DRAFT


def test_mark_ready_raises_no_targeted_installation_when_mapped_env_has_no_pipeline(
    hub: Hub,
) -> None:
    platform(hub)
    hub.set_pipeline("api", "staging", {}, None, None, ACTOR)
    hub.map_environments("acme", "acme-prod", ["prod-eu"], ACTOR)
    locked_release(hub)
    with pytest.raises(NoTargetedInstallationError):
        hub.mark_ready(TRACK, "1.0.0", ACTOR)


def test_mark_ready_marks_release_ready_when_pipeline_reaches_a_mapped_environment(
    hub: Hub,
) -> None:
    platform(hub)
    hub.set_pipeline("api", "prod-eu", {}, None, None, ACTOR)
    hub.map_environments("acme", "acme-prod", ["prod-eu"], ACTOR)
    locked_release(hub)

    outcome = hub.mark_ready(TRACK, "1.0.0", ACTOR)

    assert outcome.changed
    assert hub.get_release(TRACK, "1.0.0").status is ReleaseStatus.READY
    assert events_of(hub)[-1].type == "ReleaseMarkedReady"


def test_targeted_installations_counts_each_installation_once_when_reached_twice(
    hub: Hub,
) -> None:
    platform(hub)
    hub.register_application("web", "shop", "", ACTOR)
    hub.register_image("web", "build", "web:1", "c1", ACTOR)
    hub.register_tenant("globex", "Globex", "", ACTOR)
    hub.add_installation("globex", "gx-prod", "Production", ACTOR)
    hub.map_environments("acme", "acme-prod", ["prod-eu", "prod-us"], ACTOR)
    hub.map_environments("globex", "gx-prod", ["staging"], ACTOR)
    hub.set_pipeline("api", "prod-eu", {}, None, None, ACTOR)
    hub.set_pipeline("web", "prod-us", {}, None, None, ACTOR)
    hub.set_pipeline("web", "staging", {}, None, None, ACTOR)
    hub.create_release(TRACK, "1.0.0", None, "", None, ACTOR)
    hub.set_stages(TRACK, "1.0.0", [["api"], ["web"]], ACTOR)

    targets = hub.targeted_installations(hub.get_release(TRACK, "1.0.0"))

    assert targets == {("acme", "acme-prod"), ("globex", "gx-prod")}


def test_mark_ready_raises_release_not_locked_before_counting_when_unlocked(hub: Hub) -> None:
    platform(hub)
    hub.create_release(TRACK, "1.0.0", None, "", None, ACTOR)
    with pytest.raises(DomainError) as raised:
        hub.mark_ready(TRACK, "1.0.0", ACTOR)
    assert raised.value.code == "release_not_locked"


def test_lock_requirements_raises_requirements_incomplete_when_an_image_is_missing(
    hub: Hub,
) -> None:
    platform(hub)
    hub.register_application("web", "shop", "", ACTOR)
    hub.create_release(TRACK, "1.0.0", None, "", None, ACTOR)
    hub.set_stages(TRACK, "1.0.0", [["api", "web"]], ACTOR)
    hub.set_release_application(TRACK, "1.0.0", "api", None, "api:1", None, ACTOR)
    with pytest.raises(RequirementsIncompleteError) as raised:
        hub.lock_requirements(TRACK, "1.0.0", ACTOR)
    assert raised.value.extra == {"applications": ["web"]}
    assert not hub.get_release(TRACK, "1.0.0").locked


def test_set_stages_raises_not_found_when_an_application_is_unknown(hub: Hub) -> None:
    platform(hub)
    hub.create_release(TRACK, "1.0.0", None, "", None, ACTOR)
    with pytest.raises(NotFoundError) as raised:
        hub.set_stages(TRACK, "1.0.0", [["api"], ["ghost"]], ACTOR)
    assert raised.value.extra == {"applications": ["ghost"]}
    assert hub.get_release(TRACK, "1.0.0").stages == []


def test_get_release_raises_not_found_when_version_is_not_semver(hub: Hub) -> None:
    hub.create_track(TRACK, "", None, ACTOR)
    with pytest.raises(NotFoundError):
        hub.get_release(TRACK, "latest")


# --- catalog ---------------------------------------------------------------------------------


def test_set_catalog_raises_catalog_invalid_when_data_breaks_track_schema(hub: Hub) -> None:
    platform(hub)
    hub.create_release(TRACK, "1.0.0", None, "", None, ACTOR)
    hub.set_catalog(TRACK, "1.0.0", {"tier": "gold"}, ACTOR)
    position = hub.last_position()

    with pytest.raises(CatalogDataInvalidError) as raised:
        hub.set_catalog(TRACK, "1.0.0", {"tier": "bronze", "seats": "many"}, ACTOR)

    assert raised.value.code == "catalog_invalid"
    assert sorted(e["path"] for e in raised.value.extra["errors"]) == [["seats"], ["tier"]]
    assert hub.last_position() == position
    assert hub.get_release(TRACK, "1.0.0").catalog == {"tier": "gold"}


def test_set_catalog_stores_data_when_it_satisfies_track_schema(hub: Hub) -> None:
    platform(hub)
    hub.create_release(TRACK, "1.0.0", None, "", None, ACTOR)
    outcome = hub.set_catalog(TRACK, "1.0.0", {"tier": "silver", "seats": 12}, ACTOR)
    assert outcome.changed
    assert hub.get_release(TRACK, "1.0.0").catalog == {"tier": "silver", "seats": 12}
    assert events_of(hub)[-1].data["data"] == {"tier": "silver", "seats": 12}


def test_set_catalog_accepts_any_data_when_track_has_no_schema(hub: Hub) -> None:
    hub.create_track("crm", "", None, ACTOR)
    hub.create_release("crm", "1.0.0", None, "", None, ACTOR)
    hub.set_catalog("crm", "1.0.0", ["anything", 1, {"x": None}], ACTOR)
    assert hub.get_release("crm", "1.0.0").catalog == ["anything", 1, {"x": None}]


@pytest.mark.parametrize(
    "schema",
    [{"type": "nonsense"}, {"required": "tier"}, {"properties": {"tier": {"minLength": -1}}}],
)
def test_create_track_raises_invalid_catalog_schema_when_schema_is_not_json_schema(
    hub: Hub, schema: dict[str, Any]
) -> None:
    with pytest.raises(InvalidCatalogSchemaError) as raised:
        hub.create_track(TRACK, "", schema, ACTOR)
    assert raised.value.code == "invalid_catalog_schema"
    assert hub.last_position() == 0
    with pytest.raises(NotFoundError):
        hub.get_track(TRACK)


@pytest.mark.parametrize("ref", ["#/$defs/missing", "other-schema.json"])
def test_catalog_refused_with_domain_error_when_schema_ref_cannot_be_resolved(
    hub: Hub, ref: str
) -> None:
    """Regression: check_schema alone accepted such a schema, and set_catalog then let
    jsonschema's referencing error escape (a 500 at the edge)."""
    schema = {"$ref": ref}
    try:
        hub.create_track(TRACK, "", schema, ACTOR)
    except InvalidCatalogSchemaError:
        return  # refused up front
    hub.create_release(TRACK, "1.0.0", None, "", None, ACTOR)
    with pytest.raises(DomainError):
        hub.set_catalog(TRACK, "1.0.0", {"tier": "gold"}, ACTOR)


# --- tokens -----------------------------------------------------------------------------------


def test_issue_token_stores_only_the_secret_hash_when_issuing(hub: Hub) -> None:
    issued = hub.issue_token("ci-bot", "deployer", None, 30, ACTOR)

    events = events_of(hub)
    assert [e.type for e in events] == ["TokenIssued"]
    [token_issued] = events
    assert issued.position == token_issued.position
    assert token_issued.data["token_hash"] == hashlib.sha256(issued.secret.encode()).hexdigest()
    assert token_issued.actor == ACTOR
    assert issued.secret not in repr(token_issued.as_json())
    assert issued.expires_at is not None
    assert token_issued.data["expires_at"] == issued.expires_at


def test_issue_token_gives_a_new_secret_when_reissuing_a_revoked_name(hub: Hub) -> None:
    first = hub.issue_token("ci-bot", "viewer", None, None, ACTOR)
    hub.revoke_token("ci-bot", ACTOR)

    second = hub.issue_token("ci-bot", "deployer", None, None, ACTOR)

    assert second.secret != first.secret
    reissued = events_of(hub)[-1]
    assert reissued.type == "TokenReissued"
    assert reissued.data["token_hash"] == hashlib.sha256(second.secret.encode()).hexdigest()
    assert reissued.data["role"] == "deployer"


def test_issue_token_raises_duplicate_when_name_is_live(hub: Hub) -> None:
    hub.issue_token("ci-bot", "viewer", None, None, ACTOR)
    position = hub.last_position()
    with pytest.raises(DuplicateError):
        hub.issue_token("ci-bot", "admin", None, None, ACTOR)
    assert hub.last_position() == position


def test_issue_token_raises_not_found_when_tenant_is_unknown(hub: Hub) -> None:
    with pytest.raises(NotFoundError):
        hub.issue_token("acme-portal", "tenant", "acme", None, ACTOR)
    assert hub.last_position() == 0


def test_revoke_token_raises_not_found_when_token_is_unknown(hub: Hub) -> None:
    with pytest.raises(NotFoundError):
        hub.revoke_token("nobody", ACTOR)


# --- concurrency ------------------------------------------------------------------------------


def draft_release(hub: Hub) -> None:
    """An empty draft, shop 1.0.0, in a track without a catalog schema."""
    hub.create_track(TRACK, "", None, ACTOR)
    hub.create_release(TRACK, "1.0.0", None, "", None, ACTOR)


def test_save_raises_integrity_error_when_two_copies_change_the_same_version(hub: Hub) -> None:
    draft_release(hub)
    mine = hub.get_release(TRACK, "1.0.0")
    theirs = hub.get_release(TRACK, "1.0.0")
    mine.set_notes("mine", ACTOR)
    theirs.set_notes("theirs", "bob")

    hub.save(mine)
    with pytest.raises(IntegrityError):
        hub.save(theirs)

    assert hub.get_release(TRACK, "1.0.0").notes == "mine"


def test_create_conflicts_when_a_second_copy_is_saved_under_the_same_id(hub: Hub) -> None:
    hub.create_track(TRACK, "", None, ACTOR)
    first = Release.create(TRACK, "1.0.0", "first", "", ACTOR)
    second = Release.create(TRACK, "1.0.0", "second", "", ACTOR)
    hub.save(first)
    with pytest.raises(IntegrityError):
        hub.save(second)
    assert hub.get_release(TRACK, "1.0.0").name == "first"


class RacedCommand:
    """A command on shop 1.0.0 for ``hub._execute``, counting its attempts. Each attempt
    loads the release; then, on the first ``rivals`` attempts (all when None), someone
    else saves ``rival(their copy, attempt)`` before ``change`` is applied to ours."""

    def __init__(
        self,
        hub: Hub,
        change: Callable[[Release], None],
        rival: Callable[[Release, int], None],
        rivals: int | None = 1,
    ) -> None:
        self.hub, self.change, self.rival, self.rivals = hub, change, rival, rivals
        self.calls = 0

    def __call__(self) -> list[Aggregate]:
        self.calls += 1
        release = self.hub.get_release(TRACK, "1.0.0")
        if self.rivals is None or self.calls <= self.rivals:
            theirs = self.hub.get_release(TRACK, "1.0.0")
            self.rival(theirs, self.calls)
            self.hub.save(theirs)
        self.change(release)
        return [release]


def test_execute_retries_on_fresh_state_when_first_save_conflicts(hub: Hub) -> None:
    draft_release(hub)
    command = RacedCommand(
        hub,
        change=lambda release: release.set_catalog({"tier": "gold"}, ACTOR),
        rival=lambda theirs, _: theirs.set_notes("rival notes", "bob"),
    )

    outcome = hub._execute(command)

    assert command.calls == 2
    assert outcome.changed
    assert outcome.position == hub.last_position()
    release = hub.get_release(TRACK, "1.0.0")
    assert (release.notes, release.catalog) == ("rival notes", {"tier": "gold"})
    assert [e.type for e in events_of(hub)][-2:] == ["ReleaseNotesSet", "CatalogDataSet"]


def test_execute_applies_rules_to_winners_state_when_retrying(hub: Hub) -> None:
    draft_release(hub)
    command = RacedCommand(
        hub,
        change=lambda release: release.set_notes("too late", ACTOR),
        rival=lambda theirs, _: theirs.rescind("withdrawn", "bob"),
    )

    with pytest.raises(ReleaseRescindedError):
        hub._execute(command)

    assert command.calls == 2
    assert hub.get_release(TRACK, "1.0.0").notes == ""


def test_execute_raises_concurrent_modification_when_every_save_conflicts(hub: Hub) -> None:
    draft_release(hub)
    command = RacedCommand(
        hub,
        change=lambda release: release.set_catalog({"tier": "gold"}, ACTOR),
        rival=lambda theirs, attempt: theirs.set_notes(f"rival {attempt}", "bob"),
        rivals=None,
    )

    with pytest.raises(ConcurrentModificationError) as raised:
        hub._execute(command)

    assert raised.value.code == "concurrent_modification"
    assert command.calls == MAX_ATTEMPTS
    release = hub.get_release(TRACK, "1.0.0")
    assert release.catalog is None
    assert release.notes == f"rival {MAX_ATTEMPTS}"


def test_execute_reports_unchanged_when_command_changes_nothing(hub: Hub) -> None:
    draft_release(hub)
    hub.set_notes(TRACK, "1.0.0", "same", ACTOR)
    position = hub.last_position()
    assert hub.set_notes(TRACK, "1.0.0", "same", ACTOR) == Outcome(position=0, changed=False)
    assert hub.last_position() == position


# --- the log ----------------------------------------------------------------------------------


def test_read_events_lists_events_in_order_with_actor_when_commands_ran(hub: Hub) -> None:
    hub.register_tenant("acme", "Acme", "", ACTOR)
    hub.add_installation("acme", "acme-prod", "Production", "bob")

    events = events_of(hub)

    assert [(e.type, e.aggregate, e.actor) for e in events] == [
        ("TenantRegistered", "tenant", ACTOR),
        ("InstallationAdded", "tenant", "bob"),
        ("InstallationReserved", "installation", "bob"),
    ]
    assert [e.position for e in events] == [1, 2, 3]
    assert [e.position for e in hub.read_events(1, 1)] == [2]
    assert events[1].data["installation_id"] == "acme-prod"


# --- snapshots --------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["hold", "rescind"])
def test_lifecycle_command_works_when_release_is_loaded_from_a_snapshot(
    hub: Hub, command: str
) -> None:
    platform(hub)
    hub.set_pipeline("api", "prod-eu", {}, None, None, ACTOR)
    hub.map_environments("acme", "acme-prod", ["prod-eu"], ACTOR)
    locked_release(hub)
    hub.mark_ready(TRACK, "1.0.0", ACTOR)
    interval = Hub.snapshotting_intervals[Release]
    # A long stream (rollouts of big releases make them); notes are the cheapest events.
    for n in range(interval - hub.get_release(TRACK, "1.0.0").version):
        hub.set_notes(TRACK, "1.0.0", f"revision {n}", ACTOR)
    release_id = Release.create_id(TRACK, "1.0.0")
    assert hub.snapshots is not None
    assert list(hub.snapshots.get(release_id)), "a snapshot was taken"

    getattr(hub, command)(TRACK, "1.0.0", "incident 42", ACTOR)

    expected = ReleaseStatus.ON_HOLD if command == "hold" else ReleaseStatus.RESCINDED
    assert hub.get_release(TRACK, "1.0.0").status == expected

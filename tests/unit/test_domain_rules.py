"""Example tests for the rules the aggregates and value checks of ``domain`` hold."""

from __future__ import annotations

from typing import Any

import pytest
from eventsourcing.application import Application as EventStore
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.access import ROLE_PERMISSIONS, ApiToken, Permission, Role, allows, parse_role
from domain.application import MAX_SIMULATED_SECONDS, Application, check_target
from domain.environment import Environment
from domain.errors import (
    ApplicationNotInReleaseError,
    ConcurrentModificationError,
    DomainError,
    DuplicateError,
    EnvironmentAlreadyMappedError,
    ErrorKind,
    InvalidIdentifierError,
    InvalidRoleError,
    InvalidSemverError,
    InvalidStagesError,
    InvalidTargetError,
    NotFoundError,
    ReleaseLockedError,
    ReleaseOnHoldError,
    ReleaseRescindedError,
    UnknownImageError,
    UnknownWorkflowError,
)
from domain.ids import TENANT_ID_PATTERN, check_name, check_semver, check_tenant_id
from domain.release import MAX_STAGES, Release, ReleaseStatus
from domain.tenant import Tenant

pytestmark = pytest.mark.unit

ACTOR = "unit-test"


# --- helpers ------------------------------------------------------------------------------


def api_app() -> Application:
    """'api' built by two workflows; 'api:2' was built by both."""
    app = Application.register("api", "shop", "", ACTOR)
    app.register_image("build", "api:1", "c1", ACTOR)
    app.register_image("build", "api:2", "c2", ACTOR)
    app.register_image("hotfix", "api:2", "c2", ACTOR)
    app.register_image("hotfix", "api:2-hf", "c3", ACTOR)
    return app


def web_app() -> Application:
    app = Application.register("web", "shop", "", ACTOR)
    app.register_image("build", "web:1", "c4", ACTOR)
    return app


def release_with(*stages: list[str]) -> Release:
    release = Release.create("shop", "1.0.0", None, "", ACTOR)
    release.set_stages(list(stages), ACTOR)
    return release


def settled(*aggregates: Any) -> None:
    """Forgets what the aggregates did so far, as saving would."""
    for aggregate in aggregates:
        aggregate.collect_events()


def environment(name: str) -> Environment:
    env = Environment.register(name, "cluster-1", name, "", ACTOR)
    settled(env)
    return env


def tenant_with(tenant_id: str, *installations: str) -> Tenant:
    tenant = Tenant.register(tenant_id, tenant_id.title(), "", ACTOR)
    for installation in installations:
        tenant.add_installation(installation, installation, ACTOR)
    settled(tenant)
    return tenant


# --- identifiers --------------------------------------------------------------------------


@pytest.mark.parametrize("tenant_id", ["a", "0", "acme", "acme-corp", "9lives", "a" * 63])
def test_check_tenant_id_returns_id_when_it_matches_the_pattern(tenant_id: str) -> None:
    assert check_tenant_id(tenant_id) == tenant_id


@pytest.mark.parametrize(
    "tenant_id",
    ["", "-acme", "Acme", "acme_corp", "acme.corp", "acme corp", "a" * 64, "acme\n", "äcme"],
)
def test_check_tenant_id_raises_invalid_identifier_when_id_breaks_the_pattern(
    tenant_id: str,
) -> None:
    with pytest.raises(InvalidIdentifierError) as raised:
        check_tenant_id(tenant_id)
    assert raised.value.code == "invalid_identifier"
    assert raised.value.kind is ErrorKind.INVALID
    assert raised.value.extra == {"field": "tenant_id"}


@settings(max_examples=100)
@given(st.from_regex(TENANT_ID_PATTERN, fullmatch=True))
def test_check_tenant_id_accepts_id_when_generated_from_the_api_pattern(tenant_id: str) -> None:
    assert check_tenant_id(tenant_id) == tenant_id


def test_tenant_register_raises_invalid_identifier_when_tenant_id_is_uppercase() -> None:
    with pytest.raises(InvalidIdentifierError):
        Tenant.register("ACME", "Acme", "", ACTOR)


@pytest.mark.parametrize("name", ["prod-eu", "api.v2", "build_1", "0"])
def test_check_name_returns_name_when_it_is_a_dns_style_label(name: str) -> None:
    assert check_name(name, "name") == name


@pytest.mark.parametrize("name", ["", "Prod", ".hidden", "a/b", "a" * 64, "x\n"])
def test_check_name_raises_invalid_identifier_naming_the_field_when_name_is_bad(
    name: str,
) -> None:
    with pytest.raises(InvalidIdentifierError) as raised:
        check_name(name, "installation_id")
    assert raised.value.extra == {"field": "installation_id"}


@pytest.mark.parametrize(
    "version",
    ["1.0", "v1.0.0", "1", "", "01.0.0", "1.0.0-", "1.0.0+", "1.0.0\n", " 1.0.0", "1.0.0.0"],
)
def test_check_semver_raises_invalid_semver_when_version_is_not_semver(version: str) -> None:
    with pytest.raises(InvalidSemverError) as raised:
        check_semver(version)
    assert raised.value.code == "invalid_semver"
    assert raised.value.kind is ErrorKind.INVALID


@pytest.mark.parametrize("version", ["1.0.0", "0.0.0", "1.0.0-rc.1+b5", "10.20.30-alpha"])
def test_check_semver_returns_version_as_written_when_it_is_semver(version: str) -> None:
    assert check_semver(version) == version


def test_release_create_raises_invalid_semver_when_version_has_v_prefix() -> None:
    with pytest.raises(InvalidSemverError):
        Release.create("shop", "v1.0.0", None, "", ACTOR)


def test_release_create_names_release_after_version_when_no_name_is_given() -> None:
    release = Release.create("shop", "1.0.0-rc.1+b5", None, "", ACTOR)
    assert release.name == "1.0.0-rc.1+b5"
    assert release.semver == "1.0.0-rc.1+b5"
    assert release.status is ReleaseStatus.DRAFT
    assert not release.locked
    assert release.id == Release.create_id("shop", "1.0.0-rc.1+b5")


def test_release_create_id_differs_when_track_differs() -> None:
    assert Release.create_id("shop", "1.0.0") != Release.create_id("crm", "1.0.0")


# --- error codes are the API contract -------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "code", "kind"),
    [
        (EnvironmentAlreadyMappedError, "environment_already_mapped", ErrorKind.CONFLICT),
        (ReleaseLockedError, "release_locked", ErrorKind.CONFLICT),
        (ReleaseOnHoldError, "release_on_hold", ErrorKind.CONFLICT),
        (ReleaseRescindedError, "release_rescinded", ErrorKind.CONFLICT),
        (InvalidSemverError, "invalid_semver", ErrorKind.INVALID),
        (DuplicateError, "duplicate", ErrorKind.CONFLICT),
        (NotFoundError, "not_found", ErrorKind.NOT_FOUND),
        (ConcurrentModificationError, "concurrent_modification", ErrorKind.CONFLICT),
        (UnknownImageError, "unknown_image", ErrorKind.INVALID),
    ],
)
def test_error_carries_api_code_and_kind_when_raised(
    error: type[DomainError], code: str, kind: ErrorKind
) -> None:
    instance = error("why", field="x")
    assert (instance.code, instance.kind) == (code, kind)
    assert instance.detail == "why"
    assert instance.extra == {"field": "x"}


# --- clone --------------------------------------------------------------------------------


def locked_ready_release() -> Release:
    release = release_with(["api"], ["web"])
    release.set_application_requirements(api_app(), "hotfix", "api:2-hf", "migrate first", ACTOR)
    release.set_application_requirements(web_app(), None, "web:1", None, ACTOR)
    release.lock_requirements(ACTOR)
    release.mark_ready(2, ACTOR)
    release.set_notes("# Notes", ACTOR)
    release.set_catalog({"tier": "gold"}, ACTOR)
    return release


def test_clone_copies_stages_images_and_instructions_when_cloning_a_release() -> None:
    source = locked_ready_release()
    clone = Release.clone(source, "1.1.0", None, "next", ACTOR)
    assert clone.track == source.track
    assert clone.stages == [["api"], ["web"]]
    assert clone.requirements == {
        "api": {"workflow": "hotfix", "image": "api:2-hf", "instructions": "migrate first"},
        "web": {"workflow": "build", "image": "web:1", "instructions": ""},
    }
    assert clone.cloned_from == "1.0.0"
    assert (clone.semver, clone.name, clone.description) == ("1.1.0", "1.1.0", "next")


def test_clone_starts_as_unlocked_draft_without_notes_or_catalog_when_source_is_ready() -> None:
    clone = Release.clone(locked_ready_release(), "1.1.0", "Spring", "", ACTOR)
    assert clone.status is ReleaseStatus.DRAFT
    assert not clone.locked
    assert clone.notes == ""
    assert clone.catalog is None
    assert clone.name == "Spring"


def test_clone_leaves_source_untouched_when_clone_is_edited() -> None:
    source = locked_ready_release()
    clone = Release.clone(source, "1.1.0", None, "", ACTOR)
    clone.set_stages([["api"]], ACTOR)
    clone.set_application_requirements(api_app(), "build", "api:1", "other", ACTOR)
    assert source.stages == [["api"], ["web"]]
    assert source.requirements["api"] == {
        "workflow": "hotfix",
        "image": "api:2-hf",
        "instructions": "migrate first",
    }


def test_clone_history_keeps_source_requirements_when_clone_is_edited_before_saving() -> None:
    store = EventStore[Any](env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    clone = Release.clone(locked_ready_release(), "1.1.0", None, "", ACTOR)
    clone.set_application_requirements(api_app(), None, None, "changed", ACTOR)
    store.save(clone)

    as_created = store.repository.get(clone.id, version=1)

    assert as_created.requirements["api"]["instructions"] == "migrate first"


def test_clone_raises_invalid_semver_when_new_version_is_not_semver() -> None:
    with pytest.raises(InvalidSemverError):
        Release.clone(locked_ready_release(), "1.1", None, "", ACTOR)


# --- stages -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "stages",
    [[["api", "api"]], [["api"], ["web", "api"]], [["api", "web"], ["db"], ["web"]]],
)
def test_set_stages_raises_invalid_stages_when_an_application_repeats(
    stages: list[list[str]],
) -> None:
    release = release_with(["db"])
    settled(release)
    with pytest.raises(InvalidStagesError) as raised:
        release.set_stages(stages, ACTOR)
    assert raised.value.code == "invalid_stages"
    assert raised.value.extra["applications"] in (["api"], ["web"])
    assert release.stages == [["db"]]
    assert release.pending_events == []


@pytest.mark.parametrize("stages", [[[]], [["api"], []], [[], ["api"]]])
def test_set_stages_raises_invalid_stages_when_a_stage_is_empty(stages: list[list[str]]) -> None:
    release = release_with(["db"])
    settled(release)
    with pytest.raises(InvalidStagesError):
        release.set_stages(stages, ACTOR)
    assert release.stages == [["db"]]
    assert release.pending_events == []


def test_set_stages_raises_invalid_stages_when_there_are_too_many_stages() -> None:
    release = Release.create("shop", "1.0.0", None, "", ACTOR)
    with pytest.raises(InvalidStagesError):
        release.set_stages([[f"app{n}"] for n in range(MAX_STAGES + 1)], ACTOR)


def test_set_stages_keeps_requirements_of_kept_applications_when_plan_changes() -> None:
    release = release_with(["api"], ["web"])
    release.set_application_requirements(api_app(), None, "api:1", "note", ACTOR)
    release.set_application_requirements(web_app(), None, "web:1", None, ACTOR)
    assert release.set_stages([["db", "api"]], ACTOR) is True
    assert release.stages == [["db", "api"]]
    assert release.requirements == {
        "api": {"workflow": "build", "image": "api:1", "instructions": "note"},
        "db": {"workflow": None, "image": None, "instructions": ""},
    }


def test_set_stages_records_nothing_when_plan_is_unchanged() -> None:
    release = release_with(["api"], ["web"])
    settled(release)
    assert release.set_stages((("api",), ("web",)), ACTOR) is False
    assert release.pending_events == []


def test_set_stages_raises_release_locked_when_requirements_are_locked() -> None:
    release = release_with(["api"])
    release.set_application_requirements(api_app(), None, "api:1", None, ACTOR)
    release.lock_requirements(ACTOR)
    with pytest.raises(ReleaseLockedError) as raised:
        release.set_stages([["api"], ["web"]], ACTOR)
    assert raised.value.code == "release_locked"


# --- image selection ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("workflow", "image"),
    [(None, "ghost:1"), (None, "web:1"), ("build", "api:2-hf"), ("hotfix", "api:1")],
)
def test_set_application_requirements_raises_unknown_image_when_image_is_not_registered(
    workflow: str | None, image: str
) -> None:
    """Not built at all, built for another application, or not by the named workflow."""
    release = release_with(["api"])
    release.set_application_requirements(api_app(), "build", "api:1", "keep", ACTOR)
    settled(release)
    with pytest.raises(UnknownImageError) as raised:
        release.set_application_requirements(api_app(), workflow, image, "lost", ACTOR)
    assert raised.value.code == "unknown_image"
    assert raised.value.extra == {"field": "image"}
    assert release.requirements["api"] == {
        "workflow": "build",
        "image": "api:1",
        "instructions": "keep",
    }
    assert release.pending_events == []


def test_set_application_requirements_raises_unknown_workflow_when_workflow_built_nothing() -> None:
    release = release_with(["api"])
    settled(release)
    with pytest.raises(UnknownWorkflowError) as raised:
        release.set_application_requirements(api_app(), "nightly", None, None, ACTOR)
    assert raised.value.code == "unknown_workflow"
    assert release.pending_events == []


def test_set_application_requirements_raises_not_in_release_when_app_is_not_staged() -> None:
    release = release_with(["web"])
    with pytest.raises(ApplicationNotInReleaseError):
        release.set_application_requirements(api_app(), None, "api:1", None, ACTOR)


def test_choosing_workflow_clears_image_when_workflow_did_not_build_it() -> None:
    release = release_with(["api"])
    release.set_application_requirements(api_app(), None, "api:1", None, ACTOR)
    assert release.set_application_requirements(api_app(), "hotfix", None, None, ACTOR) is True
    assert release.requirements["api"] == {"workflow": "hotfix", "image": None, "instructions": ""}


def test_choosing_workflow_keeps_image_when_workflow_built_it() -> None:
    release = release_with(["api"])
    release.set_application_requirements(api_app(), "build", "api:2", None, ACTOR)
    release.set_application_requirements(api_app(), "hotfix", None, None, ACTOR)
    assert release.requirements["api"]["image"] == "api:2"
    assert release.requirements["api"]["workflow"] == "hotfix"


def test_choosing_image_picks_its_workflow_when_no_workflow_is_given() -> None:
    release = release_with(["api"])
    release.set_application_requirements(api_app(), None, "api:2-hf", None, ACTOR)
    assert release.requirements["api"]["workflow"] == "hotfix"


def test_choosing_image_keeps_current_workflow_when_it_also_built_the_image() -> None:
    release = release_with(["api"])
    release.set_application_requirements(api_app(), "hotfix", None, None, ACTOR)
    release.set_application_requirements(api_app(), None, "api:2", None, ACTOR)
    assert release.requirements["api"] == {
        "workflow": "hotfix",
        "image": "api:2",
        "instructions": "",
    }


def test_set_application_requirements_keeps_left_out_fields_when_only_instructions_change() -> None:
    release = release_with(["api"])
    release.set_application_requirements(api_app(), "build", "api:1", "first", ACTOR)
    assert release.set_application_requirements(api_app(), None, None, "second", ACTOR) is True
    assert release.requirements["api"] == {
        "workflow": "build",
        "image": "api:1",
        "instructions": "second",
    }
    settled(release)
    assert release.set_application_requirements(api_app(), None, None, None, ACTOR) is False
    assert release.pending_events == []


# --- environment mapping --------------------------------------------------------------------


def test_map_environments_raises_already_mapped_and_changes_nothing_when_env_is_taken() -> None:
    tenant = tenant_with("acme", "acme-prod", "acme-test")
    free, taken = environment("eu-2"), environment("eu-1")
    tenant.map_environments("acme-prod", [taken], [], ACTOR)
    settled(tenant, taken)

    # 'free' comes first: a refusal must not have mapped it already.
    with pytest.raises(EnvironmentAlreadyMappedError) as raised:
        tenant.map_environments("acme-test", [free, taken], [], ACTOR)

    assert raised.value.code == "environment_already_mapped"
    assert raised.value.extra["environments"] == [
        {"environment": "eu-1", "tenant_id": "acme", "installation_id": "acme-prod"}
    ]
    assert free.installation is None
    assert taken.installation == {"tenant_id": "acme", "installation_id": "acme-prod"}
    assert tenant.installations["acme-test"]["environments"] == []
    assert tenant.installations["acme-prod"]["environments"] == ["eu-1"]
    assert (tenant.pending_events, free.pending_events, taken.pending_events) == ([], [], [])


def test_map_environments_raises_already_mapped_when_env_belongs_to_another_tenant() -> None:
    acme, globex = tenant_with("acme", "acme-prod"), tenant_with("globex", "gx-prod")
    env = environment("eu-1")
    acme.map_environments("acme-prod", [env], [], ACTOR)
    settled(acme, env)
    with pytest.raises(EnvironmentAlreadyMappedError):
        globex.map_environments("gx-prod", [env], [], ACTOR)
    assert env.installation == {"tenant_id": "acme", "installation_id": "acme-prod"}
    assert globex.installations["gx-prod"]["environments"] == []


def test_map_environments_unmaps_removed_environments_when_remapping() -> None:
    tenant = tenant_with("acme", "acme-prod")
    a, b, c = environment("a"), environment("b"), environment("c")
    tenant.map_environments("acme-prod", [a, b], [], ACTOR)
    settled(tenant, a, b)

    changed = tenant.map_environments("acme-prod", [b, c], [a, b], ACTOR)

    assert sorted(env.name for env in changed) == ["a", "c"]
    assert a.installation is None
    assert b.installation == c.installation == {"tenant_id": "acme", "installation_id": "acme-prod"}
    assert tenant.installations["acme-prod"]["environments"] == ["b", "c"]
    assert [type(e).__name__ for e in a.pending_events] == ["EnvironmentUnmapped"]
    assert b.pending_events == []


def test_map_environments_records_nothing_when_mapping_is_unchanged() -> None:
    tenant = tenant_with("acme", "acme-prod")
    a = environment("a")
    tenant.map_environments("acme-prod", [a], [], ACTOR)
    settled(tenant, a)
    assert tenant.map_environments("acme-prod", [a], [a], ACTOR) == []
    assert tenant.pending_events == []
    assert a.pending_events == []


def test_map_environments_raises_not_found_when_installation_is_unknown() -> None:
    tenant = tenant_with("acme", "acme-prod")
    env = environment("a")
    with pytest.raises(NotFoundError):
        tenant.map_environments("acme-test", [env], [], ACTOR)
    assert env.installation is None


def test_environment_map_to_raises_already_mapped_when_mapped_elsewhere() -> None:
    env = environment("a")
    env.map_to("acme", "acme-prod", ACTOR)
    env.map_to("acme", "acme-prod", ACTOR)  # the same mapping again is harmless
    assert len(env.pending_events) == 1
    with pytest.raises(EnvironmentAlreadyMappedError):
        env.map_to("acme", "acme-test", ACTOR)
    assert env.installation == {"tenant_id": "acme", "installation_id": "acme-prod"}


def test_add_installation_raises_duplicate_when_tenant_already_has_it() -> None:
    tenant = tenant_with("acme", "acme-prod")
    with pytest.raises(DuplicateError):
        tenant.add_installation("acme-prod", "again", ACTOR)
    assert tenant.installations["acme-prod"]["display_name"] == "acme-prod"
    assert tenant.pending_events == []


def test_add_installation_returns_reservation_keyed_by_installation_id_when_added() -> None:
    tenant = tenant_with("acme")
    reservation = tenant.add_installation("acme-prod", "Production", ACTOR)
    assert reservation.id == type(reservation).create_id("acme-prod")
    assert reservation.tenant_id == "acme"
    assert tenant.installations == {"acme-prod": {"display_name": "Production", "environments": []}}


def test_change_details_records_nothing_when_details_are_unchanged() -> None:
    tenant = tenant_with("acme")
    assert tenant.change_details("Acme", None, ACTOR) is False
    assert tenant.pending_events == []
    assert tenant.change_details(None, "Rockets", ACTOR) is True
    assert (tenant.display_name, tenant.description) == ("Acme", "Rockets")


# --- pipeline targets -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        {"simulate": {}},
        {"simulate": {"outcome": "failed", "seconds": 0.2}},
        {"simulate": {"seconds": 0}},
        {"simulate": {"seconds": MAX_SIMULATED_SECONDS}},
        {"webhook": {"url": "https://deploy.example/hook", "secret": "s3cret"}},
        {"webhook": {"url": "http://10.0.0.1:8080/", "secret": "x"}},
        {"kubernetes": {"namespace": "shop", "deployment": "api", "container": "api"}},
    ],
)
def test_check_target_returns_target_when_it_names_one_valid_adapter(
    target: dict[str, Any],
) -> None:
    assert check_target(target) == target


def test_check_target_returns_empty_when_target_is_empty() -> None:
    assert check_target({}) == {}


@pytest.mark.parametrize(
    "target",
    [
        {"simulate": {}, "webhook": {"url": "https://x", "secret": "s"}},
        {"ftp": {}},
        {"simulate": "fast"},
        {"simulate": {"outcome": "maybe"}},
        {"simulate": {"seconds": "2"}},
        {"simulate": {"seconds": True}},
        {"simulate": {"seconds": -1}},
        {"simulate": {"seconds": MAX_SIMULATED_SECONDS + 1}},
        {"webhook": {"url": "ftp://deploy.example", "secret": "s"}},
        {"webhook": {"url": "https://deploy.example"}},
        {"webhook": {"url": "https://deploy.example", "secret": ""}},
        {"kubernetes": {"namespace": "shop"}},
        {"kubernetes": {"deployment": ""}},
    ],
)
def test_check_target_raises_invalid_target_when_target_is_malformed(
    target: dict[str, Any],
) -> None:
    with pytest.raises(InvalidTargetError) as raised:
        check_target(target)
    assert raised.value.code == "invalid_target"
    assert raised.value.kind is ErrorKind.INVALID


def test_set_pipeline_raises_invalid_target_and_keeps_pipeline_when_post_deploy_is_bad() -> None:
    app = api_app()
    app.set_pipeline("prod", {"simulate": {}}, None, None, ACTOR)
    settled(app)
    with pytest.raises(InvalidTargetError):
        app.set_pipeline("prod", {}, None, {"webhook": {"url": "nope"}}, ACTOR)
    assert app.pipelines["prod"]["target"] == {"simulate": {}}
    assert app.pending_events == []


def test_set_pipeline_records_nothing_when_pipeline_is_unchanged() -> None:
    app = api_app()
    assert app.set_pipeline("prod", {}, None, None, ACTOR) is True
    settled(app)
    assert app.set_pipeline("prod", {}, None, None, ACTOR) is False
    assert app.pending_events == []


def test_register_image_raises_duplicate_when_workflow_already_has_image() -> None:
    app = api_app()
    with pytest.raises(DuplicateError):
        app.register_image("build", "api:1", "again", ACTOR)
    assert app.workflows["build"] == ["api:1", "api:2"]
    assert app.workflows_of("api:2") == ["build", "hotfix"]


# --- tokens and roles -----------------------------------------------------------------------


def issue(role: Role, tenant_id: str | None = None, token_hash: str = "h1") -> ApiToken:
    return ApiToken.issue("ci-bot", role, tenant_id, token_hash, None, ACTOR)


def test_issue_raises_invalid_role_when_tenant_token_has_no_tenant_id() -> None:
    with pytest.raises(InvalidRoleError) as raised:
        issue(Role.TENANT)
    assert raised.value.extra == {"field": "tenant_id"}


@pytest.mark.parametrize("role", [r for r in Role if r is not Role.TENANT])
def test_issue_raises_invalid_role_when_non_tenant_token_has_tenant_id(role: Role) -> None:
    with pytest.raises(InvalidRoleError):
        issue(role, "acme")


def test_issue_raises_invalid_identifier_when_tenant_id_is_malformed() -> None:
    with pytest.raises(InvalidIdentifierError):
        issue(Role.TENANT, "Acme Corp")


def test_issue_binds_tenant_when_tenant_token_has_tenant_id() -> None:
    token = issue(Role.TENANT, "acme")
    assert (token.role, token.tenant_id, token.token_hash) == (Role.TENANT, "acme", "h1")
    assert not token.revoked


def test_reissue_raises_duplicate_when_token_is_live() -> None:
    token = issue(Role.VIEWER)
    settled(token)
    with pytest.raises(DuplicateError):
        token.reissue(Role.ADMIN, None, "h2", None, ACTOR)
    assert (token.role, token.token_hash) == (Role.VIEWER, "h1")
    assert token.pending_events == []


def test_reissue_replaces_role_and_hash_when_token_was_revoked() -> None:
    token = issue(Role.VIEWER)
    token.revoke(ACTOR)
    token.reissue(Role.TENANT, "acme", "h2", "2030-01-01T00:00:00+00:00", ACTOR)
    assert not token.revoked
    assert (token.role, token.tenant_id, token.token_hash) == (Role.TENANT, "acme", "h2")
    assert token.expires_at == "2030-01-01T00:00:00+00:00"


def test_reissue_raises_invalid_role_and_stays_revoked_when_binding_is_wrong() -> None:
    token = issue(Role.VIEWER)
    token.revoke(ACTOR)
    settled(token)
    with pytest.raises(InvalidRoleError):
        token.reissue(Role.TENANT, None, "h2", None, ACTOR)
    assert token.revoked
    assert token.pending_events == []


def test_revoke_raises_not_found_when_token_was_already_revoked() -> None:
    token = issue(Role.DEPLOYER)
    token.revoke(ACTOR)
    with pytest.raises(NotFoundError):
        token.revoke(ACTOR)


def test_parse_role_raises_invalid_role_when_role_is_unknown() -> None:
    assert parse_role("release-manager") is Role.RELEASE_MANAGER
    with pytest.raises(InvalidRoleError) as raised:
        parse_role("root")
    assert raised.value.code == "invalid_role"


P = Permission
# API.md's roles table, permission by permission.
EXPECTED_PERMISSIONS: dict[Role, set[Permission]] = {
    Role.ADMIN: set(Permission),
    Role.RELEASE_MANAGER: {P.READ_ALL, P.MANAGE_RELEASES, P.WRITE_INSTRUCTIONS, P.ROLL_OUT},
    Role.DEPLOYER: {P.READ_ALL, P.ROLL_OUT, P.REPORT_RESULTS},
    Role.DEVELOPER: {P.READ_ALL, P.MANAGE_APPLICATIONS, P.WRITE_INSTRUCTIONS},
    Role.VIEWER: {P.READ_ALL},
    Role.TENANT: set(),
}


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("permission", list(Permission))
def test_allows_grants_permission_when_roles_table_lists_it(
    role: Role, permission: Permission
) -> None:
    assert allows(role, permission) is (permission in EXPECTED_PERMISSIONS[role])


def test_role_permissions_cover_every_role_when_looked_up() -> None:
    assert set(ROLE_PERMISSIONS) == set(Role)


def test_allows_keeps_tokens_admin_only_when_checking_every_role() -> None:
    assert [r for r in Role if allows(r, Permission.MANAGE_TOKENS)] == [Role.ADMIN]
    assert [r for r in Role if allows(r, Permission.MANAGE_PLATFORM)] == [Role.ADMIN]

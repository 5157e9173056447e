"""The hub's rollout use cases on an in-memory event store.

The platform: tenant ``acme`` has installation ``acme-prod`` (environments ``eu-prod`` and
``eu-stage``) and ``acme-test`` (``sandbox``, which no application deploys to); tenant
``globex`` has ``globex-prod`` (``us-prod``). Release 2.0.0 of ``shop`` deploys ``db`` and
``api`` in stage 1, then ``web`` in stage 2. ``db`` alone has a pre-deploy step; ``api``
reaches ``us-prod`` through a webhook with a secret.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

import pytest

from application.hub import DeploymentOutcome, DeploymentTask, Hub, Outcome, QueuedDeployment
from application.log import RecordedEvent
from domain.errors import (
    DeploymentFinishedError,
    DeploymentRefusedError,
    DeploymentsRequestedError,
    InvalidReleaseStatusError,
    NotFoundError,
    ReleaseOnHoldError,
    ReleaseRescindedError,
    StageGateError,
)
from domain.rollout import Rollout, parse_deployment_id

pytestmark = pytest.mark.unit

E = TypeVar("E", bound=Exception)

ACTOR = "alice"
DEPLOYER = "sdh-deployer"
TRACK = "shop"
SEMVER = "2.0.0"
SIMULATE: dict[str, Any] = {"simulate": {"seconds": 0}}
SECRET = "hunter2-webhook-secret"
WEBHOOK: dict[str, Any] = {
    "webhook": {"url": "https://deploy.globex.example/hook", "secret": SECRET}
}
ENVIRONMENTS = {
    # name: (cluster, namespace)
    "eu-prod": ("cluster-eu", "shop"),
    "eu-stage": ("cluster-eu", "shop-stage"),
    "us-prod": ("cluster-us", "shop"),
    "sandbox": ("cluster-lab", "shop"),
}


@pytest.fixture
def hub() -> Iterator[Hub]:
    hub = Hub(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    platform(hub)
    yield hub
    hub.close()


def platform(hub: Hub) -> None:
    for name, (cluster, namespace) in ENVIRONMENTS.items():
        hub.register_environment(name, cluster, namespace, "", ACTOR)
    hub.register_tenant("acme", "Acme", "", ACTOR)
    hub.add_installation("acme", "acme-prod", "Production", ACTOR)
    hub.add_installation("acme", "acme-test", "Test", ACTOR)
    hub.map_environments("acme", "acme-prod", ["eu-prod", "eu-stage"], ACTOR)
    hub.map_environments("acme", "acme-test", ["sandbox"], ACTOR)
    hub.register_tenant("globex", "Globex", "", ACTOR)
    hub.add_installation("globex", "globex-prod", "Production", ACTOR)
    hub.map_environments("globex", "globex-prod", ["us-prod"], ACTOR)
    for app in ("db", "api", "web"):
        hub.register_application(app, "shop", "", ACTOR)
        hub.register_image(app, "build", f"{app}:2.0", "c0ffee", ACTOR)
    hub.set_pipeline("db", "eu-prod", SIMULATE, SIMULATE, None, ACTOR)
    hub.set_pipeline("api", "eu-prod", SIMULATE, None, None, ACTOR)
    hub.set_pipeline("api", "eu-stage", SIMULATE, None, None, ACTOR)
    hub.set_pipeline("api", "us-prod", WEBHOOK, None, None, ACTOR)
    hub.set_pipeline("web", "eu-prod", SIMULATE, None, None, ACTOR)
    hub.set_pipeline("web", "us-prod", SIMULATE, None, None, ACTOR)
    hub.create_track(TRACK, "", None, ACTOR)


def environment(name: str, target: dict[str, Any] = SIMULATE) -> dict[str, Any]:
    """One environment of a deployment, as the hub resolves it from ``ENVIRONMENTS``."""
    cluster, namespace = ENVIRONMENTS[name]
    return {"environment": name, "cluster": cluster, "namespace": namespace, "target": target}


def locked_release(hub: Hub, semver: str = SEMVER) -> None:
    hub.create_release(TRACK, semver, None, "", None, ACTOR)
    hub.set_stages(TRACK, semver, [["db", "api"], ["web"]], ACTOR)
    for app in ("db", "api", "web"):
        hub.set_release_application(TRACK, semver, app, None, f"{app}:2.0", None, ACTOR)
    hub.lock_requirements(TRACK, semver, ACTOR)


def ready_release(hub: Hub, semver: str = SEMVER) -> None:
    locked_release(hub, semver)
    hub.mark_ready(TRACK, semver, ACTOR)


def request(
    hub: Hub, installations: list[str], applications: list[str], phase: str = "deploy"
) -> list[QueuedDeployment]:
    return hub.request_deployments(
        TRACK, SEMVER, installations, applications, phase, ACTOR
    ).deployments


def refused(
    hub: Hub,
    error: type[E],
    installations: list[str],
    applications: list[str],
    phase: str = "deploy",
) -> E:
    """Requests deployments that must be refused with ``error``; asserts nothing was stored."""
    position = hub.last_position()
    with pytest.raises(error) as raised:
        request(hub, installations, applications, phase)
    assert hub.last_position() == position
    return raised.value


def started(hub: Hub, installations: list[str], applications: list[str]) -> list[QueuedDeployment]:
    """Requests deployments and starts them all."""
    queued = request(hub, installations, applications)
    hub.start_deployments([d.id for d in queued], DEPLOYER)
    return queued


def succeed(
    hub: Hub, deployments: Sequence[QueuedDeployment | DeploymentTask], message: str = ""
) -> int:
    """Reports every one of ``deployments`` as succeeded."""
    return hub.finish_deployments(
        [DeploymentOutcome(d.id, True, message) for d in deployments], DEPLOYER
    )


def events_after(hub: Hub, position: int) -> list[RecordedEvent]:
    return hub.read_events(position, 1000)


def rollout_of(hub: Hub, installation_id: str) -> Rollout:
    rollout: object = hub.repository.get(Rollout.create_id(TRACK, SEMVER, installation_id))
    assert isinstance(rollout, Rollout)
    return rollout


def status_of(hub: Hub, deployment: QueuedDeployment) -> str:
    return str(rollout_of(hub, deployment.installation_id).deployment(deployment.id)["status"])


def deploy_stage_one(hub: Hub) -> None:
    """db and api succeed on acme-prod."""
    succeed(hub, started(hub, ["acme-prod"], ["db", "api"]), "ok")


def refusal_of(error: DeploymentRefusedError) -> list[tuple[str, str, str]]:
    return [(r["installation_id"], r["application"], r["reason"]) for r in error.extra["refused"]]


# --- the release must be deployable ----------------------------------------------------------


def test_request_deployments_raises_invalid_status_when_release_is_draft(hub: Hub) -> None:
    locked_release(hub)

    error = refused(hub, InvalidReleaseStatusError, ["acme-prod"], ["db"])

    assert error.code == "invalid_status"


def test_request_deployments_raises_release_on_hold_when_release_is_held(hub: Hub) -> None:
    ready_release(hub)
    hub.hold(TRACK, SEMVER, "incident 42", ACTOR)

    error = refused(hub, ReleaseOnHoldError, ["acme-prod"], ["db"])

    assert error.code == "release_on_hold"
    assert "incident 42" in error.detail


def test_request_deployments_raises_release_rescinded_when_release_is_rescinded(hub: Hub) -> None:
    ready_release(hub)
    hub.rescind(TRACK, SEMVER, "broken build", ACTOR)

    error = refused(hub, ReleaseRescindedError, ["acme-prod"], ["db"])

    assert error.code == "release_rescinded"


# --- refusals: all or nothing ----------------------------------------------------------------


def test_request_deployments_lists_every_refused_pair_and_queues_nothing_when_stage_gate_is_closed(
    hub: Hub,
) -> None:
    ready_release(hub)
    position = hub.last_position()

    error = refused(hub, StageGateError, ["acme-prod", "globex-prod", "acme-test"], ["api", "web"])

    assert error.code == "stage_gate"
    assert refusal_of(error) == [
        ("acme-prod", "web", "stage_gate"),
        ("globex-prod", "web", "stage_gate"),
        ("acme-test", "api", "not_targeted"),
        ("acme-test", "web", "not_targeted"),
    ]
    assert all(r["phase"] == "deploy" for r in error.extra["refused"])
    # api could have gone to acme-prod and globex-prod, but nothing was queued.
    assert events_after(hub, position) == []
    for installation_id in ("acme-prod", "globex-prod", "acme-test"):
        assert Rollout.create_id(TRACK, SEMVER, installation_id) not in hub.repository
    assert not hub.get_release(TRACK, SEMVER).deployments_requested


def test_request_deployments_raises_deployment_refused_when_installation_is_not_targeted(
    hub: Hub,
) -> None:
    ready_release(hub)

    error = refused(hub, DeploymentRefusedError, ["acme-test"], ["api"])

    assert type(error) is DeploymentRefusedError
    assert error.code == "deployment_refused"
    assert refusal_of(error) == [("acme-test", "api", "not_targeted")]


def test_request_deployments_refuses_not_targeted_when_app_has_no_pipeline_to_installation(
    hub: Hub,
) -> None:
    """globex-prod is targeted (by api and web), but db has no pipeline there."""
    ready_release(hub)

    error = refused(hub, DeploymentRefusedError, ["globex-prod"], ["db", "api"])

    assert type(error) is DeploymentRefusedError
    assert refusal_of(error) == [("globex-prod", "db", "not_targeted")]
    assert Rollout.create_id(TRACK, SEMVER, "globex-prod") not in hub.repository


def test_request_deployments_refuses_phase_not_configured_when_app_has_no_pre_deploy(
    hub: Hub,
) -> None:
    ready_release(hub)

    error = refused(hub, DeploymentRefusedError, ["acme-prod"], ["db", "api"], phase="pre")

    assert type(error) is DeploymentRefusedError
    assert [(r["application"], r["phase"], r["reason"]) for r in error.extra["refused"]] == [
        ("api", "pre", "phase_not_configured")
    ]
    # db has a pre-deploy step: alone, it is queued with that step as its target.
    (queued,) = request(hub, ["acme-prod"], ["db"], phase="pre")
    assert queued.phase == "pre"
    tasks = hub.start_deployments([queued.id], DEPLOYER)
    assert [env["target"] for env in tasks[0].environments] == [SIMULATE]


def test_request_deployments_raises_not_found_when_application_is_unknown(hub: Hub) -> None:
    ready_release(hub)

    error = refused(hub, NotFoundError, ["acme-prod"], ["db", "ghost"])

    assert error.code == "not_found"
    assert error.extra == {"applications": ["ghost"]}


def test_request_deployments_refuses_in_progress_when_same_app_and_phase_is_queued(
    hub: Hub,
) -> None:
    ready_release(hub)
    request(hub, ["acme-prod"], ["db"])

    error = refused(hub, DeploymentRefusedError, ["acme-prod"], ["db"])

    assert refusal_of(error) == [("acme-prod", "db", "in_progress")]


# --- accepted requests -----------------------------------------------------------------------


def test_request_deployments_queues_one_deployment_per_pair_in_one_save_when_accepted(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    ready_release(hub)
    position = hub.last_position()
    saves: list[list[str]] = []
    save = hub.save

    def recording_save(*aggregates: Any, **kwargs: Any) -> Any:
        saves.append([type(a).__name__ for a in aggregates])
        return save(*aggregates, **kwargs)

    monkeypatch.setattr(hub, "save", recording_save)

    batch = hub.request_deployments(
        TRACK, SEMVER, ["acme-prod", "globex-prod"], ["api"], "deploy", ACTOR
    )

    assert saves == [["Release", "Rollout", "Rollout"]]
    assert [(d.installation_id, d.application, d.phase, d.status) for d in batch.deployments] == [
        ("acme-prod", "api", "deploy", "queued"),
        ("globex-prod", "api", "deploy", "queued"),
    ]
    for deployment in batch.deployments:
        rollout_id, number = parse_deployment_id(deployment.id)
        assert rollout_id == Rollout.create_id(TRACK, SEMVER, deployment.installation_id)
        assert number == 1
        assert status_of(hub, deployment) == "queued"
    new = events_after(hub, position)
    assert [e.position for e in new] == list(range(position + 1, position + 1 + len(new)))
    assert batch.position == new[-1].position == hub.last_position()
    assert sorted(e.type for e in new) == [
        "DeploymentQueued",
        "DeploymentQueued",
        "DeploymentsRequested",
        "RolloutStarted",
        "RolloutStarted",
    ]
    requested = next(e for e in new if e.type == "DeploymentsRequested")
    assert requested.data["count"] == 2
    assert requested.data["installations"] == ["acme-prod", "globex-prod"]


def test_deployment_queued_events_carry_environments_and_image_when_requested(hub: Hub) -> None:
    ready_release(hub)
    position = hub.last_position()

    request(hub, ["acme-prod"], ["api"])

    (queued,) = [e for e in events_after(hub, position) if e.type == "DeploymentQueued"]
    assert queued.aggregate == "rollout"
    assert queued.actor == ACTOR
    assert queued.data["application"] == "api"
    assert queued.data["phase"] == "deploy"
    assert queued.data["stage"] == 1
    assert queued.data["image"] == "api:2.0"
    assert queued.data["workflow"] == "build"
    assert queued.data["environments"] == [environment("eu-prod"), environment("eu-stage")]


def test_as_json_hides_webhook_secret_when_deployment_targets_a_webhook(hub: Hub) -> None:
    ready_release(hub)
    position = hub.last_position()

    request(hub, ["globex-prod"], ["api"])

    (queued,) = [e for e in events_after(hub, position) if e.type == "DeploymentQueued"]
    # The store keeps the secret: the deployer signs with it.
    assert queued.data["environments"][0]["target"] == WEBHOOK
    shown = queued.as_json()
    assert shown["data"]["environments"][0]["target"] == {
        "webhook": {"url": "https://deploy.globex.example/hook", "secret": "********"}
    }
    assert all(SECRET not in json.dumps(e.as_json()) for e in events_after(hub, 0))


def test_unlock_requirements_raises_deployments_requested_when_deployments_were_requested(
    hub: Hub,
) -> None:
    ready_release(hub)
    request(hub, ["acme-prod"], ["db"])
    position = hub.last_position()

    with pytest.raises(DeploymentsRequestedError) as raised:
        hub.unlock_requirements(TRACK, SEMVER, ACTOR)

    assert raised.value.code == "deployments_requested"
    assert hub.get_release(TRACK, SEMVER).locked
    assert hub.last_position() == position


# --- starting --------------------------------------------------------------------------------


def test_start_deployments_returns_tasks_with_installation_environments_when_queued(
    hub: Hub,
) -> None:
    ready_release(hub)
    queued = request(hub, ["acme-prod", "globex-prod"], ["api"])

    tasks = hub.start_deployments([d.id for d in queued], DEPLOYER)

    assert tasks == [
        DeploymentTask(
            id=queued[0].id,
            track=TRACK,
            semver=SEMVER,
            tenant_id="acme",
            installation_id="acme-prod",
            application="api",
            phase="deploy",
            image="api:2.0",
            environments=[environment("eu-prod"), environment("eu-stage")],
        ),
        DeploymentTask(
            id=queued[1].id,
            track=TRACK,
            semver=SEMVER,
            tenant_id="globex",
            installation_id="globex-prod",
            application="api",
            phase="deploy",
            image="api:2.0",
            environments=[environment("us-prod", WEBHOOK)],
        ),
    ]
    assert [status_of(hub, d) for d in queued] == ["in_progress", "in_progress"]
    assert hub.deployment_tasks([d.id for d in queued]) == tasks
    assert rollout_of(hub, "acme-prod").status == "ongoing"


def test_start_deployments_skips_deployments_when_already_started(hub: Hub) -> None:
    ready_release(hub)
    (queued,) = started(hub, ["acme-prod"], ["api"])
    position = hub.last_position()

    assert hub.start_deployments([queued.id], "another-worker") == []
    assert hub.last_position() == position


def test_start_deployments_fails_queued_deployments_with_a_message_when_release_is_held(
    hub: Hub,
) -> None:
    ready_release(hub)
    queued = request(hub, ["acme-prod"], ["db", "api"])
    hub.hold(TRACK, SEMVER, "incident 42", ACTOR)
    position = hub.last_position()

    tasks = hub.start_deployments([d.id for d in queued], DEPLOYER)

    assert tasks == []
    rollout = rollout_of(hub, "acme-prod")
    for deployment in queued:
        recorded = rollout.deployment(deployment.id)
        assert recorded["status"] == "failed"
        assert "on_hold" in recorded["message"]
    assert [e.type for e in events_after(hub, position)] == ["DeploymentFailed"] * 2
    assert rollout.status == "failed"


# --- finishing -------------------------------------------------------------------------------


def test_finish_deployments_records_outcomes_and_emits_stage_deployed_when_stage_succeeds(
    hub: Hub,
) -> None:
    ready_release(hub)
    queued = started(hub, ["acme-prod"], ["db", "api"])
    position = hub.last_position()

    last = succeed(hub, queued, "rolled out")

    new = events_after(hub, position)
    assert [e.type for e in new] == ["DeploymentSucceeded", "DeploymentSucceeded", "StageDeployed"]
    assert new[-1].data["stage"] == 1
    assert new[-1].data["applications"] == ["api", "db"]
    assert last == hub.last_position()
    rollout = rollout_of(hub, "acme-prod")
    assert [rollout.deployment(d.id)["message"] for d in queued] == ["rolled out"] * 2
    assert rollout.completed_stages == [1]
    # web (stage 2) is still to deploy here.
    assert rollout.status == "ongoing"


def test_finish_deployments_drops_a_contradicting_outcome_when_deployment_already_finished(
    hub: Hub,
) -> None:
    ready_release(hub)
    (queued,) = started(hub, ["acme-prod"], ["db"])
    succeed(hub, [queued], "ok")
    position = hub.last_position()

    last = hub.finish_deployments([DeploymentOutcome(queued.id, False, "late failure")], DEPLOYER)

    assert last == 0
    assert hub.last_position() == position
    recorded = rollout_of(hub, "acme-prod").deployment(queued.id)
    assert (recorded["status"], recorded["message"]) == ("succeeded", "ok")


def test_finish_deployments_keeps_the_first_outcome_when_one_batch_contradicts_itself(
    hub: Hub,
) -> None:
    ready_release(hub)
    (queued,) = started(hub, ["acme-prod"], ["db"])

    hub.finish_deployments(
        [
            DeploymentOutcome(queued.id, False, "first"),
            DeploymentOutcome(queued.id, True, "second"),
        ],
        DEPLOYER,
    )

    recorded = rollout_of(hub, "acme-prod").deployment(queued.id)
    assert (recorded["status"], recorded["message"]) == ("failed", "first")


def test_report_result_is_harmless_when_the_same_status_is_reported_again(hub: Hub) -> None:
    ready_release(hub)
    (queued,) = started(hub, ["globex-prod"], ["api"])
    first = hub.report_result(queued.id, True, "done", "webhook")
    position = hub.last_position()

    again = hub.report_result(queued.id, True, "done again", "webhook")

    assert first.changed
    assert again == Outcome(position=0, changed=False)
    assert hub.last_position() == position
    assert rollout_of(hub, "globex-prod").deployment(queued.id)["message"] == "done"


def test_report_result_raises_deployment_finished_when_a_different_status_is_reported(
    hub: Hub,
) -> None:
    ready_release(hub)
    (queued,) = started(hub, ["globex-prod"], ["api"])
    hub.report_result(queued.id, False, "timeout", "webhook")
    position = hub.last_position()

    with pytest.raises(DeploymentFinishedError) as raised:
        hub.report_result(queued.id, True, "it worked after all", "webhook")

    assert raised.value.code == "deployment_finished"
    assert hub.last_position() == position
    assert status_of(hub, queued) == "failed"


# --- the stage gate opens --------------------------------------------------------------------


def test_request_deployments_queues_stage_two_when_stage_one_succeeded_on_the_installation(
    hub: Hub,
) -> None:
    ready_release(hub)
    deploy_stage_one(hub)

    (queued,) = request(hub, ["acme-prod"], ["web"])

    assert (queued.installation_id, queued.application) == ("acme-prod", "web")
    succeed(hub, hub.start_deployments([queued.id], DEPLOYER))
    rollout = rollout_of(hub, "acme-prod")
    assert rollout.completed_stages == [1, 2]
    assert rollout.status == "completed"
    # The gate is per installation: on globex-prod api has not succeeded yet.
    error = refused(hub, StageGateError, ["globex-prod"], ["web"])
    assert refusal_of(error) == [("globex-prod", "web", "stage_gate")]


def test_request_deployments_keeps_the_gate_closed_when_a_stage_one_app_failed(hub: Hub) -> None:
    ready_release(hub)
    queued = started(hub, ["acme-prod"], ["db", "api"])
    hub.finish_deployments(
        [DeploymentOutcome(queued[0].id, True, ""), DeploymentOutcome(queued[1].id, False, "")],
        DEPLOYER,
    )

    refused(hub, StageGateError, ["acme-prod"], ["web"])

    # A retry of the failed app is accepted, and its success opens the gate.
    succeed(hub, started(hub, ["acme-prod"], ["api"]))
    assert [d.application for d in request(hub, ["acme-prod"], ["web"])] == ["web"]


# --- unknown deployments ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "deployment_id",
    ["not-a-deployment", "0123", f"{Rollout.create_id(TRACK, SEMVER, 'acme-prod').hex}-99"],
)
def test_deployment_use_cases_raise_not_found_when_deployment_id_is_unknown(
    hub: Hub, deployment_id: str
) -> None:
    ready_release(hub)
    request(hub, ["acme-prod"], ["db"])
    position = hub.last_position()

    with pytest.raises(NotFoundError):
        hub.report_result(deployment_id, True, "", "webhook")
    with pytest.raises(NotFoundError):
        hub.start_deployments([deployment_id], DEPLOYER)
    with pytest.raises(NotFoundError):
        hub.finish_deployments([DeploymentOutcome(deployment_id, True, "")], DEPLOYER)
    with pytest.raises(NotFoundError):
        hub.deployment_tasks([deployment_id])
    assert hub.last_position() == position

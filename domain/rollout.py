"""Rollouts: one per release and installation, holding the stage gate and every deployment.

A deployment is one application, in one phase (``pre``, ``deploy``, ``post``), to every
environment of the installation that the application has a pipeline to. An application of
stage N may deploy to the installation only once every application of the previous stage
(that targets the installation) has a succeeded ``deploy`` there.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.base import deterministic_id, stable_topics
from domain.errors import DeploymentFinishedError, NotFoundError

PHASES = ("pre", "deploy", "post")


class DeploymentStatus(StrEnum):
    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class InstallationStatus(StrEnum):
    YET_TO_TRIGGER = "yet_to_trigger"
    ONGOING = "ongoing"
    FAILED = "failed"
    COMPLETED = "completed"


IN_FLIGHT = (DeploymentStatus.QUEUED, DeploymentStatus.IN_PROGRESS)
FINISHED = (DeploymentStatus.SUCCEEDED, DeploymentStatus.FAILED)


def installation_status(
    plan: Mapping[str, int], latest: Mapping[str, Mapping[str, str]]
) -> InstallationStatus:
    """The rollout status of one installation.

    ``plan`` maps each application targeting the installation to its stage; ``latest``
    maps an application to {phase: status of its latest deployment in that phase}.
    Anything in flight is ongoing; else any latest failure is failed; else it is
    completed when every planned application's deploy succeeded.
    """
    statuses = [s for phases in latest.values() for s in phases.values()]
    if not statuses:
        return InstallationStatus.YET_TO_TRIGGER
    if any(s in IN_FLIGHT for s in statuses):
        return InstallationStatus.ONGOING
    if any(s == DeploymentStatus.FAILED for s in statuses):
        return InstallationStatus.FAILED
    if plan and all(
        latest.get(app, {}).get("deploy") == DeploymentStatus.SUCCEEDED for app in plan
    ):
        return InstallationStatus.COMPLETED
    return InstallationStatus.ONGOING


def previous_stage(plan: Mapping[str, int], stage: int) -> int | None:
    earlier = [s for s in plan.values() if s < stage]
    return max(earlier) if earlier else None


def deployment_id(rollout_id: UUID, number: int) -> str:
    """Readable back into its rollout, so a result report finds it without a lookup."""
    return f"{rollout_id.hex}-{number}"


def parse_deployment_id(value: str) -> tuple[UUID, int]:
    hex_part, _, number = value.partition("-")
    try:
        return UUID(hex=hex_part), int(number)
    except ValueError:
        raise NotFoundError(f"deployment {value!r} not found") from None


@stable_topics("rollout")
class Rollout(Aggregate):
    @staticmethod
    def create_id(track: str, semver: str, installation_id: str) -> UUID:
        return deterministic_id("rollout", track, semver, installation_id)

    @event("RolloutStarted")
    def __init__(
        self,
        track: str,
        semver: str,
        tenant_id: str,
        installation_id: str,
        plan: dict[str, int],
        actor: str,
    ) -> None:
        self.track = track
        self.semver = semver
        self.tenant_id = tenant_id
        self.installation_id = installation_id
        self.plan = dict(plan)
        self.deployments: dict[str, dict[str, Any]] = {}
        # application -> phase -> id of its latest deployment
        self.latest: dict[str, dict[str, str]] = {}
        self.completed_stages: list[int] = []

    # --- queries --------------------------------------------------------------------

    def latest_statuses(self) -> dict[str, dict[str, str]]:
        return {
            app: {phase: self.deployments[dep]["status"] for phase, dep in phases.items()}
            for app, phases in self.latest.items()
        }

    @property
    def status(self) -> InstallationStatus:
        return installation_status(self.plan, self.latest_statuses())

    def _latest_status(self, application: str, phase: str) -> str | None:
        dep = self.latest.get(application, {}).get(phase)
        return None if dep is None else str(self.deployments[dep]["status"])

    def refusal(self, application: str, phase: str) -> str | None:
        """Why (application, phase) may not deploy here now, or None when it may."""
        if application not in self.plan:
            return "not_targeted"
        if self._latest_status(application, phase) in IN_FLIGHT:
            return "in_progress"
        before = previous_stage(self.plan, self.plan[application])
        if before is not None:
            gate = [app for app, stage in self.plan.items() if stage == before]
            if any(
                self._latest_status(app, "deploy") != DeploymentStatus.SUCCEEDED for app in gate
            ):
                return "stage_gate"
        return None

    def deployment(self, deployment_id: str) -> dict[str, Any]:
        try:
            return self.deployments[deployment_id]
        except KeyError:
            raise NotFoundError(f"deployment {deployment_id!r} not found") from None

    # --- commands -------------------------------------------------------------------

    def update_plan(self, plan: dict[str, int], actor: str) -> None:
        """Pipelines and mappings can change after the rollout began; the gate follows."""
        if plan != self.plan:
            self._plan_changed(plan=dict(plan), actor=actor)

    @event("RolloutPlanChanged")
    def _plan_changed(self, plan: dict[str, int], actor: str) -> None:
        self.plan = dict(plan)
        self.completed_stages = [s for s in self.completed_stages if self._stage_complete(s)]

    def _stage_complete(self, stage: int) -> bool:
        apps = [app for app, s in self.plan.items() if s == stage]
        return bool(apps) and all(
            self._latest_status(app, "deploy") == DeploymentStatus.SUCCEEDED for app in apps
        )

    def queue(
        self,
        application: str,
        phase: str,
        workflow: str | None,
        image: str,
        environments: list[dict[str, Any]],
        actor: str,
    ) -> str:
        """Queues a deployment the caller has checked with ``refusal``; returns its id."""
        assert self.refusal(application, phase) is None, "check refusal() before queueing"
        dep_id = deployment_id(self.id, len(self.deployments) + 1)
        self._queued(
            deployment_id=dep_id,
            application=application,
            phase=phase,
            stage=self.plan[application],
            workflow=workflow,
            image=image,
            environments=environments,
            actor=actor,
        )
        return dep_id

    @event("DeploymentQueued")
    def _queued(
        self,
        deployment_id: str,
        application: str,
        phase: str,
        stage: int,
        workflow: str | None,
        image: str,
        environments: list[dict[str, Any]],
        actor: str,
    ) -> None:
        self.deployments[deployment_id] = {
            "application": application,
            "phase": phase,
            "stage": stage,
            "image": image,
            "status": DeploymentStatus.QUEUED.value,
            "environments": [dict(env) for env in environments],
            "message": "",
        }
        self.latest.setdefault(application, {})[phase] = deployment_id
        if phase == "deploy" and stage in self.completed_stages:
            # A redeploy reopens its stage until it succeeds again.
            self.completed_stages.remove(stage)

    def start(self, deployment_id: str, actor: str) -> bool:
        """Marks the deployment in progress; False when it is not queued (already taken)."""
        if self.deployment(deployment_id)["status"] != DeploymentStatus.QUEUED:
            return False
        self._started(deployment_id=deployment_id, actor=actor)
        return True

    @event("DeploymentStarted")
    def _started(self, deployment_id: str, actor: str) -> None:
        self.deployments[deployment_id]["status"] = DeploymentStatus.IN_PROGRESS.value

    def finish(self, deployment_id: str, succeeded: bool, message: str, actor: str) -> bool:
        """Records the outcome. The same outcome again changes nothing (a retried report);
        a different one is refused. Returns whether anything changed."""
        current = self.deployment(deployment_id)["status"]
        wanted = DeploymentStatus.SUCCEEDED if succeeded else DeploymentStatus.FAILED
        if current in FINISHED:
            if current == wanted:
                return False
            raise DeploymentFinishedError(
                f"deployment {deployment_id} already {current}; its outcome cannot change"
            )
        if succeeded:
            self._succeeded(deployment_id=deployment_id, message=message, actor=actor)
            self._note_completed_stage(deployment_id, actor)
        else:
            self._failed(deployment_id=deployment_id, message=message, actor=actor)
        return True

    @event("DeploymentSucceeded")
    def _succeeded(self, deployment_id: str, message: str, actor: str) -> None:
        self.deployments[deployment_id]["status"] = DeploymentStatus.SUCCEEDED.value
        self.deployments[deployment_id]["message"] = message

    @event("DeploymentFailed")
    def _failed(self, deployment_id: str, message: str, actor: str) -> None:
        self.deployments[deployment_id]["status"] = DeploymentStatus.FAILED.value
        self.deployments[deployment_id]["message"] = message

    def _note_completed_stage(self, deployment_id: str, actor: str) -> None:
        dep = self.deployments[deployment_id]
        if dep["phase"] != "deploy" or dep["stage"] in self.completed_stages:
            return
        stage = dep["stage"]
        if self._stage_complete(stage):
            apps = sorted(app for app, s in self.plan.items() if s == stage)
            self._stage_deployed(stage=stage, applications=apps, actor=actor)

    @event("StageDeployed")
    def _stage_deployed(self, stage: int, applications: list[str], actor: str) -> None:
        self.completed_stages.append(stage)

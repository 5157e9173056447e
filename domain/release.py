"""Releases: a semantic version of a track, its requirements and its lifecycle.

Lifecycle: draft → ready → (on_hold ⇄) → partially/completely released, or rescinded
for good from any status. Requirements (stages, per-application workflow, image and
instructions) are editable only while unlocked; notes and catalog data stay editable
until the release is rescinded.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.application import Application
from domain.base import deterministic_id, stable_topics
from domain.errors import (
    ApplicationNotInReleaseError,
    DeploymentsRequestedError,
    InvalidReleaseStatusError,
    InvalidStagesError,
    NoTargetedInstallationError,
    ReleaseLockedError,
    ReleaseNotLockedError,
    ReleaseOnHoldError,
    ReleaseRescindedError,
    RequirementsIncompleteError,
    UnknownImageError,
    UnknownWorkflowError,
)
from domain.ids import check_name, check_semver

MAX_STAGES = 50
MAX_APPLICATIONS = 500


class ReleaseStatus(StrEnum):
    DRAFT = "draft"
    READY = "ready"
    ON_HOLD = "on_hold"
    RESCINDED = "rescinded"
    PARTIALLY_RELEASED = "partially_released"
    COMPLETELY_RELEASED = "completely_released"


HOLDABLE = (ReleaseStatus.READY, ReleaseStatus.PARTIALLY_RELEASED)


def empty_requirement() -> dict[str, Any]:
    return {"workflow": None, "image": None, "instructions": ""}


@stable_topics("release")
class Release(Aggregate):
    @staticmethod
    def create_id(track: str, semver: str) -> UUID:
        return deterministic_id("release", track, semver)

    @classmethod
    def create(
        cls, track: str, semver: str, name: str | None, description: str, actor: str
    ) -> Release:
        check_name(track, "track")
        check_semver(semver)
        return cls(
            track=track,
            semver=semver,
            name=name or semver,
            description=description,
            stages=[],
            requirements={},
            cloned_from=None,
            actor=actor,
        )

    @classmethod
    def clone(
        cls, source: Release, semver: str, name: str | None, description: str, actor: str
    ) -> Release:
        """A new draft of the same track with the source's applications, stages,
        images and instructions (not its notes, catalog data or status)."""
        check_semver(semver)
        return cls(
            track=source.track,
            semver=semver,
            name=name or semver,
            description=description,
            stages=[list(stage) for stage in source.stages],
            requirements={app: dict(req) for app, req in source.requirements.items()},
            cloned_from=source.semver,
            actor=actor,
        )

    @event("ReleaseCreated")
    def __init__(
        self,
        track: str,
        semver: str,
        name: str,
        description: str,
        stages: list[list[str]],
        requirements: dict[str, dict[str, Any]],
        cloned_from: str | None,
        actor: str,
    ) -> None:
        self.track = track
        # Not 'version': that is the aggregate's own version number.
        self.semver = semver
        self.name = name
        self.description = description
        # Copies: the event keeps its own payload, whatever later appliers change here.
        self.stages = [list(stage) for stage in stages]
        self.requirements = {app: dict(req) for app, req in requirements.items()}
        self.cloned_from = cloned_from
        self.locked = False
        self.status = ReleaseStatus.DRAFT
        self.status_before_hold: ReleaseStatus | None = None
        self.deployments_requested = False
        self.notes = ""
        self.catalog: Any = None
        self.hold_reason = ""
        self.rescind_reason = ""

    # --- guards -----------------------------------------------------------------

    @property
    def label(self) -> str:
        return f"{self.track} {self.semver}"

    def _refuse_if_rescinded(self) -> None:
        if self.status == ReleaseStatus.RESCINDED:
            raise ReleaseRescindedError(f"release {self.label} was rescinded; it cannot change")

    def _refuse_if_locked(self) -> None:
        self._refuse_if_rescinded()
        if self.locked:
            raise ReleaseLockedError(
                f"release {self.label} has locked requirements; unlock it to edit them"
            )

    @property
    def applications(self) -> list[str]:
        return [app for stage in self.stages for app in stage]

    def stage_of(self, application: str) -> int:
        for number, stage in enumerate(self.stages, start=1):
            if application in stage:
                return number
        raise ApplicationNotInReleaseError(
            f"release {self.label} has no application {application!r}", application=application
        )

    # --- requirements -------------------------------------------------------------

    def set_stages(self, stages: Sequence[Sequence[str]], actor: str) -> bool:
        self._refuse_if_locked()
        plan = [list(stage) for stage in stages]
        if len(plan) > MAX_STAGES:
            raise InvalidStagesError(f"at most {MAX_STAGES} stages")
        if any(not stage for stage in plan):
            raise InvalidStagesError("a stage must name at least one application")
        apps = [app for stage in plan for app in stage]
        if len(apps) > MAX_APPLICATIONS:
            raise InvalidStagesError(f"at most {MAX_APPLICATIONS} applications")
        duplicates = sorted({app for app in apps if apps.count(app) > 1})
        if duplicates:
            raise InvalidStagesError(
                f"an application appears more than once: {', '.join(duplicates)}",
                applications=duplicates,
            )
        if plan == self.stages:
            return False
        self._stages_set(stages=plan, actor=actor)
        return True

    @event("StagesSet")
    def _stages_set(self, stages: list[list[str]], actor: str) -> None:
        self.stages = stages
        kept = {app for stage in stages for app in stage}
        self.requirements = {
            app: self.requirements.get(app) or empty_requirement() for app in sorted(kept)
        }

    def set_application_requirements(
        self,
        application: Application,
        workflow: str | None,
        image: str | None,
        instructions: str | None,
        actor: str,
    ) -> bool:
        """Chooses the application's workflow and image (one CI registered) and its
        release instructions; fields left out keep their value."""
        self._refuse_if_locked()
        self.stage_of(application.name)
        current = self.requirements[application.name]
        new_workflow, new_image = current["workflow"], current["image"]
        if workflow is not None and workflow not in application.workflows:
            raise UnknownWorkflowError(
                f"application {application.name!r} has no images from workflow {workflow!r}"
            )
        if image is not None:
            candidates = [workflow] if workflow is not None else application.workflows_of(image)
            if not candidates or not application.has_image(candidates[0], image):
                raise UnknownImageError(
                    f"{image!r} is not a registered image of {application.name!r}"
                    + (f" in workflow {workflow!r}" if workflow else ""),
                    field="image",
                )
            new_image = image
            new_workflow = new_workflow if new_workflow in candidates else candidates[0]
        elif workflow is not None:
            new_workflow = workflow
            if new_image is not None and not application.has_image(workflow, new_image):
                new_image = None
        new_instructions = current["instructions"] if instructions is None else instructions
        wanted = {"workflow": new_workflow, "image": new_image, "instructions": new_instructions}
        if wanted == current:
            return False
        self._application_requirements_set(application=application.name, **wanted, actor=actor)
        return True

    @event("ApplicationRequirementsSet")
    def _application_requirements_set(
        self,
        application: str,
        workflow: str | None,
        image: str | None,
        instructions: str,
        actor: str,
    ) -> None:
        self.requirements[application] = {
            "workflow": workflow,
            "image": image,
            "instructions": instructions,
        }

    def lock_requirements(self, actor: str) -> None:
        self._refuse_if_locked()
        if not self.applications:
            raise RequirementsIncompleteError(f"release {self.label} has no applications")
        missing = [app for app in self.applications if not self.requirements[app]["image"]]
        if missing:
            raise RequirementsIncompleteError(
                f"no image chosen for: {', '.join(missing)}", applications=missing
            )
        self._requirements_locked(actor=actor)

    @event("RequirementsLocked")
    def _requirements_locked(self, actor: str) -> None:
        self.locked = True

    def unlock_requirements(self, actor: str) -> None:
        self._refuse_if_rescinded()
        if not self.locked:
            raise ReleaseNotLockedError(f"release {self.label} is not locked")
        if self.deployments_requested:
            raise DeploymentsRequestedError(
                f"deployments of release {self.label} were requested; its requirements stay locked"
            )
        self._requirements_unlocked(actor=actor)

    @event("RequirementsUnlocked")
    def _requirements_unlocked(self, actor: str) -> None:
        # Ready needs locked requirements, so an unlocked release is a draft again.
        self.locked = False
        self.status = ReleaseStatus.DRAFT
        self.status_before_hold = None

    # --- lifecycle ----------------------------------------------------------------

    def mark_ready(self, targeted_installations: int, actor: str) -> None:
        self._refuse_if_rescinded()
        if not self.locked:
            raise ReleaseNotLockedError(f"lock the requirements of {self.label} first")
        if self.status != ReleaseStatus.DRAFT:
            raise InvalidReleaseStatusError(
                f"release {self.label} is {self.status}; only a draft can be marked ready"
            )
        if targeted_installations < 1:
            raise NoTargetedInstallationError(
                f"no installation is targeted by {self.label}: map an environment that one of "
                "its applications has a pipeline to onto a tenant installation"
            )
        self._marked_ready(actor=actor)

    @event("ReleaseMarkedReady")
    def _marked_ready(self, actor: str) -> None:
        self.status = ReleaseStatus.READY

    def hold(self, reason: str, actor: str) -> None:
        self._refuse_if_rescinded()
        if self.status not in HOLDABLE:
            raise InvalidReleaseStatusError(
                f"release {self.label} is {self.status}; hold applies to a ready or "
                "partially released release"
            )
        self._held(reason=reason, previous_status=str(self.status), actor=actor)

    @event("ReleaseHeld")
    def _held(self, reason: str, previous_status: str, actor: str) -> None:
        self.status_before_hold = ReleaseStatus(previous_status)
        self.status = ReleaseStatus.ON_HOLD
        self.hold_reason = reason

    def resume(self, reason: str, actor: str) -> None:
        self._refuse_if_rescinded()
        if self.status != ReleaseStatus.ON_HOLD or self.status_before_hold is None:
            raise InvalidReleaseStatusError(f"release {self.label} is {self.status}, not on hold")
        self._resumed(reason=reason, status=str(self.status_before_hold), actor=actor)

    @event("ReleaseResumed")
    def _resumed(self, reason: str, status: str, actor: str) -> None:
        self.status = ReleaseStatus(status)
        self.status_before_hold = None
        self.hold_reason = ""

    def rescind(self, reason: str, actor: str) -> None:
        self._refuse_if_rescinded()
        self._rescinded(reason=reason, previous_status=str(self.status), actor=actor)

    @event("ReleaseRescinded")
    def _rescinded(self, reason: str, previous_status: str, actor: str) -> None:
        self.status = ReleaseStatus.RESCINDED
        self.status_before_hold = None
        self.rescind_reason = reason

    # --- rollout ------------------------------------------------------------------

    def check_deployable(self) -> None:
        """Deployments are accepted only for a ready (or partially released) release."""
        self._refuse_if_rescinded()
        if self.status == ReleaseStatus.ON_HOLD:
            raise ReleaseOnHoldError(
                f"release {self.label} is on hold"
                + (f" ({self.hold_reason})" if self.hold_reason else "")
                + "; resume it to deploy"
            )
        if self.status not in HOLDABLE:
            raise InvalidReleaseStatusError(
                f"release {self.label} is {self.status}; mark it ready before deploying"
            )

    def record_deployments_requested(
        self, phase: str, installations: list[str], applications: list[str], count: int, actor: str
    ) -> None:
        """One event per accepted request: it serialises deployments with hold and rescind
        on this release's version, and keeps the requirements locked from now on."""
        self.check_deployable()
        self._deployments_requested(
            phase=phase,
            installations=installations,
            applications=applications,
            count=count,
            actor=actor,
        )

    @event("DeploymentsRequested")
    def _deployments_requested(
        self,
        phase: str,
        installations: list[str],
        applications: list[str],
        count: int,
        actor: str,
    ) -> None:
        self.deployments_requested = True

    # --- documentation ------------------------------------------------------------

    def set_notes(self, markdown: str, actor: str) -> bool:
        self._refuse_if_rescinded()
        if markdown == self.notes:
            return False
        self._notes_set(markdown=markdown, actor=actor)
        return True

    @event("ReleaseNotesSet")
    def _notes_set(self, markdown: str, actor: str) -> None:
        self.notes = markdown

    def set_catalog(self, data: Any, actor: str) -> bool:
        """``data`` must already satisfy the track's catalog schema (checked by the caller,
        which has the track)."""
        self._refuse_if_rescinded()
        if data == self.catalog:
            return False
        self._catalog_set(data=data, actor=actor)
        return True

    @event("CatalogDataSet")
    def _catalog_set(self, data: Any, actor: str) -> None:
        self.catalog = data

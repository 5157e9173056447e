"""The release lifecycle as a state machine, checked step by step against a tiny model.

The model is written from API.md's rules, not from ``domain/release.py`` (where API.md is silent,
on which workflow an image is taken from, it keeps the current workflow if that built the image,
else the first that did). For every command it predicts either the new state or the exact
refusal (error class and API ``code``). After every
step the aggregate must agree with the model, a refusal must leave it untouched, and replaying
its stored events must rebuild the same state.

``deployments_requested`` is left alone: a later feature (rollouts) sets it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from eventsourcing.application import Application as EventStore
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from domain.application import Application
from domain.errors import (
    ApplicationNotInReleaseError,
    DomainError,
    InvalidReleaseStatusError,
    InvalidStagesError,
    NoTargetedInstallationError,
    ReleaseLockedError,
    ReleaseNotLockedError,
    ReleaseRescindedError,
    RequirementsIncompleteError,
    UnknownImageError,
    UnknownWorkflowError,
)
from domain.release import Release

pytestmark = pytest.mark.unit

ACTOR = "stateful-test"

# application -> workflow -> images CI registered, in registration order.
# "api:2" is in two workflows; "worker" never had an image built, so a release with it
# can never be locked.
CATALOG: dict[str, dict[str, list[str]]] = {
    "api": {"build": ["api:1", "api:2"], "hotfix": ["api:2", "api:2-hf"]},
    "web": {"build": ["web:1"]},
    "worker": {},
}
APP_NAMES = sorted(CATALOG)
ALL_IMAGES = sorted(
    {image for workflows in CATALOG.values() for images in workflows.values() for image in images}
    | {"ghost:1"}
)
ALL_WORKFLOWS = ["build", "hotfix", "nightly"]
NOTES = ["", "# 1.0.0", "Fixes the login bug."]
CATALOG_DATA: list[Any] = [
    None,
    {"tier": "gold"},
    {"tier": "gold", "regions": ["eu", "us"]},
    [1, 2],
]
REASONS = ["", "incident 42", "customer request"]

# The refusals the model can predict, by their API code.
REFUSALS: dict[str, type[DomainError]] = {
    "release_rescinded": ReleaseRescindedError,
    "release_locked": ReleaseLockedError,
    "release_not_locked": ReleaseNotLockedError,
    "invalid_stages": InvalidStagesError,
    "application_not_in_release": ApplicationNotInReleaseError,
    "unknown_workflow": UnknownWorkflowError,
    "unknown_image": UnknownImageError,
    "requirements_incomplete": RequirementsIncompleteError,
    "invalid_status": InvalidReleaseStatusError,
    "no_targeted_installation": NoTargetedInstallationError,
}


@st.composite
def valid_plans(draw: st.DrawFn) -> list[list[str]]:
    """Distinct applications split into non-empty stages."""
    apps = draw(st.lists(st.sampled_from(APP_NAMES), unique=True, max_size=len(APP_NAMES)))
    plan: list[list[str]] = []
    for app in apps:
        if not plan or draw(st.booleans()):
            plan.append([app])
        else:
            plan[-1].append(app)
    return plan


# Mostly valid plans; the rest may hold empty stages or repeat an application.
stage_plans = st.one_of(
    valid_plans(),
    st.lists(st.lists(st.sampled_from(APP_NAMES), max_size=3), max_size=3),
)


@dataclass
class Model:
    """What API.md says a release is: a status, a lock, requirements, notes and catalog."""

    status: str = "draft"
    status_before_hold: str | None = None
    locked: bool = False
    stages: list[list[str]] = field(default_factory=list)
    requirements: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: str = ""
    catalog: Any = None

    @property
    def applications(self) -> list[str]:
        return [app for stage in self.stages for app in stage]

    def refuse_if_rescinded(self) -> str | None:
        return "release_rescinded" if self.status == "rescinded" else None

    def refuse_if_locked(self) -> str | None:
        return self.refuse_if_rescinded() or ("release_locked" if self.locked else None)


def state_of(release: Release) -> dict[str, Any]:
    return {
        "track": release.track,
        "semver": release.semver,
        "name": release.name,
        "status": str(release.status),
        "status_before_hold": (
            None if release.status_before_hold is None else str(release.status_before_hold)
        ),
        "locked": release.locked,
        "stages": release.stages,
        "requirements": release.requirements,
        "notes": release.notes,
        "catalog": release.catalog,
        "hold_reason": release.hold_reason,
        "rescind_reason": release.rescind_reason,
        "cloned_from": release.cloned_from,
    }


class ReleaseLifecycle(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.store = EventStore[Any](env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
        self.apps: dict[str, Application] = {}
        for name, workflows in CATALOG.items():
            app = Application.register(name, "shop", "", ACTOR)
            for workflow, images in workflows.items():
                for image in images:
                    app.register_image(workflow, image, commit="c0ffee", actor=ACTOR)
            self.apps[name] = app
        self.release = Release.create("shop", "1.0.0", None, "first", ACTOR)
        self.store.save(self.release)
        self.model = Model()

    # --- running a command against the prediction ----------------------------------------

    def expect(self, command: Callable[[], Any], refusal: str | None, changes: bool) -> Any:
        """Runs ``command``; it must raise exactly ``refusal`` (and change nothing) or
        succeed, adding one event when ``changes`` and none otherwise."""
        version = self.release.version
        if refusal is not None:
            with pytest.raises(DomainError) as raised:
                command()
            assert type(raised.value) is REFUSALS[refusal], raised.value
            assert raised.value.code == refusal
            assert self.release.version == version
            assert self.release.pending_events == []
            return None
        result = command()
        assert self.release.version == version + (1 if changes else 0)
        self.store.save(self.release)
        return result

    @initialize(
        progress=st.sampled_from(["draft", "staged", "complete", "locked", "ready", "on_hold"])
    )
    def start_from(self, progress: str) -> None:
        """Random steps seldom get far, so some runs first walk the happy path (each step
        checked like any other) and explore from there."""
        steps: list[Callable[[], None]] = [
            lambda: self.set_stages([["web"], ["api"]]),
            self.lock_requirements,  # refused: no image chosen yet
            lambda: self.choose("web", None, "web:1", None),
            self.lock_requirements,  # refused: 'api' still has no image
            lambda: self.choose("api", "build", "api:1", "run migrations"),
            self.lock_requirements,
            lambda: self.mark_ready(0),  # refused: nothing targeted
            lambda: self.mark_ready(1),
            lambda: self.hold("incident 42"),
        ]
        reached = {"draft": 0, "staged": 2, "complete": 5, "locked": 7, "ready": 8, "on_hold": 9}[
            progress
        ]
        for step in steps[:reached]:
            step()
        assert str(self.release.status) == {"ready": "ready", "on_hold": "on_hold"}.get(
            progress, "draft"
        )

    # --- requirements ------------------------------------------------------------------

    @rule(plan=stage_plans)
    def set_stages(self, plan: list[list[str]]) -> None:
        m = self.model
        apps = [app for stage in plan for app in stage]
        refusal = m.refuse_if_locked()
        if refusal is None and (any(not stage for stage in plan) or len(set(apps)) != len(apps)):
            refusal = "invalid_stages"
        changes = plan != m.stages
        changed = self.expect(
            lambda: self.release.set_stages(copy.deepcopy(plan), ACTOR), refusal, changes
        )
        if refusal is None:
            assert changed is changes
            empty = {"workflow": None, "image": None, "instructions": ""}
            m.requirements = {app: m.requirements.get(app, dict(empty)) for app in apps}
            m.stages = copy.deepcopy(plan)

    def choose(
        self, app: str, workflow: str | None, image: str | None, instructions: str | None
    ) -> None:
        """Sets an application's requirements; the model predicts the workflow and image
        the release ends up with, or the refusal."""
        m = self.model
        refusal = m.refuse_if_locked()
        if refusal is None and app not in m.applications:
            refusal = "application_not_in_release"
        workflows = CATALOG[app]
        wanted: dict[str, Any] = {}
        if refusal is None:
            current = m.requirements[app]
            wanted = dict(current)
            if workflow is not None and workflow not in workflows:
                refusal = "unknown_workflow"
            elif image is not None:
                # The image must be one CI registered: in the named workflow, or in any.
                holding = [
                    wf
                    for wf in workflows
                    if (workflow is None or wf == workflow) and image in workflows[wf]
                ]
                if not holding:
                    refusal = "unknown_image"
                else:
                    wanted["image"] = image
                    if wanted["workflow"] not in holding:
                        wanted["workflow"] = holding[0]
            elif workflow is not None:
                # Choosing a workflow drops an image it did not build.
                wanted["workflow"] = workflow
                if wanted["image"] is not None and wanted["image"] not in workflows[workflow]:
                    wanted["image"] = None
            if instructions is not None:
                wanted["instructions"] = instructions
        changes = refusal is None and wanted != m.requirements[app]
        changed = self.expect(
            lambda: self.release.set_application_requirements(
                self.apps[app], workflow, image, instructions, ACTOR
            ),
            refusal,
            changes,
        )
        if refusal is None:
            assert changed is changes
            m.requirements[app] = wanted

    @rule(
        app=st.sampled_from(APP_NAMES),
        workflow=st.none() | st.sampled_from(ALL_WORKFLOWS),
        image=st.none() | st.sampled_from(ALL_IMAGES),
        instructions=st.none() | st.sampled_from(["", "run migrations"]),
    )
    def set_application_requirements(
        self, app: str, workflow: str | None, image: str | None, instructions: str | None
    ) -> None:
        self.choose(app, workflow, image, instructions)

    @rule(data=st.data())
    def choose_an_image_for_an_application_of_the_release(self, data: st.DataObject) -> None:
        """Fully random choices are mostly refused for an application outside the release;
        this one aims at the release's applications, mostly with images CI really built,
        so runs get as far as locked and ready."""
        if not self.model.applications:
            return
        app = data.draw(st.sampled_from(self.model.applications))
        built = [(wf, image) for wf, images in CATALOG[app].items() for image in images]
        any_choice = st.tuples(
            st.none() | st.sampled_from(ALL_WORKFLOWS), st.sampled_from(ALL_IMAGES)
        )
        if built:
            workflow, image = data.draw(
                st.sampled_from(built).flatmap(
                    lambda pair: st.sampled_from([pair, (None, pair[1])])
                )
                | any_choice
            )
        else:
            workflow, image = data.draw(any_choice)
        self.choose(app, workflow, image, None)

    @rule()
    def lock_requirements(self) -> None:
        m = self.model
        refusal = m.refuse_if_locked()
        if refusal is None and (
            not m.applications or any(m.requirements[a]["image"] is None for a in m.applications)
        ):
            refusal = "requirements_incomplete"
        self.expect(lambda: self.release.lock_requirements(ACTOR), refusal, changes=True)
        if refusal is None:
            m.locked = True

    @rule()
    def unlock_requirements(self) -> None:
        m = self.model
        refusal = m.refuse_if_rescinded() or (None if m.locked else "release_not_locked")
        self.expect(lambda: self.release.unlock_requirements(ACTOR), refusal, changes=True)
        if refusal is None:
            # Ready needs a lock: unlocking makes the release a draft again.
            m.locked = False
            m.status = "draft"
            m.status_before_hold = None

    # --- lifecycle ---------------------------------------------------------------------

    def mark_ready(self, targeted: int) -> None:
        m = self.model
        refusal = m.refuse_if_rescinded()
        if refusal is None and not m.locked:
            refusal = "release_not_locked"
        if refusal is None and m.status != "draft":
            refusal = "invalid_status"
        if refusal is None and targeted == 0:
            refusal = "no_targeted_installation"
        self.expect(lambda: self.release.mark_ready(targeted, ACTOR), refusal, changes=True)
        if refusal is None:
            m.status = "ready"

    @rule(targeted=st.integers(min_value=1, max_value=5))
    def mark_ready_with_targeted_installations(self, targeted: int) -> None:
        self.mark_ready(targeted)

    @rule()
    def mark_ready_without_targeted_installations(self) -> None:
        self.mark_ready(0)

    @rule(reason=st.sampled_from(REASONS))
    def hold(self, reason: str) -> None:
        m = self.model
        refusal = m.refuse_if_rescinded()
        if refusal is None and m.status not in ("ready", "partially_released"):
            refusal = "invalid_status"
        self.expect(lambda: self.release.hold(reason, ACTOR), refusal, changes=True)
        if refusal is None:
            m.status_before_hold, m.status = m.status, "on_hold"
            assert self.release.hold_reason == reason

    @rule(reason=st.sampled_from(REASONS))
    def resume(self, reason: str) -> None:
        m = self.model
        refusal = m.refuse_if_rescinded()
        if refusal is None and m.status != "on_hold":
            refusal = "invalid_status"
        self.expect(lambda: self.release.resume(reason, ACTOR), refusal, changes=True)
        if refusal is None:
            assert m.status_before_hold is not None
            m.status, m.status_before_hold = m.status_before_hold, None

    @rule(reason=st.sampled_from(REASONS))
    def rescind(self, reason: str) -> None:
        m = self.model
        refusal = m.refuse_if_rescinded()
        self.expect(lambda: self.release.rescind(reason, ACTOR), refusal, changes=True)
        if refusal is None:
            m.status, m.status_before_hold = "rescinded", None
            assert self.release.rescind_reason == reason

    # --- documentation -----------------------------------------------------------------

    @rule(markdown=st.sampled_from(NOTES))
    def set_notes(self, markdown: str) -> None:
        m = self.model
        refusal = m.refuse_if_rescinded()
        changes = markdown != m.notes
        changed = self.expect(lambda: self.release.set_notes(markdown, ACTOR), refusal, changes)
        if refusal is None:
            assert changed is changes
            m.notes = markdown

    @rule(data=st.sampled_from(CATALOG_DATA))
    def set_catalog(self, data: Any) -> None:
        m = self.model
        refusal = m.refuse_if_rescinded()
        changes = data != m.catalog
        changed = self.expect(
            lambda: self.release.set_catalog(copy.deepcopy(data), ACTOR), refusal, changes
        )
        if refusal is None:
            assert changed is changes
            m.catalog = copy.deepcopy(data)

    # --- invariants --------------------------------------------------------------------

    @invariant()
    def status_and_lock_match_the_model(self) -> None:
        assert str(self.release.status) == self.model.status
        assert self.release.locked is self.model.locked
        before = self.release.status_before_hold
        assert (None if before is None else str(before)) == self.model.status_before_hold

    @invariant()
    def requirements_and_documentation_match_the_model(self) -> None:
        assert self.release.stages == self.model.stages
        assert self.release.applications == self.model.applications
        assert self.release.requirements == self.model.requirements
        assert self.release.notes == self.model.notes
        assert self.release.catalog == self.model.catalog

    @invariant()
    def a_release_past_draft_has_locked_complete_requirements(self) -> None:
        if str(self.release.status) in ("ready", "on_hold"):
            assert self.release.locked
        if self.release.locked:
            assert self.release.applications
            assert all(self.release.requirements[a]["image"] for a in self.release.applications)

    @invariant()
    def replaying_the_stored_events_rebuilds_the_same_release(self) -> None:
        assert self.release.pending_events == []
        restored = self.store.repository.get(self.release.id)
        assert isinstance(restored, Release)
        assert restored.version == self.release.version
        assert state_of(restored) == state_of(self.release)


TestReleaseLifecycle = ReleaseLifecycle.TestCase
TestReleaseLifecycle.settings = settings(max_examples=100, stateful_step_count=30, deadline=None)

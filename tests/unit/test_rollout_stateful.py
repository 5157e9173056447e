"""One installation's rollout as a state machine, checked step by step against a tiny model.

The model is written from API.md's Rollout rules and the docstring of
``installation_status``, not from ``Rollout``'s code: an application of a stage deploys only
once every application of the previous non-empty stage (of this installation's plan) has a
succeeded ``deploy``; one (application, phase) runs at a time; an outcome, once recorded,
never changes. Stage numbers are drawn with gaps, so "previous" means the previous stage
that has an application here, not ``stage - 1``.

After every step the aggregate must agree with the model, the stored events must obey the
stage gate and announce each completed stage, and replaying them must rebuild the same
rollout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.application import Application as EventStore
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)

from domain.errors import DeploymentFinishedError, NotFoundError
from domain.rollout import Rollout

pytestmark = pytest.mark.unit

ACTOR = "stateful-test"
PHASES = ["pre", "deploy", "post"]
GHOST = "ghost"  # an application of the release with no pipeline to this installation
ENVIRONMENTS = [{"environment": "prod-eu", "cluster": "c1", "namespace": "shop", "target": {}}]
IN_FLIGHT = ("queued", "in_progress")


@st.composite
def plans(draw: st.DrawFn) -> dict[str, int]:
    """2 to 4 stages with 1 to 3 applications each; stage numbers may skip (a stage whose
    applications do not reach this installation is absent from its plan)."""
    stages = sorted(
        draw(st.lists(st.integers(min_value=1, max_value=6), min_size=2, max_size=4, unique=True))
    )
    plan: dict[str, int] = {}
    for stage in stages:
        for _ in range(draw(st.integers(min_value=1, max_value=3))):
            plan[f"app{len(plan) + 1}"] = stage
    return plan


@dataclass
class Model:
    """A rollout as API.md describes it: deployments in order, each with a status."""

    plan: dict[str, int]
    # Deployment number n (1-based) is deployments[n - 1].
    deployments: list[dict[str, str]] = field(default_factory=list)

    def latest(self, app: str, phase: str) -> str | None:
        for dep in reversed(self.deployments):
            if (dep["app"], dep["phase"]) == (app, phase):
                return dep["status"]
        return None

    def apps_of(self, stage: int) -> list[str]:
        return sorted(app for app, s in self.plan.items() if s == stage)

    @property
    def stages(self) -> list[int]:
        return sorted(set(self.plan.values()))

    def stage_complete(self, stage: int) -> bool:
        return all(self.latest(app, "deploy") == "succeeded" for app in self.apps_of(stage))

    def gate_open_for(self, stage: int) -> bool:
        earlier = [s for s in self.stages if s < stage]
        return not earlier or self.stage_complete(earlier[-1])

    def refusal(self, app: str, phase: str) -> str | None:
        if app not in self.plan:
            return "not_targeted"
        if self.latest(app, phase) in IN_FLIGHT:
            return "in_progress"
        if not self.gate_open_for(self.plan[app]):
            return "stage_gate"
        return None

    def latest_statuses(self) -> dict[str, dict[str, str]]:
        result: dict[str, dict[str, str]] = {}
        for dep in self.deployments:
            result.setdefault(dep["app"], {})[dep["phase"]] = dep["status"]
        return result

    @property
    def status(self) -> str:
        latest = [s for phases in self.latest_statuses().values() for s in phases.values()]
        if not latest:
            return "yet_to_trigger"
        if any(s in IN_FLIGHT for s in latest):
            return "ongoing"
        if "failed" in latest:
            return "failed"
        if all(self.latest(app, "deploy") == "succeeded" for app in self.plan):
            return "completed"
        return "ongoing"


def state_of(rollout: Rollout) -> dict[str, Any]:
    return {
        "track": rollout.track,
        "semver": rollout.semver,
        "tenant_id": rollout.tenant_id,
        "installation_id": rollout.installation_id,
        "plan": rollout.plan,
        "deployments": rollout.deployments,
        "latest": rollout.latest,
        "completed_stages": rollout.completed_stages,
        "status": str(rollout.status),
    }


class RolloutMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.store = EventStore[UUID](env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
        self.step = 0
        # (step, stage) of every incomplete → complete transition of a stage in the model.
        self.transitions: list[tuple[int, int]] = []
        # (step, stage, applications) of every StageDeployed event the rollout emitted.
        self.stage_events: list[tuple[int, int, list[str]]] = []
        # Every emitted event, in order, as (type name, payload).
        self.history: list[tuple[str, dict[str, Any]]] = []

    @initialize(plan=plans(), data=st.data())
    def begin(self, plan: dict[str, int], data: st.DataObject) -> None:
        """Random steps seldom get past the first gate, so most runs first deploy some
        stages (each step checked like any other) and explore from there."""
        self.model = Model(plan=dict(plan))
        self.rollout = Rollout(
            track="shop",
            semver="1.0.0",
            tenant_id="acme",
            installation_id="acme-prod",
            plan=dict(plan),
            actor=ACTOR,
        )
        self.commit(complete_before=set())
        head_start = data.draw(
            st.integers(min_value=0, max_value=len(self.model.stages)), label="stages deployed"
        )
        for stage in self.model.stages[:head_start]:
            for app in self.model.apps_of(stage):
                self.queue(app, "deploy")
                number = len(self.model.deployments)
                if data.draw(st.booleans(), label="start first"):
                    self.start_number(number)
                self.finish(number, succeeded=True)

    # --- helpers ---------------------------------------------------------------------------

    def complete_stages(self) -> set[int]:
        return {s for s in self.model.stages if self.model.stage_complete(s)}

    def commit(self, complete_before: set[int]) -> None:
        """Notes what the step emitted and what the model says changed, then saves."""
        self.step += 1
        for stage in sorted(self.complete_stages() - complete_before):
            self.transitions.append((self.step, stage))
        for domain_event in self.rollout.pending_events:
            name = type(domain_event).__name__
            payload = dict(vars(domain_event))
            self.history.append((name, payload))
            if name == "StageDeployed":
                self.stage_events.append((self.step, payload["stage"], payload["applications"]))
        self.store.save(self.rollout)

    def expect_no_change(self, version: int) -> None:
        assert self.rollout.version == version
        assert self.rollout.pending_events == []

    def dep_id(self, number: int) -> str:
        return f"{self.rollout.id.hex}-{number}"

    def draw_number(self, data: st.DataObject) -> int:
        """A deployment's number; one past the last is a deployment that does not exist."""
        last = len(self.model.deployments)
        return data.draw(st.integers(min_value=1, max_value=last + 1), label="deployment")

    # --- queue -----------------------------------------------------------------------------

    def queue(self, app: str, phase: str) -> None:
        reason = self.model.refusal(app, phase)
        assert self.rollout.refusal(app, phase) == reason
        if reason is not None:
            return
        before, version = self.complete_stages(), self.rollout.version
        dep_id = self.rollout.queue(app, phase, "build", f"{app}:1", ENVIRONMENTS, ACTOR)
        self.model.deployments.append({"app": app, "phase": phase, "status": "queued"})
        assert dep_id == self.dep_id(len(self.model.deployments))
        assert self.rollout.version == version + 1
        self.commit(before)

    @rule(data=st.data(), phase=st.sampled_from(PHASES))
    def queue_any(self, data: st.DataObject, phase: str) -> None:
        """Any application of the release, this installation's or not: refused or queued."""
        app = data.draw(st.sampled_from([*sorted(self.model.plan), GHOST]), label="app")
        self.queue(app, phase)

    @rule(data=st.data())
    def queue_an_allowed_deployment(self, data: st.DataObject) -> None:
        """Random requests are mostly refused by the gate; this one moves the rollout on."""
        allowed = [
            (app, phase)
            for app in sorted(self.model.plan)
            for phase in PHASES
            if self.model.refusal(app, phase) is None
        ]
        if not allowed:
            return
        app, phase = data.draw(st.sampled_from(allowed), label="allowed")
        self.queue(app, phase)

    # --- start -----------------------------------------------------------------------------

    @rule(data=st.data())
    def start(self, data: st.DataObject) -> None:
        """Any deployment, or one that does not exist (the next number)."""
        self.start_number(self.draw_number(data))

    def start_number(self, number: int) -> None:
        version = self.rollout.version
        if number > len(self.model.deployments):
            with pytest.raises(NotFoundError):
                self.rollout.start(self.dep_id(number), ACTOR)
            self.expect_no_change(version)
            return
        dep = self.model.deployments[number - 1]
        before = self.complete_stages()
        started = self.rollout.start(self.dep_id(number), ACTOR)
        if dep["status"] != "queued":
            assert started is False
            self.expect_no_change(version)
            return
        assert started is True
        dep["status"] = "in_progress"
        assert self.rollout.version == version + 1
        self.commit(before)

    # --- finish ----------------------------------------------------------------------------

    def finish(self, number: int, succeeded: bool) -> None:
        version = self.rollout.version
        if number > len(self.model.deployments):
            with pytest.raises(NotFoundError):
                self.rollout.finish(self.dep_id(number), succeeded, "", ACTOR)
            self.expect_no_change(version)
            return
        dep = self.model.deployments[number - 1]
        wanted = "succeeded" if succeeded else "failed"
        before = self.complete_stages()
        if dep["status"] in ("succeeded", "failed"):
            if dep["status"] == wanted:
                assert self.rollout.finish(self.dep_id(number), succeeded, "again", ACTOR) is False
            else:
                with pytest.raises(DeploymentFinishedError) as raised:
                    self.rollout.finish(self.dep_id(number), succeeded, "changed mind", ACTOR)
                assert raised.value.code == "deployment_finished"
            self.expect_no_change(version)
            return
        assert self.rollout.finish(self.dep_id(number), succeeded, "done", ACTOR) is True
        dep["status"] = wanted
        emitted = [type(e).__name__ for e in self.rollout.pending_events]
        if succeeded:
            assert emitted in (["DeploymentSucceeded"], ["DeploymentSucceeded", "StageDeployed"])
        else:
            assert emitted == ["DeploymentFailed"]
        self.commit(before)

    @rule(data=st.data(), succeeded=st.booleans())
    def finish_any(self, data: st.DataObject, succeeded: bool) -> None:
        """Any deployment, finished or not (a retried or contradicting report), or one
        that does not exist."""
        self.finish(self.draw_number(data), succeeded)

    @rule(data=st.data(), succeeded=st.sampled_from([True, True, True, False]))
    def finish_an_unfinished_deployment(self, data: st.DataObject, succeeded: bool) -> None:
        """Mostly successes, so runs get past the gate into later stages."""
        unfinished = [
            n for n, dep in enumerate(self.model.deployments, 1) if dep["status"] in IN_FLIGHT
        ]
        if not unfinished:
            return
        self.finish(data.draw(st.sampled_from(unfinished), label="deployment"), succeeded)

    def teardown(self) -> None:
        if hasattr(self, "rollout"):
            completed = len(self.rollout.completed_stages)
            event(f"status {self.rollout.status}, {completed} stage(s) deployed")
            event(f"{len(self.stage_events)} StageDeployed, {len(self.transitions)} completions")

    # --- invariants ------------------------------------------------------------------------

    @invariant()
    def status_matches_the_model(self) -> None:
        assert str(self.rollout.status) == self.model.status

    @invariant()
    def deployments_match_the_model(self) -> None:
        assert self.rollout.latest_statuses() == self.model.latest_statuses()
        assert [
            (d["application"], d["phase"], d["status"]) for d in self.rollout.deployments.values()
        ] == [(d["app"], d["phase"], d["status"]) for d in self.model.deployments]
        assert list(self.rollout.deployments) == [
            self.dep_id(n) for n in range(1, len(self.model.deployments) + 1)
        ]
        for app, phase in [(app, phase) for app in [*self.model.plan, GHOST] for phase in PHASES]:
            assert self.rollout.refusal(app, phase) == self.model.refusal(app, phase)

    @invariant()
    def stage_deployed_is_emitted_when_a_stage_completes(self) -> None:
        """Each StageDeployed comes in the very step its stage's applications all reached a
        succeeded deploy, names exactly those applications, and comes once; the first time
        a stage completes always emits one. (A stage that completes again after a redeploy:
        see test_finish_emits_stage_deployed_again_when_stage_completes_after_a_redeploy.)"""
        transitions = set(self.transitions)
        for step, stage, applications in self.stage_events:
            assert (step, stage) in transitions
            assert applications == self.model.apps_of(stage)
        emitted = [(step, stage) for step, stage, _ in self.stage_events]
        assert len(emitted) == len(set(emitted))
        firsts: dict[int, int] = {}
        for step, stage in self.transitions:
            firsts.setdefault(stage, step)
        assert {(step, stage) for stage, step in firsts.items()} <= set(emitted)

    @invariant()
    def no_deployment_was_ever_queued_through_a_closed_gate(self) -> None:
        """Checked on the emitted events alone, independently of the model's refusals."""
        plan = self.model.plan
        stages = sorted(set(plan.values()))
        latest_deploy: dict[str, str] = {}  # application -> status of its latest deploy
        deploy_of: dict[str, tuple[str, str]] = {}  # deployment id -> (application, phase)
        for name, payload in self.history:
            if name == "DeploymentQueued":
                app, stage = payload["application"], payload["stage"]
                assert stage == plan[app]
                earlier = [s for s in stages if s < stage]
                if earlier:
                    gate = [a for a, s in plan.items() if s == earlier[-1]]
                    assert all(latest_deploy.get(a) == "succeeded" for a in gate), payload
                deploy_of[payload["deployment_id"]] = (app, payload["phase"])
            status = {
                "DeploymentQueued": "queued",
                "DeploymentStarted": "in_progress",
                "DeploymentSucceeded": "succeeded",
                "DeploymentFailed": "failed",
            }.get(name)
            if status is not None:
                app, phase = deploy_of[payload["deployment_id"]]
                if phase == "deploy":
                    latest_deploy[app] = status

    @invariant()
    def replaying_the_stored_events_rebuilds_the_same_rollout(self) -> None:
        assert self.rollout.pending_events == []
        restored: object = self.store.repository.get(self.rollout.id)
        assert isinstance(restored, Rollout)
        assert restored.version == self.rollout.version
        assert state_of(restored) == state_of(self.rollout)


TestRollout = RolloutMachine.TestCase
TestRollout.settings = settings(max_examples=100, stateful_step_count=40, deadline=None)


# --- examples the machine only reaches by chance -------------------------------------------


def rollout_of(plan: dict[str, int]) -> Rollout:
    return Rollout(
        track="shop",
        semver="1.0.0",
        tenant_id="acme",
        installation_id="acme-prod",
        plan=plan,
        actor=ACTOR,
    )


def deploy(rollout: Rollout, app: str, succeeded: bool = True) -> str:
    dep_id = rollout.queue(app, "deploy", "build", f"{app}:1", ENVIRONMENTS, ACTOR)
    rollout.start(dep_id, ACTOR)
    rollout.finish(dep_id, succeeded, "", ACTOR)
    return dep_id


def stage_deployed(rollout: Rollout) -> list[tuple[int, list[str]]]:
    return [
        (e.stage, e.applications)  # type: ignore[attr-defined]
        for e in rollout.pending_events
        if type(e).__name__ == "StageDeployed"
    ]


def test_refusal_gates_on_the_previous_non_empty_stage_when_stage_numbers_skip() -> None:
    rollout = rollout_of({"db": 1, "api": 3, "web": 5})
    assert rollout.refusal("web", "pre") == "stage_gate"
    deploy(rollout, "db")
    assert rollout.refusal("api", "deploy") is None
    assert rollout.refusal("web", "deploy") == "stage_gate"
    deploy(rollout, "api")
    assert rollout.refusal("web", "deploy") is None


def test_refusal_closes_the_gate_again_when_a_previous_stage_app_is_redeployed() -> None:
    rollout = rollout_of({"db": 1, "api": 2})
    deploy(rollout, "db")
    assert rollout.refusal("api", "deploy") is None
    rollout.queue("db", "deploy", "build", "db:2", ENVIRONMENTS, ACTOR)
    assert rollout.refusal("api", "deploy") == "stage_gate"


def test_finish_emits_stage_deployed_again_when_stage_completes_after_a_redeploy() -> None:
    rollout = rollout_of({"db": 1, "api": 2})
    deploy(rollout, "db")
    assert stage_deployed(rollout) == [(1, ["db"])]
    deploy(rollout, "db", succeeded=False)  # stage 1 is incomplete again: the gate closes
    assert rollout.refusal("api", "deploy") == "stage_gate"

    deploy(rollout, "db")  # and complete again

    assert stage_deployed(rollout) == [(1, ["db"]), (1, ["db"])]

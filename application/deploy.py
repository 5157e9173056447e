"""The deployer: reacts to queued deployments from the log and drives the deploy adapters.

It follows the notification log from its own checkpoint. For each batch of
``DeploymentQueued`` events it marks the deployments in progress (one save), hands them
to a bounded pool of workers, and only then advances its checkpoint. Outcomes are
collected and recorded in batches. The deployment id travels to every adapter as the
idempotency key; after a crash, deployments left queued or in progress are
reconciled: queued ones start, in-progress ones are re-checked with their adapter
(re-sent only when the adapter cannot tell), so a restart neither loses nor repeats one.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from application.hub import DeploymentOutcome, DeploymentTask, Hub
from application.log import RecordedEvent
from application.ports import Checkpoint

log = logging.getLogger("sdh.deployer")

ACTOR = "sdh-deployer"


@dataclass(frozen=True)
class TargetResult:
    status: Literal["succeeded", "failed", "pending"]
    message: str = ""


class DeployTarget(Protocol):
    """One deploy adapter (simulate, webhook, kubernetes)."""

    kind: str

    def deploy(self, task: DeploymentTask, environment: dict[str, Any]) -> TargetResult:
        """Carries out the deployment in one environment; ``task.id`` is the idempotency
        key. ``pending`` means the outcome will be reported later (webhook)."""

    def check(self, task: DeploymentTask, environment: dict[str, Any]) -> TargetResult | None:
        """Reconciliation after a restart: the outcome if the adapter can tell, else None."""


def target_kind(target: dict[str, Any] | None) -> str:
    return next(iter(target), "simulate") if target else "simulate"


class Deployer:
    name = "deployer"

    def __init__(
        self,
        hub: Hub,
        checkpoint: Checkpoint,
        targets: dict[str, DeployTarget],
        unfinished: Callable[[], Sequence[str]],
        concurrency: int = 16,
        pending_timeout: float = 600.0,
        views_reach: Callable[[int], bool] | None = None,
    ) -> None:
        self.hub = hub
        # Reconciliation reads unfinished deployments from the rollout view: it must
        # include everything up to our checkpoint first (views may run in another process).
        self.views_reach = views_reach
        self.checkpoint = checkpoint
        self.targets = targets
        self.unfinished = unfinished
        self.pending_timeout = pending_timeout
        self._position = checkpoint.load()
        self._slots = threading.BoundedSemaphore(concurrency)
        self._outcomes: queue.Queue[DeploymentOutcome] = queue.Queue()
        self._pending: dict[str, float] = {}
        self._pending_lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self.concurrency = concurrency
        self._tasks: queue.Queue[tuple[DeploymentTask, bool] | None] = queue.Queue()

    # --- follower side --------------------------------------------------------------

    def position(self) -> int:
        return self._position

    def handle(self, events: Sequence[RecordedEvent]) -> None:
        ids = [e.data["deployment_id"] for e in events if e.type == "DeploymentQueued"]
        if ids:
            self._dispatch(self.hub.start_deployments(ids, ACTOR), recheck=False)
        self.checkpoint.save(events[-1].position)
        self._position = events[-1].position

    def resume(self) -> None:
        """Taking over (at start, or from another process): continue from the stored
        checkpoint and pick up what was left queued or in progress."""
        self._position = self.checkpoint.load()
        if self.views_reach is not None and not self.views_reach(self._position):
            raise TimeoutError("the read models are behind the deployer; retrying")
        self.reconcile()

    def reconcile(self) -> int:
        """Run at start: deployments left queued or in progress by a previous process."""
        ids = list(self.unfinished())
        if not ids:
            return 0
        tasks = self.hub.start_deployments(ids, ACTOR)
        started = {t.id for t in tasks}
        self._dispatch(tasks, recheck=False)
        in_progress = [i for i in ids if i not in started]
        rechecks = self.hub.deployment_tasks(in_progress)
        self._dispatch(rechecks, recheck=True)
        log.info("reconciled", extra={"started": len(tasks), "rechecked": len(rechecks)})
        return len(tasks) + len(rechecks)

    def _dispatch(self, tasks: Sequence[DeploymentTask], recheck: bool) -> None:
        for task in tasks:
            # Blocks when every worker is busy: back-pressure instead of unbounded memory.
            self._slots.acquire()
            self._tasks.put((task, recheck))

    # --- workers --------------------------------------------------------------------

    def start(self) -> None:
        for n in range(self.concurrency):
            self._spawn(self._work, f"deploy-worker-{n}")
        self._spawn(self._record, "deploy-recorder")

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        for _ in range(self.concurrency):
            self._tasks.put(None)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _work(self) -> None:
        while True:
            item = self._tasks.get()
            if item is None:
                return
            task, recheck = item
            try:
                outcome = self.run(task, recheck)
            except Exception as error:  # an adapter bug must not kill the worker
                log.exception("deployment crashed", extra={"deployment": task.id})
                outcome = TargetResult("failed", f"deployer error: {type(error).__name__}")
            finally:
                self._slots.release()
            if outcome.status == "pending":
                with self._pending_lock:
                    self._pending[task.id] = time.monotonic() + self.pending_timeout
            else:
                self._outcomes.put(
                    DeploymentOutcome(task.id, outcome.status == "succeeded", outcome.message)
                )

    def run(self, task: DeploymentTask, recheck: bool = False) -> TargetResult:
        """Deploys to every environment of the task; the first failure fails it."""
        messages: list[str] = []
        pending = False
        for environment in task.environments:
            kind = target_kind(environment.get("target"))
            adapter = self.targets.get(kind)
            if adapter is None:
                return TargetResult("failed", f"{environment['environment']}: no {kind} adapter")
            result = adapter.check(task, environment) if recheck else None
            if result is None:
                result = adapter.deploy(task, environment)
            if result.status == "failed":
                return TargetResult("failed", f"{environment['environment']}: {result.message}")
            pending = pending or result.status == "pending"
            if result.message:
                messages.append(f"{environment['environment']}: {result.message}")
        return TargetResult("pending" if pending else "succeeded", "; ".join(messages))

    def _record(self) -> None:
        while not (self._stopping.is_set() and self._outcomes.empty()):
            batch: list[DeploymentOutcome] = []
            try:
                batch.append(self._outcomes.get(timeout=0.05))
                while len(batch) < 500:
                    batch.append(self._outcomes.get_nowait())
            except queue.Empty:
                pass
            batch += self._expired()
            if not batch:
                continue
            while True:
                try:
                    self.hub.finish_deployments(batch, ACTOR)
                    break
                except Exception:
                    # Never drop an outcome: the deployment really ran.
                    log.exception("recording outcomes failed; retrying", extra={"n": len(batch)})
                    if self._stopping.wait(1.0):
                        return

    def _expired(self) -> list[DeploymentOutcome]:
        now = time.monotonic()
        with self._pending_lock:
            due = [dep for dep, deadline in self._pending.items() if deadline <= now]
            for dep in due:
                del self._pending[dep]
        return [
            DeploymentOutcome(dep, False, f"no result reported within {self.pending_timeout:g}s")
            for dep in due
        ]

    def forget_pending(self, deployment_id: str) -> None:
        with self._pending_lock:
            self._pending.pop(deployment_id, None)

    def idle(self) -> bool:
        return self._tasks.empty() and self._outcomes.empty()

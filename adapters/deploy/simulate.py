"""The built-in simulated adapter: lets anyone run a full rollout with no cluster."""

from __future__ import annotations

import threading
from typing import Any

from application.deploy import TargetResult
from application.hub import DeploymentTask


class SimulatedDeployTarget:
    kind = "simulate"

    def __init__(self, default_seconds: float = 1.0, stopping: threading.Event | None = None):
        self.default_seconds = default_seconds
        self._stopping = stopping or threading.Event()

    def deploy(self, task: DeploymentTask, environment: dict[str, Any]) -> TargetResult:
        spec = (environment.get("target") or {}).get("simulate")
        seconds = self.default_seconds if spec is None else float(spec.get("seconds", 0.0))
        outcome = "succeeded" if spec is None else spec.get("outcome", "succeeded")
        if seconds > 0 and self._stopping.wait(seconds):
            # Left in progress: the next start reconciles it (runs it again).
            return TargetResult("pending", "interrupted: sdh was stopping")
        if outcome == "failed":
            return TargetResult("failed", f"simulated failure of {task.application} {task.phase}")
        return TargetResult("succeeded", "")

    def check(self, task: DeploymentTask, environment: dict[str, Any]) -> TargetResult | None:
        # A simulation leaves nothing behind to inspect: run it again (it is idempotent).
        return None

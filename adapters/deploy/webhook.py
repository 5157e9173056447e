"""The webhook adapter: a signed deployment request to the vendor's CI/CD.

The receiver verifies ``X-SDH-Signature-256: sha256=<hex HMAC-SHA256 of the raw body with
the pipeline's secret>``, uses ``Idempotency-Key`` (the deployment id) to ignore repeats,
and reports the outcome to ``result_url`` (``POST /api/v1/deployments/{id}/result`` with a
deployer token). It may instead answer the request itself with ``{"status": "succeeded"}``
or ``{"status": "failed", "message": ...}``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

import httpx

from application.deploy import TargetResult
from application.hub import DeploymentTask

log = logging.getLogger("sdh.deploy.webhook")


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookDeployTarget:
    kind = "webhook"

    def __init__(
        self, public_url: str, timeout: float = 10.0, attempts: int = 4, backoff: float = 0.5
    ) -> None:
        self.public_url = public_url.rstrip("/")
        self.attempts = attempts
        self.backoff = backoff
        self.client = httpx.Client(timeout=timeout, follow_redirects=False)

    def request_body(self, task: DeploymentTask, environment: dict[str, Any]) -> bytes:
        document = {
            "deployment_id": task.id,
            "release": {"track": task.track, "version": task.semver},
            "tenant_id": task.tenant_id,
            "installation_id": task.installation_id,
            "application": task.application,
            "phase": task.phase,
            "image": task.image,
            "environment": {k: environment.get(k) for k in ("environment", "cluster", "namespace")},
            "result_url": f"{self.public_url}/api/v1/deployments/{task.id}/result",
            "sent_at": datetime.now(UTC).isoformat(),
        }
        return json.dumps(document, separators=(",", ":")).encode()

    def deploy(self, task: DeploymentTask, environment: dict[str, Any]) -> TargetResult:
        spec = environment["target"]["webhook"]
        body = self.request_body(task, environment)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "sdh-deployer",
            "Idempotency-Key": task.id,
            "X-SDH-Deployment": task.id,
            "X-SDH-Signature-256": sign(spec["secret"], body),
        }
        last = ""
        for attempt in range(self.attempts):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                response = self.client.post(spec["url"], content=body, headers=headers)
            except httpx.HTTPError as error:
                last = f"could not reach {spec['url']}: {type(error).__name__}"
                continue
            if response.status_code >= 500:
                last = f"receiver answered HTTP {response.status_code}"
                continue
            if response.status_code >= 400:
                return TargetResult("failed", f"receiver refused: HTTP {response.status_code}")
            return self._answer(response)
        log.warning("webhook undeliverable", extra={"deployment": task.id, "error": last})
        return TargetResult("failed", last)

    @staticmethod
    def _answer(response: httpx.Response) -> TargetResult:
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if isinstance(answer, dict) and answer.get("status") in ("succeeded", "failed"):
            return TargetResult(answer["status"], str(answer.get("message", ""))[:2000])
        return TargetResult("pending", "")

    def check(self, task: DeploymentTask, environment: dict[str, Any]) -> TargetResult | None:
        # The receiver de-duplicates by Idempotency-Key: re-sending is the re-check.
        return None

"""The webhook deploy adapter against a real HTTP receiver, driven through the served API.

The receiver stands in for a vendor's CI/CD: it checks each request's signature with the
secret it shares with sdh (401 when it does not match), records what it got, and then
acts as its path says: ``/later`` and ``/later-failed`` accept (202) and report the outcome
afterwards to the request's ``result_url`` with a deployer token, ``/sync-failed`` answers
the outcome itself, ``/never`` accepts and never reports, ``/flaky`` fails twice with 500
before it accepts and reports success.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.helpers import JsonHandler, add_installation, http_receiver, ok, wait_until

pytestmark = pytest.mark.integration

SECRET = "s3cret"
TRACK = "/release-tracks/core"
RELEASE = TRACK + "/releases/1.0.0"
IMAGE = "registry.example/api:2.1.0"
REPORTED = "deployed by vendor CI run 77"
SYNC_FAILURE = "helm upgrade failed: timed out"


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    signature_valid: bool

    @property
    def document(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


@dataclass
class Receiver:
    url: str
    token: str = ""
    requests: list[Received] = field(default_factory=list)
    # The sdh API's answers to the receiver's own result reports.
    reports: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, request: Received) -> int:
        """Records a request; returns how many requests with its path came before it."""
        with self.lock:
            earlier = sum(1 for r in self.requests if r.path == request.path)
            self.requests.append(request)
            return earlier

    def report_later(self, result_url: str, status: str, message: str) -> None:
        def send() -> None:
            response = httpx.post(
                result_url,
                json={"status": status, "message": message},
                headers={"Authorization": f"Bearer {self.token}"},
                timeout=10,
            )
            with self.lock:
                self.reports.append(response.status_code)

        threading.Thread(target=send, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="")

    class Handler(JsonHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            valid = hmac.compare_digest(
                signature(SECRET, body), self.headers.get("X-SDH-Signature-256", "")
            )
            earlier = state.record(Received(self.path, dict(self.headers.items()), body, valid))
            if not valid:
                self.answer(401, {"error": "bad signature"})
                return
            result_url = json.loads(body)["result_url"]
            if self.path == "/sync-failed":
                self.answer(200, {"status": "failed", "message": SYNC_FAILURE})
            elif self.path == "/flaky" and earlier < 2:
                self.answer(500, {"error": "try again"})
            else:
                self.answer(202, {"accepted": True})
                if self.path in ("/later", "/flaky"):
                    state.report_later(result_url, "succeeded", REPORTED)
                elif self.path == "/later-failed":
                    state.report_later(result_url, "failed", "smoke tests failed")

    with http_receiver(Handler) as url:
        state.url = url
        yield state


@pytest.fixture
def sdh(receiver: Receiver, server: Any, api: httpx.Client, token_for: Any) -> httpx.Client:
    """The served sdh, telling receivers its own URL, with a deployer token for the
    receiver's reports; returns the deployer's client (token name ``ci-deployer``)."""
    webhook = server.runtime.deployer.targets["webhook"]
    webhook.public_url = server.url
    webhook.backoff = 0.05
    reporter = token_for("deployer", name="vendor-ci")
    receiver.token = reporter.headers["Authorization"].removeprefix("Bearer ")
    client: httpx.Client = token_for("deployer", name="ci-deployer")
    return client


def set_up(api: httpx.Client, paths: dict[str, str], secret: str = SECRET) -> None:
    """A ready release of application api; one tenant per entry of ``paths``, whose
    installation <tenant>-prod maps environment <tenant>-api, deployed by webhook to
    the receiver's path."""
    ok(api.post("/applications", json={"name": "api"}), 201)
    ok(api.post("/applications/api/images", json={"workflow": "ci", "image": IMAGE}), 201)
    for tenant, url in paths.items():
        ok(api.post("/tenants", json={"tenant_id": tenant, "display_name": tenant}), 201)
        ok(api.post("/environments", json={"name": f"{tenant}-api", "namespace": tenant}), 201)
        add_installation(api, tenant, f"{tenant}-prod", [f"{tenant}-api"], tenant)
        target = {"webhook": {"url": url, "secret": secret}}
        ok(api.put(f"/applications/api/pipelines/{tenant}-api", json={"target": target}))
    ok(api.post("/release-tracks", json={"name": "core"}), 201)
    ok(api.post(TRACK + "/releases", json={"version": "1.0.0"}), 201)
    ok(api.put(RELEASE + "/stages", json={"stages": [["api"]]}))
    ok(api.put(RELEASE + "/applications/api", json={"workflow": "ci", "image": IMAGE}))
    ok(api.post(RELEASE + "/lock"))
    ok(api.post(RELEASE + "/ready"))


def deploy(client: httpx.Client, installations: list[str]) -> dict[str, str]:
    """Requests api on the installations; returns installation_id -> deployment id."""
    body = {"installations": installations, "applications": ["api"]}
    answer = ok(client.post(RELEASE + "/deployments", json=body), 202)
    return {d["installation_id"]: d["id"] for d in answer["deployments"]}


def finished(api: httpx.Client, installations: list[str]) -> dict[str, dict[str, Any]]:
    """Waits until api finished on every installation; returns the history rows by
    installation."""

    def rows() -> dict[str, dict[str, Any]] | None:
        history = ok(api.get(RELEASE + "/history"))
        found = {r["installation_id"]: r for r in history if r["finished_at"] is not None}
        return found if set(installations) <= set(found) else None

    result: dict[str, dict[str, Any]] = wait_until(rows)
    return result


def rollout_statuses(api: httpx.Client) -> dict[str, tuple[str, str]]:
    rollout = ok(api.get(RELEASE + "/rollout"))
    return {
        i["installation_id"]: (i["status"], i["applications"][0]["status"])
        for i in rollout["installations"]
    }


def test_receiver_gets_a_signed_request_and_its_report_lands_in_rollout_when_it_accepts(
    receiver, sdh, api, server
):
    set_up(api, {"alpha": receiver.url + "/later", "beta": receiver.url + "/later-failed"})

    ids = deploy(sdh, ["alpha-prod", "beta-prod"])

    rows = finished(api, ["alpha-prod", "beta-prod"])
    assert rollout_statuses(api) == {
        "alpha-prod": ("completed", "succeeded"),
        "beta-prod": ("failed", "failed"),
    }
    assert (rows["alpha-prod"]["status"], rows["alpha-prod"]["message"]) == ("succeeded", REPORTED)
    assert (rows["beta-prod"]["status"], rows["beta-prod"]["message"]) == (
        "failed",
        "smoke tests failed",
    )
    assert wait_until(lambda: len(receiver.reports) == 2)
    assert receiver.reports == [200, 200]
    assert sorted(r.path for r in receiver.requests) == ["/later", "/later-failed"]
    for request in receiver.requests:
        tenant = "alpha" if request.path == "/later" else "beta"
        dep_id = ids[f"{tenant}-prod"]
        assert request.signature_valid
        assert request.headers["X-SDH-Signature-256"] == signature(SECRET, request.body)
        assert request.headers["Idempotency-Key"] == dep_id
        assert request.headers["Content-Type"] == "application/json"
        document = request.document
        assert document["deployment_id"] == dep_id
        assert document["image"] == IMAGE
        assert document["application"] == "api"
        assert document["phase"] == "deploy"
        assert document["release"] == {"track": "core", "version": "1.0.0"}
        assert (document["tenant_id"], document["installation_id"]) == (tenant, f"{tenant}-prod")
        assert document["environment"]["environment"] == f"{tenant}-api"
        assert document["result_url"] == f"{server.url}/api/v1/deployments/{dep_id}/result"
    assert ok(api.get(RELEASE))["status"] == "partially_released"


def test_deployment_fails_with_the_receivers_message_when_it_answers_failed_at_once(
    receiver, sdh, api
):
    set_up(api, {"alpha": receiver.url + "/sync-failed"})

    deploy(sdh, ["alpha-prod"])

    row = finished(api, ["alpha-prod"])["alpha-prod"]
    assert row["status"] == "failed"
    assert SYNC_FAILURE in row["message"]
    assert rollout_statuses(api) == {"alpha-prod": ("failed", "failed")}
    assert len(receiver.requests) == 1
    assert receiver.reports == []


def test_deployment_fails_as_refused_when_the_receiver_rejects_the_signature(receiver, sdh, api):
    set_up(api, {"alpha": receiver.url + "/later"}, secret="not-the-shared-secret")

    deploy(sdh, ["alpha-prod"])

    row = finished(api, ["alpha-prod"])["alpha-prod"]
    assert row["status"] == "failed"
    assert "receiver refused: HTTP 401" in row["message"]
    assert rollout_statuses(api) == {"alpha-prod": ("failed", "failed")}
    # sdh signed with the pipeline's secret; a 4xx is final, so it was not retried.
    (request,) = receiver.requests
    assert not request.signature_valid
    assert request.headers["X-SDH-Signature-256"] == signature(
        "not-the-shared-secret", request.body
    )
    assert receiver.reports == []


def test_deployment_fails_after_the_pending_timeout_when_the_receiver_never_reports(
    receiver, sdh, api, server
):
    server.runtime.deployer.pending_timeout = 1.0
    set_up(api, {"alpha": receiver.url + "/never"})

    (dep_id,) = deploy(sdh, ["alpha-prod"]).values()

    row = finished(api, ["alpha-prod"])["alpha-prod"]
    assert (row["id"], row["status"]) == (dep_id, "failed")
    # It waited for the report, in progress, for the whole timeout.
    waited = datetime.fromisoformat(row["finished_at"]) - datetime.fromisoformat(row["started_at"])
    assert waited.total_seconds() >= 1.0
    assert len(receiver.requests) == 1
    assert row["message"] == "no result reported within 1s"
    assert rollout_statuses(api) == {"alpha-prod": ("failed", "failed")}


def test_adapter_retries_with_the_same_idempotency_key_when_the_receiver_answers_500(
    receiver, sdh, api
):
    set_up(api, {"alpha": receiver.url + "/flaky"})

    (dep_id,) = deploy(sdh, ["alpha-prod"]).values()

    row = finished(api, ["alpha-prod"])["alpha-prod"]
    assert (row["status"], row["message"]) == ("succeeded", REPORTED)
    assert len(receiver.requests) == 3
    assert [r.headers["Idempotency-Key"] for r in receiver.requests] == [dep_id] * 3
    assert all(r.signature_valid for r in receiver.requests)
    assert len({r.document["deployment_id"] for r in receiver.requests}) == 1
    assert wait_until(lambda: receiver.reports) == [200]

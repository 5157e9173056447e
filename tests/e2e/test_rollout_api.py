"""Rollout over real HTTP: stage-gated deployments, status per installation, history.

Platform: tenants alpha and beta, each with one installation (alpha-prod, beta-prod) mapped
to its own two environments (<t>-api, <t>-web). Application api deploys to every *-api
environment, web to every *-web one. Release core 1.0.0 has api in stage 1 and web in
stage 2. Pipelines use the simulated adapter unless a test says otherwise.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.helpers import (
    JsonHandler,
    add_installation,
    assert_problem,
    event_head,
    http_receiver,
    ok,
    wait_until,
)

pytestmark = pytest.mark.e2e

TRACK = "/release-tracks/core"
RELEASE = TRACK + "/releases/1.0.0"
DEPLOY = RELEASE + "/deployments"
ROLLOUT = RELEASE + "/rollout"
HISTORY = RELEASE + "/history"
IMAGES = {"api": "registry.example/api:1.0", "web": "registry.example/web:1.0"}
A, B = "alpha-prod", "beta-prod"
SLOW = {"simulate": {"seconds": 0.3}}
FAST = {"simulate": {"seconds": 0.05}}
FAILING = {"simulate": {"outcome": "failed", "seconds": 0.1}}
HISTORY_FIELDS = {
    "id",
    "installation_id",
    "application",
    "image",
    "phase",
    "status",
    "requested_by",
    "requested_at",
    "finished_at",
    "message",
}


def set_pipeline(api: httpx.Client, app: str, environment: str, target: dict[str, Any]) -> None:
    ok(api.put(f"/applications/{app}/pipelines/{environment}", json={"target": target}))


def set_up(
    api: httpx.Client,
    tenants: tuple[str, ...] = ("alpha", "beta"),
    target: dict[str, Any] = FAST,
    targets: dict[str, dict[str, Any]] | None = None,
) -> None:
    """The platform and a ready two-stage release; ``targets`` overrides the pipeline
    target of single environments."""
    for app, image in IMAGES.items():
        ok(api.post("/applications", json={"name": app}), 201)
        ok(api.post(f"/applications/{app}/images", json={"workflow": "ci", "image": image}), 201)
    for tenant in tenants:
        ok(api.post("/tenants", json={"tenant_id": tenant, "display_name": tenant.title()}), 201)
        for app in IMAGES:
            ok(api.post("/environments", json={"name": f"{tenant}-{app}"}), 201)
            set_pipeline(
                api, app, f"{tenant}-{app}", (targets or {}).get(f"{tenant}-{app}", target)
            )
        add_installation(api, tenant, f"{tenant}-prod", [f"{tenant}-{app}" for app in IMAGES])
    ok(api.post("/release-tracks", json={"name": "core"}), 201)
    ok(api.post(TRACK + "/releases", json={"version": "1.0.0"}), 201)
    ok(api.put(RELEASE + "/stages", json={"stages": [["api"], ["web"]]}))
    for app, image in IMAGES.items():
        ok(api.put(RELEASE + f"/applications/{app}", json={"workflow": "ci", "image": image}))
    ok(api.post(RELEASE + "/lock"))
    assert ok(api.post(RELEASE + "/ready"))["status"] == "ready"


def deploy(client: httpx.Client, installations: list[str], app: str) -> list[dict[str, Any]]:
    body = {"installations": installations, "applications": [app]}
    deployments: list[dict[str, Any]] = ok(client.post(DEPLOY, json=body), 202)["deployments"]
    return deployments


def watch(
    api: httpx.Client, done: Callable[[dict[str, Any]], bool], timeout: float = 10.0
) -> list[dict[str, Any]]:
    """Polls the rollout until ``done``; returns every snapshot seen, the last one done."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while True:
        seen.append(ok(api.get(ROLLOUT)))
        if done(seen[-1]):
            return seen
        assert time.monotonic() < deadline, f"rollout never settled: {seen[-1]}"
        time.sleep(0.05)


def app_status(rollout: dict[str, Any], installation: str, app: str) -> str:
    inst = next(i for i in rollout["installations"] if i["installation_id"] == installation)
    return str(next(a for a in inst["applications"] if a["application"] == app)["status"])


def statuses(rollout: dict[str, Any]) -> dict[str, str]:
    return {i["installation_id"]: i["status"] for i in rollout["installations"]}


def finished(*pairs: tuple[str, str]) -> Callable[[dict[str, Any]], bool]:
    return lambda r: all(app_status(r, i, a) in ("succeeded", "failed") for i, a in pairs)


def release_statuses(api: httpx.Client) -> tuple[str, str, str]:
    """The release status as GET release, GET track and the rollout report it."""
    track = ok(api.get(TRACK))
    return (
        ok(api.get(RELEASE))["status"],
        next(r["status"] for r in track["releases"] if r["version"] == "1.0.0"),
        ok(api.get(ROLLOUT))["release_status"],
    )


def test_release_rolls_out_stage_by_stage_when_deployed_to_two_tenants(api, token_for):
    set_up(api, target=SLOW)
    deployer = token_for("deployer", name="ci-deployer")

    before = ok(api.get(ROLLOUT))
    assert before["release_status"] == "ready"
    assert [
        (
            i["tenant_id"],
            i["installation_id"],
            i["status"],
            [(a["application"], a["stage"], a["status"], a["image"]) for a in i["applications"]],
        )
        for i in before["installations"]
    ] == [
        (
            tenant,
            f"{tenant}-prod",
            "yet_to_trigger",
            [("api", 1, "not_deployed", IMAGES["api"]), ("web", 2, "not_deployed", IMAGES["web"])],
        )
        for tenant in ("alpha", "beta")
    ]

    # Stage 2 before stage 1: refused as a whole, every refused pair listed, nothing stored.
    head = event_head(api)
    refused = assert_problem(
        deployer.post(DEPLOY, json={"installations": [A, B], "applications": ["web"]}),
        409,
        "stage_gate",
    )
    assert sorted(
        (r["installation_id"], r["application"], r["phase"], r["reason"])
        for r in refused["refused"]
    ) == [(A, "web", "deploy", "stage_gate"), (B, "web", "deploy", "stage_gate")]
    assert event_head(api) == head
    assert ok(api.get(HISTORY)) == []
    assert ok(api.get(ROLLOUT)) == before

    # Stage 1: one queued deployment per pair, then ongoing until both succeed.
    stage1 = deploy(deployer, [A, B], "api")
    assert sorted(
        (d["installation_id"], d["application"], d["phase"], d["status"]) for d in stage1
    ) == [
        (A, "api", "deploy", "queued"),
        (B, "api", "deploy", "queued"),
    ]
    assert len({d["id"] for d in stage1}) == 2
    seen = watch(api, finished((A, "api"), (B, "api")))
    assert statuses(seen[0]) == {A: "ongoing", B: "ongoing"}
    assert {app_status(seen[0], A, "api"), app_status(seen[0], B, "api")} <= {
        "queued",
        "in_progress",
    }
    after_stage1 = seen[-1]
    for installation in (A, B):
        assert app_status(after_stage1, installation, "api") == "succeeded"
        assert app_status(after_stage1, installation, "web") == "not_deployed"
    # Stage 2 is still to do everywhere: no installation is complete yet.
    assert statuses(after_stage1) == {A: "ongoing", B: "ongoing"}
    assert release_statuses(api) == ("partially_released",) * 3

    # Stage 2, failing on beta only.
    set_pipeline(api, "web", "beta-web", FAILING)
    stage2 = deploy(deployer, [A, B], "web")
    seen = watch(api, finished((A, "web"), (B, "web")))
    assert "ongoing" in statuses(seen[0]).values()
    assert statuses(seen[-1]) == {A: "completed", B: "failed"}
    assert (app_status(seen[-1], A, "web"), app_status(seen[-1], B, "web")) == (
        "succeeded",
        "failed",
    )
    assert release_statuses(api) == ("partially_released",) * 3

    history = ok(api.get(HISTORY))
    assert all(set(row) >= HISTORY_FIELDS for row in history)
    # Newest first: stage 2's deployments, then stage 1's.
    assert {r["id"] for r in history[:2]} == {d["id"] for d in stage2}
    assert {r["id"] for r in history[2:]} == {d["id"] for d in stage1}
    assert [r["requested_at"] for r in history] == sorted(
        (r["requested_at"] for r in history), reverse=True
    )
    rows = {(r["installation_id"], r["application"]): r for r in history}
    assert set(rows) == {(A, "api"), (B, "api"), (A, "web"), (B, "web")}
    for (installation, app), row in rows.items():
        assert row["image"] == IMAGES[app]
        assert row["phase"] == "deploy"
        assert row["requested_by"] == "ci-deployer"
        assert row["finished_at"] is not None
        assert row["finished_at"] >= row["requested_at"]
        expected = "failed" if (installation, app) == (B, "web") else "succeeded"
        assert row["status"] == expected
    assert "simulated failure of web deploy" in rows[(B, "web")]["message"]
    assert rows[(A, "web")]["message"] == ""

    # A retry on beta with a working pipeline completes the release everywhere.
    set_pipeline(api, "web", "beta-web", FAST)
    retry = deploy(deployer, [B], "web")
    seen = watch(api, lambda r: statuses(r)[B] != "ongoing" and app_status(r, B, "web") != "failed")
    assert statuses(seen[-1]) == {A: "completed", B: "completed"}
    assert release_statuses(api) == ("completely_released",) * 3
    history = ok(api.get(HISTORY))
    assert len(history) == 5
    assert (history[0]["id"], history[0]["status"]) == (retry[0]["id"], "succeeded")
    assert [
        r["status"] for r in history if r["installation_id"] == B and r["application"] == "web"
    ] == [
        "succeeded",
        "failed",
    ]


def test_rollout_lists_only_matching_installations_when_filtered_by_status_or_tenant(api):
    set_up(api, tenants=("alpha", "beta", "gamma"), targets={"beta-api": FAILING})
    deploy(api, [A, B], "api")
    watch(api, finished((A, "api"), (B, "api")))

    def listed(**params: str) -> list[str]:
        found = ok(api.get(ROLLOUT, params=params))
        return [i["installation_id"] for i in found["installations"]]

    assert listed() == [A, B, "gamma-prod"]
    assert listed(status="failed") == [B]
    assert listed(status="ongoing") == [A]
    assert listed(status="yet_to_trigger") == ["gamma-prod"]
    assert listed(status="completed") == []
    assert listed(tenant_id="beta") == [B]
    assert listed(tenant_id="beta", status="ongoing") == []
    assert listed(tenant_id="gamma", status="yet_to_trigger") == ["gamma-prod"]
    assert listed(tenant_id="nobody") == []
    assert_problem(api.get(ROLLOUT, params={"status": "done"}), 422, "invalid_input")
    failed = ok(api.get(HISTORY, params={"installation_id": B}))
    assert [(r["installation_id"], r["status"]) for r in failed] == [(B, "failed")]


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda api: api.post(RELEASE + "/unlock"), "invalid_status"),
        (
            lambda api: api.post(RELEASE + "/rescind", json={"reason": "bad build"}),
            "release_rescinded",
        ),
    ],
    ids=["draft", "rescinded"],
)
def test_deployments_are_refused_and_nothing_changes_when_release_is_not_deployable(
    api, make, code
):
    set_up(api)
    ok(make(api))
    head, rollout = event_head(api), ok(api.get(ROLLOUT))

    assert_problem(
        api.post(DEPLOY, json={"installations": [A], "applications": ["api"]}), 409, code
    )

    assert event_head(api) == head
    assert ok(api.get(ROLLOUT)) == rollout
    assert ok(api.get(HISTORY)) == []


def test_deployments_are_refused_with_the_reason_per_pair_when_an_installation_is_not_targeted(
    api,
):
    set_up(api)
    ok(api.post("/tenants", json={"tenant_id": "gamma", "display_name": "Gamma"}), 201)
    ok(
        api.post(
            "/tenants/gamma/installations",
            json={"installation_id": "gamma-prod", "display_name": "Gamma Prod"},
        ),
        201,
    )
    head, rollout = event_head(api), ok(api.get(ROLLOUT))

    refused = assert_problem(
        api.post(
            DEPLOY, json={"installations": [A, "gamma-prod", "nowhere"], "applications": ["api"]}
        ),
        409,
        "deployment_refused",
    )
    assert sorted(
        (r["installation_id"], r["application"], r["phase"], r["reason"])
        for r in refused["refused"]
    ) == [
        ("gamma-prod", "api", "deploy", "not_targeted"),
        ("nowhere", "api", "deploy", "not_targeted"),
    ]
    # No pre-deploy step is configured: that phase cannot run anywhere.
    refused = assert_problem(
        api.post(DEPLOY, json={"installations": [A], "applications": ["api"], "phase": "pre"}),
        409,
        "deployment_refused",
    )
    assert [r["reason"] for r in refused["refused"]] == ["phase_not_configured"]
    # All or nothing: alpha-prod, which could deploy, was not queued either.
    assert event_head(api) == head
    assert ok(api.get(ROLLOUT)) == rollout
    assert ok(api.get(HISTORY)) == []


def test_deployment_request_is_invalid_and_changes_nothing_when_body_is_malformed(api):
    set_up(api)
    head = event_head(api)

    for body in (
        {"installations": [A], "applications": ["api"], "phase": "rollback"},
        {"installations": [], "applications": ["api"]},
        {"installations": [A], "applications": []},
        {"installations": [A]},
        {"installations": A, "applications": ["api"]},
        {"installations": [A], "applications": ["api"], "force": True},
        {"installations": ["Not An Id"], "applications": ["api"]},
    ):
        assert_problem(api.post(DEPLOY, json=body), 422, "invalid_input")

    assert event_head(api) == head
    assert ok(api.get(HISTORY)) == []


def test_unlock_is_refused_when_a_deployment_of_the_release_was_requested(api):
    set_up(api)
    deploy(api, [A], "api")
    watch(api, finished((A, "api")))
    head = event_head(api)

    assert_problem(api.post(RELEASE + "/unlock"), 409, "deployments_requested")

    assert event_head(api) == head
    release = ok(api.get(RELEASE))
    assert (release["locked"], release["status"]) == (True, "partially_released")


def test_release_returns_to_partially_released_when_resumed_after_a_hold(api):
    set_up(api)
    deploy(api, [A], "api")
    watch(api, finished((A, "api")))
    assert release_statuses(api) == ("partially_released",) * 3

    assert ok(api.post(RELEASE + "/hold", json={"reason": "incident 42"}))["status"] == "on_hold"
    assert release_statuses(api) == ("on_hold",) * 3
    head, rollout = event_head(api), ok(api.get(ROLLOUT))
    held = assert_problem(
        api.post(DEPLOY, json={"installations": [B], "applications": ["api"]}),
        409,
        "release_on_hold",
    )
    assert "incident 42" in held["detail"]
    assert event_head(api) == head
    assert ok(api.get(ROLLOUT)) == rollout
    assert len(ok(api.get(HISTORY))) == 1

    assert ok(api.post(RELEASE + "/resume"))["status"] == "partially_released"
    assert release_statuses(api) == ("partially_released",) * 3
    deploy(api, [B], "api")


def test_only_rollout_roles_may_request_deployments_when_tokens_differ(api, token_for):
    set_up(api)
    body = {"installations": [A], "applications": ["api"]}
    for role, tenant in (("developer", None), ("viewer", None), ("tenant", "alpha")):
        assert_problem(token_for(role, tenant_id=tenant).post(DEPLOY, json=body), 403, "forbidden")
    assert ok(api.get(HISTORY)) == []

    deploy(token_for("deployer", name="dep-1"), [A], "api")
    deploy(token_for("release-manager", name="rm-1"), [B], "api")

    history = ok(api.get(HISTORY))
    assert sorted((r["installation_id"], r["requested_by"]) for r in history) == [
        (A, "dep-1"),
        (B, "rm-1"),
    ]


def test_tenant_sees_only_its_own_installation_when_reading_rollout_and_history(api, token_for):
    set_up(api)
    by_installation = {d["installation_id"]: d["id"] for d in deploy(api, [A, B], "api")}
    watch(api, finished((A, "api"), (B, "api")))
    alpha = token_for("tenant", tenant_id="alpha")

    own = alpha.get(ROLLOUT)
    assert [i["installation_id"] for i in ok(own)["installations"]] == [A]
    assert ok(own)["release_status"] == "partially_released"
    history = alpha.get(HISTORY)
    assert [(r["installation_id"], r["id"]) for r in ok(history)] == [(A, by_installation[A])]
    assert ok(alpha.get(f"/deployments/{by_installation[A]}"))["installation_id"] == A

    asked_for_beta = [
        alpha.get(ROLLOUT, params={"tenant_id": "beta"}),
        alpha.get(HISTORY, params={"installation_id": B}),
    ]
    for response in asked_for_beta:
        assert response.status_code in (200, 404), response.text
        if response.status_code == 200:
            found = response.json()
            assert (found["installations"] if isinstance(found, dict) else found) == []
    assert_problem(alpha.get(f"/deployments/{by_installation[B]}"), 404, "not_found")
    for response in (own, history, *asked_for_beta):
        assert "beta" not in response.text
    assert_problem(
        alpha.post(DEPLOY, json={"installations": [A], "applications": ["web"]}), 403, "forbidden"
    )


@pytest.fixture
def accepting_receiver() -> Iterator[tuple[str, list[str]]]:
    """An external deployer that accepts every request (202) and reports nothing itself;
    yields its URL and the Idempotency-Key of each request it got."""
    keys: list[str] = []

    class Handler(JsonHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            keys.append(self.headers.get("Idempotency-Key", ""))
            self.answer(202, {"accepted": True})

    with http_receiver(Handler) as url:
        yield f"{url}/deploy", keys


def test_reported_result_is_recorded_once_when_a_deployer_reports_it(
    accepting_receiver, api, token_for
):
    url, keys = accepting_receiver
    set_up(api, targets={"alpha-api": {"webhook": {"url": url, "secret": "k"}}})
    (queued,) = deploy(api, [A], "api")
    result = f"/deployments/{queued['id']}/result"
    wait_until(lambda: keys)
    assert keys == [queued["id"]]
    # Accepted by the receiver, and waiting for its report.
    wait_until(lambda: ok(api.get(f"/deployments/{queued['id']}"))["status"] == "in_progress")

    for role in ("viewer", "release-manager", "developer"):
        assert_problem(token_for(role).post(result, json={"status": "succeeded"}), 403, "forbidden")
    reporter = token_for("deployer", name="vendor-ci")
    for body in (
        {"status": "done"},
        {},
        {"status": "succeeded", "extra": 1},
        {"status": "succeeded", "message": "x" * 2001},
    ):
        assert_problem(reporter.post(result, json=body), 422, "invalid_input")
    assert ok(api.get(f"/deployments/{queued['id']}"))["status"] == "in_progress"

    reported = ok(reporter.post(result, json={"status": "succeeded", "message": "rolled by CI"}))
    assert (reported["id"], reported["status"]) == (queued["id"], "succeeded")
    rollout = ok(api.get(ROLLOUT))
    assert app_status(rollout, A, "api") == "succeeded"
    assert app_status(rollout, B, "api") == "not_deployed"
    (row,) = ok(api.get(HISTORY))
    assert (row["status"], row["message"]) == ("succeeded", "rolled by CI")
    assert row["finished_at"] is not None

    head = event_head(api)
    again = ok(reporter.post(result, json={"status": "succeeded", "message": "rolled by CI"}))
    assert again["status"] == "succeeded"
    assert event_head(api) == head
    assert_problem(reporter.post(result, json={"status": "failed"}), 409, "deployment_finished")
    assert event_head(api) == head
    assert ok(api.get(HISTORY)) == [row]

    rollout_hex = queued["id"].split("-")[0]
    for unknown in ("0" * 32 + "-1", f"{rollout_hex}-99", "nope"):
        assert_problem(
            reporter.post(f"/deployments/{unknown}/result", json={"status": "succeeded"}),
            404,
            "not_found",
        )
    assert event_head(api) == head

"""The platform catalog over real HTTP: environments, applications, pipelines, images."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.helpers import assert_problem, event_head

pytestmark = pytest.mark.e2e


def make_app(api: httpx.Client, name: str, **extra: str) -> None:
    response = api.post("/applications", json={"name": name, **extra})
    assert response.status_code == 201, response.text


def as_shown(target: dict[str, Any] | None, shown: dict[str, Any] | None) -> dict[str, Any] | None:
    """``target`` as a reader may see it: a webhook secret is either echoed or masked
    (never another value); everything else must be exactly what was stored."""
    if target is None or shown is None or "webhook" not in target or "webhook" not in shown:
        return target
    secret = shown["webhook"].get("secret")
    assert secret in (target["webhook"]["secret"], "********"), secret
    return {"webhook": {**target["webhook"], "secret": secret}}


def make_env(api: httpx.Client, name: str) -> None:
    response = api.post("/environments", json={"name": name})
    assert response.status_code == 201, response.text


# --- environments -------------------------------------------------------------------


def test_environment_is_created_with_its_fields_when_posted(api):
    created = api.post(
        "/environments",
        json={"name": "prod-eu", "cluster": "k8s-eu", "namespace": "apps", "description": "EU"},
    )

    assert created.status_code == 201, created.text
    body = created.json()
    assert body["name"] == "prod-eu"
    assert body["cluster"] == "k8s-eu"
    assert body["namespace"] == "apps"
    assert body["description"] == "EU"
    assert body["installation"] is None
    fetched = api.get("/environments/prod-eu")
    assert fetched.status_code == 200
    assert fetched.json()["cluster"] == "k8s-eu"


def test_environments_are_listed_with_unmapped_installation_when_several_exist(api):
    for name in ("b-env", "a-env", "c-env"):
        make_env(api, name)

    listed = api.get("/environments")

    assert listed.status_code == 200
    assert [e["name"] for e in listed.json()] == ["a-env", "b-env", "c-env"]
    assert all(e["installation"] is None for e in listed.json())


def test_environment_creation_is_refused_as_duplicate_when_name_exists(api):
    make_env(api, "staging")
    head = event_head(api)

    again = api.post("/environments", json={"name": "staging", "cluster": "other"})

    assert_problem(again, 409, "duplicate")
    assert event_head(api) == head
    assert api.get("/environments/staging").json()["cluster"] == ""


# --- applications -------------------------------------------------------------------


def test_application_is_created_and_listed_when_posted(api):
    created = api.post(
        "/applications", json={"name": "billing", "project": "fin", "description": "Invoices"}
    )

    assert created.status_code == 201, created.text
    assert created.json()["name"] == "billing"
    assert created.json()["project"] == "fin"
    assert created.json()["pipelines"] == []
    assert [a["name"] for a in api.get("/applications").json()] == ["billing"]


def test_application_creation_is_refused_as_duplicate_when_name_exists(api):
    make_app(api, "billing")
    head = event_head(api)

    assert_problem(api.post("/applications", json={"name": "billing"}), 409, "duplicate")
    assert event_head(api) == head


def test_applications_are_filtered_when_search_is_given(api):
    make_app(api, "billing", project="finance")
    make_app(api, "billing-ui", description="front end")
    make_app(api, "search-svc", description="Full-text BILLING lookups")
    make_app(api, "auth")

    def names(term: str) -> list[str]:
        response = api.get("/applications", params={"search": term})
        assert response.status_code == 200, response.text
        return [a["name"] for a in response.json()]

    assert names("billing") == ["billing", "billing-ui", "search-svc"]
    assert names("FINANCE") == ["billing"]
    assert names("auth") == ["auth"]
    assert names("nothing-like-it") == []
    assert names("%") == []
    assert len(api.get("/applications").json()) == 4


# --- pipelines ----------------------------------------------------------------------


CONTRACT_TARGETS = {
    "simulate": {"simulate": {"outcome": "failed", "seconds": 0.2}},
    "webhook": {"webhook": {"url": "https://hooks.example/deploy", "secret": "s3cr3t"}},
    "kubernetes": {
        "kubernetes": {"namespace": "apps", "deployment": "billing", "container": "main"}
    },
    "empty": {},
}


def test_pipeline_is_stored_on_the_application_when_target_has_a_contract_shape(api):
    make_env(api, "prod")
    for kind, target in CONTRACT_TARGETS.items():
        make_app(api, f"app-{kind}")

        put = api.put(f"/applications/app-{kind}/pipelines/prod", json={"target": target})

        assert put.status_code == 200, f"{kind}: {put.text}"
        assert put.json()["environment"] == "prod"
        assert put.json()["target"] == as_shown(target, put.json()["target"]), kind
        pipelines = api.get(f"/applications/app-{kind}").json()["pipelines"]
        assert [p["environment"] for p in pipelines] == ["prod"], kind
        assert pipelines[0]["target"] == as_shown(target, pipelines[0]["target"]), kind


def test_pipeline_keeps_pre_and_post_deploy_when_given(api):
    make_app(api, "billing")
    make_env(api, "prod")
    body = {
        "target": {"kubernetes": {"deployment": "billing"}},
        "pre_deploy": {"webhook": {"url": "http://pre.example", "secret": "x"}},
        "post_deploy": {"simulate": {}},
    }

    put = api.put("/applications/billing/pipelines/prod", json=body)

    assert put.status_code == 200, put.text
    pipeline = api.get("/applications/billing").json()["pipelines"][0]
    assert pipeline["target"] == {"kubernetes": {"deployment": "billing"}}
    pre = {"webhook": {"url": "http://pre.example", "secret": "x"}}
    assert pipeline["pre_deploy"] == as_shown(pre, pipeline["pre_deploy"])
    assert "simulate" in pipeline["post_deploy"]


def test_pipeline_is_replaced_when_put_again(api):
    make_app(api, "billing")
    make_env(api, "prod")
    api.put("/applications/billing/pipelines/prod", json={"target": {"simulate": {}}})

    again = api.put(
        "/applications/billing/pipelines/prod",
        json={"target": {"kubernetes": {"deployment": "billing"}}},
    )

    assert again.status_code == 200, again.text
    pipelines = api.get("/applications/billing").json()["pipelines"]
    assert len(pipelines) == 1
    assert pipelines[0]["target"] == {"kubernetes": {"deployment": "billing"}}


INVALID_PIPELINES = {
    "simulate+webhook": {
        "target": {"simulate": {}, "webhook": {"url": "https://x.example", "secret": "s"}}
    },
    "simulate+kubernetes": {"target": {"simulate": {}, "kubernetes": {"deployment": "d"}}},
    "two-in-pre-deploy": {
        "target": {},
        "pre_deploy": {"simulate": {}, "kubernetes": {"deployment": "d"}},
    },
    "unknown-adapter": {"target": {"ansible": {}}},
    "bad-outcome": {"target": {"simulate": {"outcome": "maybe"}}},
    "negative-seconds": {"target": {"simulate": {"seconds": -1}}},
    "non-http-webhook": {"target": {"webhook": {"url": "ftp://x.example", "secret": "s"}}},
    "webhook-without-secret": {"target": {"webhook": {"url": "https://x.example"}}},
    "kubernetes-without-deployment": {"target": {"kubernetes": {"namespace": "apps"}}},
    "target-not-an-object": {"target": "simulate"},
}


def test_pipeline_is_refused_with_422_when_target_is_invalid(api):
    make_app(api, "billing")
    make_env(api, "prod")
    head = event_head(api)

    for case, body in INVALID_PIPELINES.items():
        put = api.put("/applications/billing/pipelines/prod", json=body)

        assert put.status_code == 422, f"{case}: {put.text}"
        assert_problem(put, 422)
    assert event_head(api) == head
    assert api.get("/applications/billing").json()["pipelines"] == []


def test_pipeline_is_refused_with_404_when_environment_or_application_is_unknown(api):
    make_app(api, "billing")
    make_env(api, "prod")
    head = event_head(api)

    assert_problem(
        api.put("/applications/billing/pipelines/nowhere", json={"target": {}}), 404, "not_found"
    )
    assert_problem(
        api.put("/applications/ghost/pipelines/prod", json={"target": {}}), 404, "not_found"
    )
    assert event_head(api) == head
    assert api.get("/applications/billing").json()["pipelines"] == []


# --- images -------------------------------------------------------------------------


def test_images_are_listed_newest_first_when_registered(api):
    make_app(api, "billing")
    for tag in ("1", "2", "3"):
        created = api.post(
            "/applications/billing/images",
            json={"workflow": "main", "image": f"reg/billing:{tag}", "commit": f"c{tag}"},
        )
        assert created.status_code == 201, created.text
        assert created.json()["image"] == f"reg/billing:{tag}"

    listed = api.get("/applications/billing/images")

    assert listed.status_code == 200
    assert [i["image"] for i in listed.json()] == [
        "reg/billing:3",
        "reg/billing:2",
        "reg/billing:1",
    ]
    assert [i["commit"] for i in listed.json()] == ["c3", "c2", "c1"]
    assert {i["workflow"] for i in listed.json()} == {"main"}


def test_images_are_filtered_when_workflow_is_given(api):
    make_app(api, "billing")
    for workflow, image in [("main", "r/b:1"), ("hotfix", "r/b:1-hf"), ("main", "r/b:2")]:
        response = api.post(
            "/applications/billing/images", json={"workflow": workflow, "image": image}
        )
        assert response.status_code == 201, response.text

    main = api.get("/applications/billing/images", params={"workflow": "main"}).json()
    hotfix = api.get("/applications/billing/images", params={"workflow": "hotfix"}).json()
    other = api.get("/applications/billing/images", params={"workflow": "nightly"}).json()

    assert [i["image"] for i in main] == ["r/b:2", "r/b:1"]
    assert [i["image"] for i in hotfix] == ["r/b:1-hf"]
    assert other == []
    make_app(api, "auth")
    assert api.get("/applications/auth/images").json() == []


def test_images_are_refused_with_404_when_application_is_unknown(api):
    head = event_head(api)

    assert_problem(api.get("/applications/ghost/images"), 404, "not_found")
    assert_problem(
        api.post("/applications/ghost/images", json={"workflow": "main", "image": "r/g:1"}),
        404,
        "not_found",
    )
    assert event_head(api) == head


def test_image_is_refused_as_duplicate_when_registered_twice_for_a_workflow(api):
    make_app(api, "billing")
    first = api.post("/applications/billing/images", json={"workflow": "main", "image": "r/b:1"})
    assert first.status_code == 201
    head = event_head(api)

    again = api.post(
        "/applications/billing/images", json={"workflow": "main", "image": "r/b:1", "commit": "x"}
    )

    assert_problem(again, 409, "duplicate")
    assert event_head(api) == head
    listed = api.get("/applications/billing/images").json()
    assert [(i["image"], i["commit"]) for i in listed] == [("r/b:1", "")]

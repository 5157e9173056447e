"""The product documentation's walkthrough (SEED.md), step by step over real HTTP.

Platform: environments doc1 and doc2; tenant flareup123 ("flareup.xyz") with installation
flareup-prod-1 ("Flareup Prod") mapped to both. Release hub: track numero, release 1.0.0
with a payments backend released before a checkout frontend, images chosen, instructions
written, requirements locked, marked ready; then 1.0.1 cloned from it.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.helpers import ok

pytestmark = pytest.mark.e2e

RELEASE = "/release-tracks/numero/releases/1.0.0"
PAYMENTS = ("payments-ci", "registry.example/payments:2024.06.1")
CHECKOUT = ("checkout-ci", "registry.example/checkout:2024.06.3")
PAYMENTS_NOTES = "## Payments\n\n1. Run `migrate --to 42`\n2. Rotate the *gateway* key"
CHECKOUT_NOTES = "Enable the `new-cart` flag after rollout."


def set_up_platform(api: httpx.Client) -> None:
    for env in ("doc1", "doc2"):
        created = ok(api.post("/environments", json={"name": env, "cluster": "prod-eu"}), 201)
        assert created["installation"] is None
    tenant = ok(
        api.post(
            "/tenants",
            json={"tenant_id": "flareup123", "display_name": "flareup.xyz", "description": "d"},
        ),
        201,
    )
    assert (tenant["tenant_id"], tenant["display_name"]) == ("flareup123", "flareup.xyz")
    ok(
        api.post(
            "/tenants/flareup123/installations",
            json={"installation_id": "flareup-prod-1", "display_name": "Flareup Prod"},
        ),
        201,
    )
    mapped = ok(
        api.put(
            "/tenants/flareup123/installations/flareup-prod-1/environments",
            json={"environments": ["doc1", "doc2"]},
        )
    )
    assert sorted(mapped["environments"]) == ["doc1", "doc2"]
    environments = {e["name"]: e["installation"] for e in ok(api.get("/environments"))}
    assert environments == {
        "doc1": {"tenant_id": "flareup123", "installation_id": "flareup-prod-1"},
        "doc2": {"tenant_id": "flareup123", "installation_id": "flareup-prod-1"},
    }

    for app, env, (workflow, image), project in (
        ("payments", "doc1", PAYMENTS, "backend"),
        ("checkout", "doc2", CHECKOUT, "frontend"),
    ):
        ok(api.post("/applications", json={"name": app, "project": project}), 201)
        ok(api.put(f"/applications/{app}/pipelines/{env}", json={"target": {}}))
        # An older build first: the release must pick the one it is told to.
        ok(
            api.post(
                f"/applications/{app}/images", json={"workflow": workflow, "image": image + "-rc"}
            ),
            201,
        )
        ok(
            api.post(f"/applications/{app}/images", json={"workflow": workflow, "image": image}),
            201,
        )


def walk_to_ready(api: httpx.Client) -> dict[str, Any]:
    set_up_platform(api)
    track = ok(api.post("/release-tracks", json={"name": "numero", "description": "HRMS"}), 201)
    assert (track["name"], track["releases"]) == ("numero", [])

    created = ok(api.post("/release-tracks/numero/releases", json={"version": "1.0.0"}), 201)
    assert (created["version"], created["name"], created["status"]) == ("1.0.0", "1.0.0", "draft")

    staged = ok(api.put(RELEASE + "/stages", json={"stages": [["payments"], ["checkout"]]}))
    assert [[a["application"] for a in stage] for stage in staged["stages"]] == [
        ["payments"],
        ["checkout"],
    ]
    for app, (workflow, image) in (("payments", PAYMENTS), ("checkout", CHECKOUT)):
        choices = ok(api.get(f"/applications/{app}/images", params={"workflow": workflow}))
        assert [c["image"] for c in choices] == [image, image + "-rc"]  # newest first
        ok(api.put(RELEASE + f"/applications/{app}", json={"workflow": workflow, "image": image}))
    ok(api.put(RELEASE + "/applications/payments", json={"instructions": PAYMENTS_NOTES}))
    ok(api.put(RELEASE + "/applications/checkout", json={"instructions": CHECKOUT_NOTES}))

    locked = ok(api.post(RELEASE + "/lock"))
    assert (locked["locked"], locked["status"]) == (True, "draft")
    return ok(api.post(RELEASE + "/ready"))


def test_release_is_ready_with_its_requirements_when_seed_walkthrough_is_followed(api):
    ready = walk_to_ready(api)

    release = ok(api.get(RELEASE))
    assert release == ready
    assert release["version"] == "1.0.0"
    assert release["name"] == "1.0.0"
    assert release["status"] == "ready"
    assert release["locked"] is True
    assert release["stages"] == [
        [
            {
                "application": "payments",
                "workflow": PAYMENTS[0],
                "image": PAYMENTS[1],
                "instructions": PAYMENTS_NOTES,
            }
        ],
        [
            {
                "application": "checkout",
                "workflow": CHECKOUT[0],
                "image": CHECKOUT[1],
                "instructions": CHECKOUT_NOTES,
            }
        ],
    ]
    track = ok(api.get("/release-tracks/numero"))
    assert [(r["version"], r["name"], r["status"]) for r in track["releases"]] == [
        ("1.0.0", "1.0.0", "ready")
    ]
    listed = ok(api.get("/release-tracks"))
    assert [(t["name"], [r["status"] for r in t["releases"]]) for t in listed] == [
        ("numero", ["ready"])
    ]


def test_clone_is_an_unlocked_draft_with_the_source_requirements_when_cloned_from_ready(api):
    walk_to_ready(api)
    ok(api.put(RELEASE + "/notes", json={"markdown": "# Numero 1.0.0"}))
    source = ok(api.get(RELEASE))

    cloned = ok(
        api.post(
            "/release-tracks/numero/releases",
            json={"version": "1.0.1", "clone_from": "1.0.0", "description": "patch"},
        ),
        201,
    )

    assert cloned == ok(api.get("/release-tracks/numero/releases/1.0.1"))
    assert (cloned["version"], cloned["name"], cloned["description"]) == ("1.0.1", "1.0.1", "patch")
    assert cloned["stages"] == source["stages"]
    assert (cloned["status"], cloned["locked"], cloned["notes"]) == ("draft", False, "")
    assert cloned["catalog"] is None
    # The source is untouched and both are listed.
    assert ok(api.get(RELEASE)) == source
    track = ok(api.get("/release-tracks/numero"))
    assert sorted((r["version"], r["name"], r["status"]) for r in track["releases"]) == [
        ("1.0.0", "1.0.0", "ready"),
        ("1.0.1", "1.0.1", "draft"),
    ]
    # The clone's requirements are its own: editing them leaves 1.0.0 as it was.
    ok(api.put("/release-tracks/numero/releases/1.0.1/stages", json={"stages": [["checkout"]]}))
    assert ok(api.get(RELEASE))["stages"] == source["stages"]
    # And it goes through the same gates to become ready.
    ok(
        api.put(
            "/release-tracks/numero/releases/1.0.1/stages",
            json={"stages": [["payments"], ["checkout"]]},
        )
    )
    ok(
        api.put(
            "/release-tracks/numero/releases/1.0.1/applications/payments",
            json={"workflow": PAYMENTS[0], "image": PAYMENTS[1]},
        )
    )
    ok(api.post("/release-tracks/numero/releases/1.0.1/lock"))
    assert ok(api.post("/release-tracks/numero/releases/1.0.1/ready"))["status"] == "ready"


def test_tenant_sees_the_walkthrough_release_when_it_targets_flareup(api, token_for):
    walk_to_ready(api)
    ok(api.put(RELEASE + "/notes", json={"markdown": "# Numero 1.0.0"}))
    flareup = token_for("tenant", tenant_id="flareup123")

    seen = ok(flareup.get(RELEASE))
    assert seen["notes"] == "# Numero 1.0.0"
    assert [a["instructions"] for stage in seen["stages"] for a in stage] == [
        PAYMENTS_NOTES,
        CHECKOUT_NOTES,
    ]
    assert [t["name"] for t in ok(flareup.get("/release-tracks"))] == ["numero"]

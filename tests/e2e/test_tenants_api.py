"""Tenants, installations and environment mappings over real HTTP."""

from __future__ import annotations

import httpx
import pytest

from tests.helpers import assert_problem, event_head

pytestmark = pytest.mark.e2e


def make_tenant(api: httpx.Client, tenant_id: str, *installations: str) -> None:
    created = api.post("/tenants", json={"tenant_id": tenant_id, "display_name": tenant_id.upper()})
    assert created.status_code == 201, created.text
    for installation_id in installations:
        added = api.post(
            f"/tenants/{tenant_id}/installations",
            json={"installation_id": installation_id, "display_name": installation_id},
        )
        assert added.status_code == 201, added.text


def make_envs(api: httpx.Client, *names: str) -> None:
    for name in names:
        created = api.post("/environments", json={"name": name})
        assert created.status_code == 201, created.text


def map_envs(api: httpx.Client, tenant_id: str, installation_id: str, *envs: str) -> httpx.Response:
    return api.put(
        f"/tenants/{tenant_id}/installations/{installation_id}/environments",
        json={"environments": list(envs)},
    )


def env_owners(api: httpx.Client) -> dict[str, dict[str, str] | None]:
    listed = api.get("/environments")
    assert listed.status_code == 200, listed.text
    return {e["name"]: e["installation"] for e in listed.json()}


def installation_envs(api: httpx.Client, tenant_id: str) -> dict[str, list[str]]:
    tenant = api.get(f"/tenants/{tenant_id}")
    assert tenant.status_code == 200, tenant.text
    return {i["installation_id"]: sorted(i["environments"]) for i in tenant.json()["installations"]}


# --- tenants ------------------------------------------------------------------------


def test_tenant_is_created_and_readable_when_posted(api):
    created = api.post(
        "/tenants",
        json={"tenant_id": "acme", "display_name": "ACME Corp", "description": "anvils"},
    )

    assert created.status_code == 201, created.text
    assert created.json()["tenant_id"] == "acme"
    assert created.json()["display_name"] == "ACME Corp"
    assert created.json()["description"] == "anvils"
    assert created.json()["installations"] == []
    fetched = api.get("/tenants/acme")
    assert fetched.status_code == 200
    assert fetched.json()["display_name"] == "ACME Corp"
    assert [t["tenant_id"] for t in api.get("/tenants").json()] == ["acme"]


def test_tenant_is_refused_with_422_when_tenant_id_breaks_the_pattern(api):
    head = event_head(api)

    for bad in ("Bad_ID", "a" * 64, "-leading-dash", "", "UPPER", "with space", "dot.ted", "ü"):
        response = api.post("/tenants", json={"tenant_id": bad, "display_name": "X"})
        assert_problem(response, 422)

    assert event_head(api) == head
    assert api.get("/tenants").json() == []
    longest = "a" + "-" * 61 + "z"
    created = api.post("/tenants", json={"tenant_id": longest, "display_name": "Long"})
    assert created.status_code == 201, created.text
    assert api.get(f"/tenants/{longest}").status_code == 200


def test_tenant_is_refused_as_duplicate_when_tenant_id_exists(api):
    make_tenant(api, "acme")
    head = event_head(api)

    again = api.post("/tenants", json={"tenant_id": "acme", "display_name": "Other"})

    assert_problem(again, 409, "duplicate")
    assert event_head(api) == head
    assert api.get("/tenants/acme").json()["display_name"] == "ACME"


def test_tenant_display_name_changes_when_patched(api):
    api.post("/tenants", json={"tenant_id": "acme", "display_name": "ACME", "description": "d"})

    patched = api.patch("/tenants/acme", json={"display_name": "ACME Corporation"})

    assert patched.status_code == 200, patched.text
    assert patched.json()["display_name"] == "ACME Corporation"
    assert patched.json()["description"] == "d"
    assert api.get("/tenants/acme").json()["display_name"] == "ACME Corporation"


def test_tenant_patch_is_refused_with_422_when_it_names_tenant_id(api):
    make_tenant(api, "acme")
    head = event_head(api)

    for body in ({"tenant_id": "other"}, {"display_name": "New", "tenant_id": "acme"}):
        assert_problem(api.patch("/tenants/acme", json=body), 422)

    assert event_head(api) == head
    assert api.get("/tenants/acme").json()["display_name"] == "ACME"
    assert_problem(api.get("/tenants/other"), 404)


# --- installations ------------------------------------------------------------------


def test_installation_is_listed_on_its_tenant_when_added(api):
    make_tenant(api, "acme")

    added = api.post(
        "/tenants/acme/installations", json={"installation_id": "acme-prod", "display_name": "P"}
    )

    assert added.status_code == 201, added.text
    assert added.json()["installation_id"] == "acme-prod"
    assert added.json()["display_name"] == "P"
    assert added.json()["environments"] == []
    assert installation_envs(api, "acme") == {"acme-prod": []}


def test_installation_is_refused_as_duplicate_when_its_id_exists_in_any_tenant(api):
    make_tenant(api, "acme", "shared-id")
    make_tenant(api, "globex")
    head = event_head(api)

    body = {"installation_id": "shared-id", "display_name": "again"}
    assert_problem(api.post("/tenants/globex/installations", json=body), 409, "duplicate")
    assert_problem(api.post("/tenants/acme/installations", json=body), 409, "duplicate")

    assert event_head(api) == head
    assert installation_envs(api, "globex") == {}
    assert installation_envs(api, "acme") == {"shared-id": []}


# --- environment mappings -----------------------------------------------------------


def test_environments_show_their_installation_when_mapped(api):
    make_tenant(api, "acme", "acme-prod")
    make_envs(api, "eu-1", "eu-2", "spare")

    mapped = map_envs(api, "acme", "acme-prod", "eu-2", "eu-1")

    assert mapped.status_code == 200, mapped.text
    assert sorted(mapped.json()["environments"]) == ["eu-1", "eu-2"]
    owner = {"tenant_id": "acme", "installation_id": "acme-prod"}
    assert env_owners(api) == {"eu-1": owner, "eu-2": owner, "spare": None}
    assert api.get("/environments/eu-1").json()["installation"] == owner
    assert installation_envs(api, "acme") == {"acme-prod": ["eu-1", "eu-2"]}


def test_mapping_is_replaced_exactly_when_put_again(api):
    make_tenant(api, "acme", "acme-prod")
    make_envs(api, "eu-1", "eu-2", "eu-3")
    assert map_envs(api, "acme", "acme-prod", "eu-1", "eu-2").status_code == 200

    remapped = map_envs(api, "acme", "acme-prod", "eu-2", "eu-3")

    assert remapped.status_code == 200, remapped.text
    owner = {"tenant_id": "acme", "installation_id": "acme-prod"}
    assert env_owners(api) == {"eu-1": None, "eu-2": owner, "eu-3": owner}
    assert installation_envs(api, "acme") == {"acme-prod": ["eu-2", "eu-3"]}


def test_mapping_is_emptied_when_put_with_no_environments(api):
    make_tenant(api, "acme", "acme-prod")
    make_envs(api, "eu-1")
    assert map_envs(api, "acme", "acme-prod", "eu-1").status_code == 200

    emptied = map_envs(api, "acme", "acme-prod")

    assert emptied.status_code == 200, emptied.text
    assert env_owners(api) == {"eu-1": None}
    assert installation_envs(api, "acme") == {"acme-prod": []}


def test_freed_environment_can_be_mapped_elsewhere_when_unmapped(api):
    make_tenant(api, "acme", "acme-prod")
    make_tenant(api, "globex", "globex-prod")
    make_envs(api, "eu-1")
    assert map_envs(api, "acme", "acme-prod", "eu-1").status_code == 200
    assert map_envs(api, "acme", "acme-prod").status_code == 200

    moved = map_envs(api, "globex", "globex-prod", "eu-1")

    assert moved.status_code == 200, moved.text
    assert env_owners(api) == {"eu-1": {"tenant_id": "globex", "installation_id": "globex-prod"}}
    assert installation_envs(api, "acme") == {"acme-prod": []}
    assert installation_envs(api, "globex") == {"globex-prod": ["eu-1"]}


def test_mapping_changes_nothing_when_put_twice_with_the_same_environments(api):
    make_tenant(api, "acme", "acme-prod")
    make_envs(api, "eu-1")
    assert map_envs(api, "acme", "acme-prod", "eu-1").status_code == 200
    head = event_head(api)

    again = map_envs(api, "acme", "acme-prod", "eu-1", "eu-1")

    assert again.status_code == 200, again.text
    assert again.json()["environments"] == ["eu-1"]
    assert event_head(api) == head


def test_mapping_is_refused_and_changes_nothing_when_an_environment_belongs_to_another_tenant(
    api,
):
    make_tenant(api, "acme", "acme-prod")
    make_tenant(api, "globex", "globex-prod")
    make_envs(api, "eu-1", "eu-2", "us-1", "us-2")
    assert map_envs(api, "acme", "acme-prod", "eu-1", "eu-2").status_code == 200
    assert map_envs(api, "globex", "globex-prod", "us-1").status_code == 200
    head = event_head(api)

    # us-2 is free and us-1 would be unmapped, but eu-1 belongs to acme: nothing may change.
    refused = map_envs(api, "globex", "globex-prod", "us-2", "eu-1")

    assert_problem(refused, 409, "environment_already_mapped")
    assert "eu-1" in refused.json()["detail"]
    assert event_head(api) == head
    acme = {"tenant_id": "acme", "installation_id": "acme-prod"}
    globex = {"tenant_id": "globex", "installation_id": "globex-prod"}
    assert env_owners(api) == {"eu-1": acme, "eu-2": acme, "us-1": globex, "us-2": None}
    assert installation_envs(api, "acme") == {"acme-prod": ["eu-1", "eu-2"]}
    assert installation_envs(api, "globex") == {"globex-prod": ["us-1"]}


def test_mapping_is_refused_when_environment_belongs_to_a_sibling_installation(api):
    make_tenant(api, "acme", "acme-prod", "acme-test")
    make_envs(api, "eu-1")
    assert map_envs(api, "acme", "acme-prod", "eu-1").status_code == 200
    head = event_head(api)

    assert_problem(map_envs(api, "acme", "acme-test", "eu-1"), 409, "environment_already_mapped")

    assert event_head(api) == head
    assert installation_envs(api, "acme") == {"acme-prod": ["eu-1"], "acme-test": []}
    assert env_owners(api) == {"eu-1": {"tenant_id": "acme", "installation_id": "acme-prod"}}


def test_mapping_is_refused_with_404_and_changes_nothing_when_an_environment_is_unknown(api):
    make_tenant(api, "acme", "acme-prod")
    make_envs(api, "eu-1", "eu-2")
    assert map_envs(api, "acme", "acme-prod", "eu-1").status_code == 200
    head = event_head(api)

    refused = map_envs(api, "acme", "acme-prod", "eu-2", "ghost")

    assert_problem(refused, 404, "not_found")
    assert event_head(api) == head
    owner = {"tenant_id": "acme", "installation_id": "acme-prod"}
    assert env_owners(api) == {"eu-1": owner, "eu-2": None}


def test_mapping_is_refused_with_404_when_tenant_or_installation_is_unknown(api):
    make_tenant(api, "acme", "acme-prod")
    make_tenant(api, "globex", "globex-prod")
    make_envs(api, "eu-1")
    head = event_head(api)

    assert_problem(map_envs(api, "nobody", "acme-prod", "eu-1"), 404, "not_found")
    assert_problem(map_envs(api, "acme", "nothing", "eu-1"), 404, "not_found")
    # An installation of another tenant is not found under this one.
    assert_problem(map_envs(api, "acme", "globex-prod", "eu-1"), 404, "not_found")

    assert event_head(api) == head
    assert env_owners(api) == {"eu-1": None}

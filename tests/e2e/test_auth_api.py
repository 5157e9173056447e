"""Authentication, the Roles table of API.md, tokens and tenant scoping over real HTTP."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN
from tests.helpers import all_events, assert_problem, event_head, post_all

pytestmark = pytest.mark.e2e


@pytest.fixture
def world(api: httpx.Client) -> None:
    """A tenant with an installation, an environment, an application and a track."""
    post_all(
        api,
        ("/tenants", {"tenant_id": "acme", "display_name": "ACME"}),
        ("/tenants", {"tenant_id": "globex", "display_name": "Globex"}),
        ("/tenants/acme/installations", {"installation_id": "acme-prod", "display_name": "P"}),
        ("/environments", {"name": "eu-1"}),
        ("/applications", {"name": "billing"}),
        ("/release-tracks", {"name": "stable"}),
    )


Call = tuple[str, str, dict[str, Any] | None]

READS: list[Call] = [
    ("GET", "/environments", None),
    ("GET", "/environments/eu-1", None),
    ("GET", "/applications", None),
    ("GET", "/applications/billing", None),
    ("GET", "/applications/billing/images", None),
    ("GET", "/tenants", None),
    ("GET", "/tenants/acme", None),
    ("GET", "/release-tracks", None),
    ("GET", "/release-tracks/stable", None),
    ("GET", "/events", None),
]
PLATFORM_WRITES: list[Call] = [
    ("POST", "/environments", {"name": "new-env"}),
    ("POST", "/tenants", {"tenant_id": "new-tenant", "display_name": "N"}),
    ("PATCH", "/tenants/acme", {"display_name": "Renamed"}),
    ("POST", "/tenants/acme/installations", {"installation_id": "acme-2", "display_name": "2"}),
    ("PUT", "/tenants/acme/installations/acme-prod/environments", {"environments": ["eu-1"]}),
]
APPLICATION_WRITES: list[Call] = [
    ("POST", "/applications", {"name": "new-app"}),
    ("POST", "/applications/billing/images", {"workflow": "main", "image": "r/b:1"}),
    ("PUT", "/applications/billing/pipelines/eu-1", {"target": {"simulate": {}}}),
]
RELEASE_WRITES: list[Call] = [
    ("POST", "/release-tracks", {"name": "new-track"}),
    ("POST", "/release-tracks/stable/releases", {"version": "1.0.0"}),
]
TOKEN_CALLS: list[Call] = [
    ("POST", "/tokens", {"name": "sneaky", "role": "admin"}),
    ("GET", "/tokens", None),
    ("DELETE", "/tokens/anyone", None),
]

# role -> (calls it may make, calls it must be refused with 403)
ROLES: dict[str, tuple[list[Call], list[Call]]] = {
    "viewer": (READS, PLATFORM_WRITES + APPLICATION_WRITES + RELEASE_WRITES + TOKEN_CALLS),
    "developer": (
        READS + APPLICATION_WRITES,
        PLATFORM_WRITES + RELEASE_WRITES + TOKEN_CALLS,
    ),
    "deployer": (READS, PLATFORM_WRITES + APPLICATION_WRITES + RELEASE_WRITES + TOKEN_CALLS),
    "release-manager": (READS + RELEASE_WRITES, PLATFORM_WRITES + TOKEN_CALLS),
    "admin": (
        READS
        + PLATFORM_WRITES
        + APPLICATION_WRITES
        + RELEASE_WRITES
        + [
            ("POST", "/tokens", {"name": "made-by-admin", "role": "viewer"}),
            ("GET", "/tokens", None),
        ],
        [],
    ),
}


def send(client: httpx.Client, call: Call) -> httpx.Response:
    method, path, body = call
    return client.request(method, path, json=body)


@pytest.mark.parametrize("role", list(ROLES))
def test_role_may_make_only_its_calls_when_using_an_issued_token(
    api, world, token_for: Callable[..., httpx.Client], role
):
    client = token_for(role)
    allowed, forbidden = ROLES[role]
    head = event_head(api)

    for call in forbidden:
        response = send(client, call)
        assert response.status_code == 403, f"{role} {call[0]} {call[1]}: {response.text}"
        assert_problem(response, 403, "forbidden")
    assert event_head(api) == head, f"a refused call of {role} changed something"

    for call in allowed:
        response = send(client, call)
        assert response.status_code < 300, f"{role} {call[0]} {call[1]}: {response.text}"


def test_tenant_token_reads_only_its_own_tenant_when_asking_for_tenants(api, world, token_for):
    acme = token_for("tenant", tenant_id="acme", name="acme-portal")
    entry = next(t for t in api.get("/tokens").json() if t["name"] == "acme-portal")
    assert (entry["role"], entry["tenant_id"]) == ("tenant", "acme")

    listed = acme.get("/tenants")
    own = acme.get("/tenants/acme")
    other = acme.get("/tenants/globex")
    missing = acme.get("/tenants/no-such-tenant")

    assert listed.status_code == 200
    assert [t["tenant_id"] for t in listed.json()] == ["acme"]
    assert own.status_code == 200
    assert [i["installation_id"] for i in own.json()["installations"]] == ["acme-prod"]
    assert_problem(other, 404, "not_found")
    assert_problem(missing, 404, "not_found")
    # The refusal for an existing other tenant must not differ from a missing one.
    assert other.json()["title"] == missing.json()["title"]


def test_tenant_token_is_refused_when_reading_catalog_wide_or_writing(api, world, token_for):
    acme = token_for("tenant", tenant_id="acme")
    head = event_head(api)

    for path in ("/environments", "/applications", "/events", "/tokens"):
        assert_problem(acme.get(path), 403, "forbidden")
    for call in PLATFORM_WRITES + APPLICATION_WRITES + RELEASE_WRITES + TOKEN_CALLS:
        assert send(acme, call).status_code == 403, call

    assert event_head(api) == head


BAD_CREDENTIALS = {
    "missing": {},
    "unknown": {"Authorization": "Bearer not-a-real-token"},
    "basic-scheme": {"Authorization": f"Basic {ADMIN}"},
    "empty-bearer": {"Authorization": "Bearer"},
    "no-scheme": {"Authorization": ADMIN},
    "admin-with-suffix": {"Authorization": f"Bearer {ADMIN}x"},
}


def test_request_is_refused_with_401_when_token_is_missing_or_unknown(server):
    for case, headers in BAD_CREDENTIALS.items():
        with httpx.Client(base_url=server.url + "/api/v1", headers=headers, timeout=10) as client:
            for method, path, body in [
                ("GET", "/environments", None),
                ("GET", "/tenants/acme", None),
                ("POST", "/environments", {"name": "sneaky"}),
                ("GET", "/tokens", None),
                ("GET", "/events", None),
            ]:
                response = client.request(method, path, json=body)
                assert response.status_code == 401, f"{case} {method} {path}: {response.text}"
                assert_problem(response, 401, "unauthorized")
                assert response.headers.get("www-authenticate", "").lower().startswith("bearer")

    with server.client() as admin:
        assert admin.get("/environments").json() == []
    with httpx.Client(base_url=server.url, timeout=10) as anonymous:
        assert anonymous.get("/healthz").status_code == 200
        assert anonymous.get("/readyz").status_code == 200


# --- tokens -------------------------------------------------------------------------


def test_token_secret_is_shown_only_once_when_issued(api, server):
    issued = api.post("/tokens", json={"name": "ci-bot", "role": "developer"})

    assert issued.status_code == 201, issued.text
    body = issued.json()
    assert body["name"] == "ci-bot"
    assert body["role"] == "developer"
    secret = body["token"]
    assert isinstance(secret, str)
    assert len(secret) >= 20

    listed = api.get("/tokens")
    assert listed.status_code == 200
    entry = next(t for t in listed.json() if t["name"] == "ci-bot")
    assert entry["role"] == "developer"
    assert "token" not in entry
    assert not any("hash" in key for key in entry)
    assert secret not in listed.text
    assert secret not in api.get("/events", params={"limit": 1000}).text
    with server.client(secret) as bot:
        assert bot.get("/applications").status_code == 200


def test_token_is_refused_when_its_secret_is_used_after_revocation(api, server):
    secret = api.post("/tokens", json={"name": "temp", "role": "viewer"}).json()["token"]
    with server.client(secret) as temp:
        assert temp.get("/environments").status_code == 200

        revoked = api.delete("/tokens/temp")

        assert revoked.status_code == 204
        assert revoked.content == b""
        assert_problem(temp.get("/environments"), 401, "unauthorized")
    assert "temp" not in [t["name"] for t in api.get("/tokens").json()]
    assert_problem(api.delete("/tokens/temp"), 404, "not_found")


def test_revoked_token_name_gets_a_new_secret_when_issued_again(api, server):
    old = api.post("/tokens", json={"name": "rotating", "role": "viewer"}).json()["token"]
    assert api.delete("/tokens/rotating").status_code == 204

    reissued = api.post("/tokens", json={"name": "rotating", "role": "developer"})

    assert reissued.status_code == 201, reissued.text
    new = reissued.json()["token"]
    assert new != old
    with server.client(old) as stale:
        assert stale.get("/environments").status_code == 401
    with server.client(new) as fresh:
        assert fresh.post("/applications", json={"name": "rot-app"}).status_code == 201


def test_token_is_refused_as_duplicate_when_a_live_token_has_its_name(api, server):
    first = api.post("/tokens", json={"name": "ci-bot", "role": "viewer"}).json()["token"]
    head = event_head(api)

    again = api.post("/tokens", json={"name": "ci-bot", "role": "admin"})

    assert_problem(again, 409, "duplicate")
    assert event_head(api) == head
    with server.client(first) as bot:
        assert bot.post("/environments", json={"name": "nope"}).status_code == 403


def test_tenant_token_is_refused_when_tenant_binding_is_wrong(api, world):
    head = event_head(api)

    missing = api.post("/tokens", json={"name": "t1", "role": "tenant"})
    unknown = api.post("/tokens", json={"name": "t2", "role": "tenant", "tenant_id": "nobody"})
    bound_viewer = api.post("/tokens", json={"name": "t3", "role": "viewer", "tenant_id": "acme"})
    bad_role = api.post("/tokens", json={"name": "t4", "role": "superuser"})

    assert missing.status_code == 422, missing.text
    assert_problem(unknown, 404, "not_found")
    assert bound_viewer.status_code == 422, bound_viewer.text
    assert bad_role.status_code == 422, bad_role.text
    assert event_head(api) == head
    assert api.get("/tokens").json() == []


# --- actors -------------------------------------------------------------------------


def test_event_records_the_token_name_as_actor_when_a_command_is_made(api, token_for):
    ops = token_for("admin", name="ops-alice")
    dev = token_for("developer", name="dev-bob")

    assert ops.post("/environments", json={"name": "eu-1"}).status_code == 201
    assert dev.post("/applications", json={"name": "billing"}).status_code == 201
    assert api.post("/tenants", json={"tenant_id": "acme", "display_name": "A"}).status_code == 201

    events = all_events(api)
    by_type = {e["type"]: e for e in events}
    assert by_type["EnvironmentRegistered"]["actor"] == "ops-alice"
    assert by_type["EnvironmentRegistered"]["data"]["name"] == "eu-1"
    assert by_type["ApplicationRegistered"]["actor"] == "dev-bob"
    assert by_type["TenantRegistered"]["actor"] == "bootstrap-admin"
    assert by_type["TokenIssued"]["actor"] == "bootstrap-admin"
    assert all(e["actor"] for e in events)
    assert all(e["timestamp"] for e in events)
    positions = [e["position"] for e in events]
    assert positions == sorted(positions)
    assert len(set(positions)) == len(positions)

"""Racing requests over real HTTP: exactly one winner, and state that agrees with it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.helpers import all_events, assert_problem

pytestmark = pytest.mark.e2e

ROUNDS = 10


def race(server, requests: list[Callable[[httpx.Client], httpx.Response]]) -> list[httpx.Response]:
    """Sends the requests at the same moment, each from its own client and thread."""
    clients = [server.client() for _ in requests]
    for client in clients:  # open the connections first, so the race is on the request
        assert client.get("/events", params={"limit": 1}).status_code == 200
    barrier = threading.Barrier(len(requests))

    def run(index: int) -> httpx.Response:
        barrier.wait(timeout=10)
        return requests[index](clients[index])

    try:
        with ThreadPoolExecutor(max_workers=len(requests)) as pool:
            return list(pool.map(run, range(len(requests))))
    finally:
        for client in clients:
            client.close()


def test_one_mapping_wins_when_two_installations_claim_an_environment_at_once(api, server):
    for tenant_id in ("acme", "globex"):
        created = api.post("/tenants", json={"tenant_id": tenant_id, "display_name": tenant_id})
        assert created.status_code == 201, created.text

    for round_ in range(ROUNDS):
        env = f"env-{round_}"
        contenders = {"acme": f"acme-{round_}", "globex": f"globex-{round_}"}
        assert api.post("/environments", json={"name": env}).status_code == 201
        for tenant_id, installation_id in contenders.items():
            added = api.post(
                f"/tenants/{tenant_id}/installations",
                json={"installation_id": installation_id, "display_name": installation_id},
            )
            assert added.status_code == 201, added.text

        def claim(
            tenant_id: str, installation_id: str, env: str = env
        ) -> Callable[[httpx.Client], httpx.Response]:
            return lambda client: client.put(
                f"/tenants/{tenant_id}/installations/{installation_id}/environments",
                json={"environments": [env]},
            )

        responses = race(server, [claim(t, i) for t, i in contenders.items()])

        statuses = sorted(r.status_code for r in responses)
        assert statuses == [200, 409], [r.text for r in responses]
        loser = next(r for r in responses if r.status_code == 409)
        problem = assert_problem(loser, 409)
        assert problem["code"] in ("environment_already_mapped", "concurrent_modification")
        winner_index = next(i for i, r in enumerate(responses) if r.status_code == 200)
        winner_tenant, winner_installation = list(contenders.items())[winner_index]
        assert api.get(f"/environments/{env}").json()["installation"] == {
            "tenant_id": winner_tenant,
            "installation_id": winner_installation,
        }
        for tenant_id, installation_id in contenders.items():
            tenant = api.get(f"/tenants/{tenant_id}").json()
            installation = next(
                i for i in tenant["installations"] if i["installation_id"] == installation_id
            )
            expected = [env] if installation_id == winner_installation else []
            assert installation["environments"] == expected, (round_, tenant)

    # Each round's environment still belongs to its winner only, and every environment
    # appears in exactly one installation across all tenants.
    listed = {e["name"]: e["installation"] for e in api.get("/environments").json()}
    assert all(listed[f"env-{r}"] is not None for r in range(ROUNDS))
    owners: dict[str, list[str]] = {}
    for tenant in api.get("/tenants").json():
        for installation in tenant["installations"]:
            for env in installation["environments"]:
                owners.setdefault(env, []).append(installation["installation_id"])
    assert {env: len(ids) for env, ids in owners.items()} == {f"env-{r}": 1 for r in range(ROUNDS)}
    events = all_events(api)
    assert sum(e["type"] == "EnvironmentMapped" for e in events) == ROUNDS
    assert not any(e["type"] == "EnvironmentUnmapped" for e in events)


def test_one_tenant_is_created_when_two_requests_post_the_same_id_at_once(api, server):
    for round_ in range(ROUNDS):
        tenant_id = f"race-{round_}"

        def create(
            name: str, tenant_id: str = tenant_id
        ) -> Callable[[httpx.Client], httpx.Response]:
            return lambda client: client.post(
                "/tenants", json={"tenant_id": tenant_id, "display_name": name}
            )

        responses = race(server, [create("first"), create("second")])

        assert sorted(r.status_code for r in responses) == [201, 409], [r.text for r in responses]
        winner = next(r for r in responses if r.status_code == 201)
        loser = next(r for r in responses if r.status_code == 409)
        assert_problem(loser, 409, "duplicate")
        stored = api.get(f"/tenants/{tenant_id}").json()
        assert stored["display_name"] == winner.json()["display_name"]

    events = all_events(api)
    assert sum(e["type"] == "TenantRegistered" for e in events) == ROUNDS
    assert len(api.get("/tenants").json()) == ROUNDS

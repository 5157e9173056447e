"""Bad input over real HTTP: never a 500, always a problem, and never a change."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import assert_problem, event_head, ok, post_all

pytestmark = pytest.mark.e2e

JSON = {"content-type": "application/json"}
MAPPING = "/tenants/acme/installations/acme-prod/environments"


@pytest.fixture
def world(api: httpx.Client) -> int:
    """A tenant with an installation, environments, an application and a track;
    returns the event log head once they exist."""
    post_all(
        api,
        ("/tenants", {"tenant_id": "acme", "display_name": "ACME"}),
        ("/tenants/acme/installations", {"installation_id": "acme-prod", "display_name": "P"}),
        ("/environments", {"name": "eu-1"}),
        ("/environments", {"name": "eu-2"}),
        ("/applications", {"name": "billing"}),
        ("/release-tracks", {"name": "stable"}),
    )
    ok(api.put(MAPPING, json={"environments": ["eu-1"]}))
    return event_head(api)


Call = tuple[str, str, Any]


def assert_each_refused(api: httpx.Client, calls: list[Call], status: int, code: str) -> None:
    """Sends every ``(method, path, body)``; each must be refused with ``status`` and ``code``."""
    for method, path, body in calls:
        response = api.request(method, path, json=body)
        assert response.status_code == status, f"{method} {path} {body!r}: {response.text}"
        assert_problem(response, status, code)


def unchanged_world(api: httpx.Client, head: int) -> None:
    assert event_head(api) == head
    assert [t["tenant_id"] for t in api.get("/tenants").json()] == ["acme"]
    envs = {e["name"]: e["installation"] for e in api.get("/environments").json()}
    assert envs == {"eu-1": {"tenant_id": "acme", "installation_id": "acme-prod"}, "eu-2": None}
    assert [a["name"] for a in api.get("/applications").json()] == ["billing"]


def test_body_is_refused_with_422_when_json_is_malformed(api, world):
    for raw in [
        b'{"name": ',
        b"{'name': 'x'}",
        b'{"name": "x",}',
        b'{"name": "x"} trailing',
        b"nul",
        b"",
        b'{"name": "x"',
    ]:
        for method, path in [
            ("POST", "/environments"),
            ("POST", "/tenants"),
            ("PUT", MAPPING),
            ("POST", "/applications/billing/images"),
        ]:
            response = api.request(method, path, content=raw, headers=JSON)
            assert response.status_code == 422, f"{method} {path} {raw!r}: {response.text}"
            assert_problem(response, 422)

    unchanged_world(api, world)


def test_body_is_refused_with_422_when_it_cannot_be_decoded(api, world):
    for raw in [
        b'{"name": "s2", "description": "\xff\xfe"}',
        b"[" * 100_000 + b"]" * 100_000,
        b'{"tenant_id": "big", "display_name": "x", "description": 1' + b"0" * 5000 + b"}",
    ]:
        for path in ("/environments", "/tenants"):
            assert_problem(api.post(path, content=raw, headers=JSON), 422, "invalid_input")

    unchanged_world(api, world)


WRONG_TYPES: list[Call] = [
    ("POST", "/environments", {"name": 5}),
    ("POST", "/environments", {"name": None}),
    ("POST", "/environments", {"name": ["eu-3"]}),
    ("POST", "/environments", {"name": "eu-3", "cluster": 5}),
    ("POST", "/environments", {}),
    ("POST", "/environments", ["eu-3"]),
    ("POST", "/environments", "eu-3"),
    ("POST", "/applications", {"name": True}),
    ("POST", "/tenants", {"tenant_id": "new", "display_name": None}),
    ("POST", "/tenants", {"tenant_id": "new", "display_name": 5}),
    ("POST", "/tenants", {"tenant_id": 7, "display_name": "N"}),
    ("POST", "/tenants", {"tenant_id": "new", "display_name": ""}),
    ("POST", "/tenants", {"tenant_id": "new"}),
    ("PATCH", "/tenants/acme", {"display_name": 5}),
    ("PATCH", "/tenants/acme", {"description": ["x"]}),
    ("POST", "/tenants/acme/installations", {"installation_id": 1, "display_name": "I"}),
    ("PUT", MAPPING, {"environments": "eu-2"}),
    ("PUT", MAPPING, {"environments": [2]}),
    ("PUT", MAPPING, {"environments": None}),
    ("PUT", MAPPING, {"environments": [["eu-2"]]}),
    ("PUT", MAPPING, {}),
    ("POST", "/applications/billing/images", {"workflow": "main", "image": 3}),
    ("POST", "/applications/billing/images", {"workflow": "", "image": "r/b:1"}),
    ("PUT", "/applications/billing/pipelines/eu-1", {"target": {"simulate": {"seconds": "x"}}}),
    ("POST", "/release-tracks/stable/releases", {"version": 1}),
    ("POST", "/tokens", {"name": "t", "role": "viewer", "expires_in_days": "7"}),
    ("POST", "/tokens", {"name": "t", "role": "viewer", "expires_in_days": 0}),
]


def test_body_is_refused_with_422_when_a_field_has_the_wrong_type(api, world):
    assert_each_refused(api, WRONG_TYPES, 422, "invalid_input")

    unchanged_world(api, world)
    assert api.get("/tokens").json() == []


UNKNOWN_FIELDS: list[Call] = [
    ("POST", "/environments", {"name": "eu-3", "colour": "blue"}),
    ("POST", "/applications", {"name": "auth", "id": "x"}),
    ("POST", "/tenants", {"tenant_id": "new", "display_name": "N", "owner": "me"}),
    ("PATCH", "/tenants/acme", {"display_name": "N", "installations": []}),
    (
        "POST",
        "/tenants/acme/installations",
        {"installation_id": "i", "display_name": "I", "x": 1},
    ),
    ("PUT", MAPPING, {"environments": ["eu-1"], "force": True}),
    ("POST", "/applications/billing/images", {"workflow": "w", "image": "i", "tag": "t"}),
    ("PUT", "/applications/billing/pipelines/eu-1", {"target": {}, "timeout": 3}),
    ("PUT", "/applications/billing/pipelines/eu-1", {"target": {"simulate": {"speed": 1}}}),
    ("POST", "/release-tracks", {"name": "beta", "owner": "x"}),
    ("POST", "/tokens", {"name": "t", "role": "viewer", "secret": "mine"}),
]


def test_body_is_refused_with_422_when_it_has_unknown_fields(api, world):
    assert_each_refused(api, UNKNOWN_FIELDS, 422, "invalid_input")

    unchanged_world(api, world)
    assert api.get("/tokens").json() == []


OVERSIZED_STRINGS: list[Call] = [
    ("POST", "/environments", {"name": "eu-3", "description": "d" * 3000}),
    ("POST", "/environments", {"name": "e" * 64}),
    ("POST", "/applications", {"name": "auth", "description": "d" * 3000}),
    ("POST", "/tenants", {"tenant_id": "new", "display_name": "n" * 300}),
    ("POST", "/tenants", {"tenant_id": "new", "display_name": "N", "description": "d" * 3000}),
    ("PATCH", "/tenants/acme", {"display_name": "n" * 300}),
    (
        "POST",
        "/tenants/acme/installations",
        {"installation_id": "i", "display_name": "n" * 300},
    ),
    ("POST", "/applications/billing/images", {"workflow": "main", "image": "i" * 600}),
    ("POST", "/release-tracks/stable/releases", {"version": "1.0.0", "name": "n" * 300}),
]


def test_body_is_refused_with_422_when_strings_are_oversized(api, world):
    assert_each_refused(api, OVERSIZED_STRINGS, 422, "invalid_input")

    unchanged_world(api, world)
    assert api.get("/tenants/acme").json()["display_name"] == "ACME"


NUL_STRINGS: list[Call] = [
    ("POST", "/environments", {"name": "eu-3", "description": "a\x00b"}),
    ("POST", "/tenants", {"tenant_id": "new", "display_name": "N\x00"}),
    ("PATCH", "/tenants/acme", {"description": "\x00"}),
    ("POST", "/applications/billing/images", {"workflow": "main", "image": "r/b:\x00"}),
    (
        "PUT",
        "/applications/billing/pipelines/eu-1",
        {"target": {"webhook": {"url": "http://h", "secret": "\x00"}}},
    ),
]


def test_body_is_refused_with_422_when_a_string_holds_a_nul_character(api, world):
    assert_each_refused(api, NUL_STRINGS, 422, "invalid_input")

    unchanged_world(api, world)
    # The read models still follow the log: a later command is answered with its result.
    created = api.post("/environments", json={"name": "after-nul"})
    assert created.status_code == 201
    assert created.json()["name"] == "after-nul"


def test_url_is_refused_with_422_when_a_parameter_holds_a_nul_character(api, world):
    for path in [
        "/tenants/a%00b",
        "/environments/eu%00",
        "/applications?search=a%00b",
        "/applications/billing/images?workflow=%00",
        "/release-tracks/stable%00",
    ]:
        assert_problem(api.get(path), 422, "invalid_input")
    assert_problem(
        api.put("/tenants/acme%00/installations/acme-prod/environments", json={"environments": []}),
        422,
    )

    unchanged_world(api, world)


def test_body_is_refused_with_413_when_over_one_mebibyte(api, world):
    declared = json.dumps({"name": "eu-3", "description": "x" * (1024 * 1024)}).encode()

    def streamed() -> Iterator[bytes]:  # chunked: no Content-Length to judge by
        yield b'{"tenant_id": "big", "display_name": "B", "description": "'
        for _ in range(20):
            yield b"x" * 65536
        yield b'"}'

    assert_problem(api.post("/environments", content=declared, headers=JSON), 413, "too_large")
    assert_problem(api.post("/tenants", content=streamed(), headers=JSON), 413, "too_large")
    # Just under the limit the body is read and validated like any other.
    under = json.dumps({"name": "eu-3", "description": "x" * (1024 * 1024 - 100)}).encode()
    assert len(under) < 1024 * 1024
    assert_problem(api.post("/environments", content=under, headers=JSON), 422, "invalid_input")

    unchanged_world(api, world)


UNKNOWN_NAMES: list[Call] = [
    ("PATCH", "/tenants/nobody", {"display_name": "X"}),
    ("POST", "/tenants/nobody/installations", {"installation_id": "i9", "display_name": "I"}),
    ("PUT", "/tenants/nobody/installations/acme-prod/environments", {"environments": []}),
    ("PUT", "/tenants/acme/installations/nothing/environments", {"environments": ["eu-2"]}),
    ("PUT", MAPPING, {"environments": ["eu-2", "ghost"]}),
    ("PUT", "/applications/ghost/pipelines/eu-1", {"target": {}}),
    ("PUT", "/applications/billing/pipelines/ghost", {"target": {}}),
    ("POST", "/applications/ghost/images", {"workflow": "main", "image": "r/g:1"}),
    ("POST", "/release-tracks/ghost/releases", {"version": "1.0.0"}),
    ("POST", "/release-tracks/stable/releases", {"version": "2.0.0", "clone_from": "1.0.0"}),
    ("DELETE", "/tokens/ghost", None),
    ("POST", "/tokens", {"name": "t", "role": "tenant", "tenant_id": "nobody"}),
]


def test_request_is_refused_with_404_when_it_names_things_that_do_not_exist(api, world):
    assert_each_refused(api, UNKNOWN_NAMES, 404, "not_found")
    for path in [
        "/environments/ghost",
        "/applications/ghost",
        "/applications/ghost/images",
        "/tenants/nobody",
        "/release-tracks/ghost",
        "/release-tracks/stable/releases/9.9.9",
        "/release-tracks/stable/releases/not-a-version",
    ]:
        assert_problem(api.get(path), 404, "not_found")

    unchanged_world(api, world)


def test_path_ids_never_yield_500_when_they_are_not_valid_identifiers(api, world):
    for path in ["Bad_ID", "x" * 300, "%20", "..%2F..", "%E2%98%83", "a.b", "-x"]:
        for method, url, body in [
            ("GET", f"/tenants/{path}", None),
            ("PATCH", f"/tenants/{path}", {"display_name": "X"}),
            ("PUT", f"/tenants/{path}/installations/{path}/environments", {"environments": []}),
            ("PUT", f"/applications/{path}/pipelines/{path}", {"target": {}}),
            ("POST", f"/applications/{path}/images", {"workflow": "w", "image": "i"}),
            ("POST", f"/release-tracks/{path}/releases", {"version": "1.0.0"}),
            ("DELETE", f"/tokens/{path}", None),
        ]:
            response = api.request(method, url, json=body)
            assert response.status_code in (404, 422), f"{method} {url}: {response.text}"
            assert_problem(response, response.status_code)

    unchanged_world(api, world)


def test_release_is_refused_with_invalid_semver_when_version_is_not_semver(api, world):
    for version in ["1.0", "v1.0.0", "1.0.0.0", "01.0.0", "latest", "1.0.0-", " 1.0.0", "1"]:
        response = api.post("/release-tracks/stable/releases", json={"version": version})
        assert response.status_code == 422, f"{version!r}: {response.text}"
        assert_problem(response, 422, "invalid_semver")

    unchanged_world(api, world)
    created = api.post("/release-tracks/stable/releases", json={"version": "1.0.0-rc.1+build.5"})
    assert created.status_code == 201, created.text
    assert created.json()["version"] == "1.0.0-rc.1+build.5"


def test_body_is_refused_when_content_type_is_not_json(api, world):
    for content, content_type in [
        (b'{"name": "eu-3"}', "text/plain"),
        (b"name=eu-3", "application/x-www-form-urlencoded"),
        (b'<env name="eu-3"/>', "application/xml"),
        (
            b'--b\r\nContent-Disposition: form-data; name="name"\r\n\r\neu-3\r\n--b--\r\n',
            "multipart/form-data; boundary=b",
        ),
    ]:
        response = api.post(
            "/environments", content=content, headers={"content-type": content_type}
        )
        assert response.status_code in (415, 422), f"{content_type}: {response.text}"
        assert_problem(response, response.status_code)

    unchanged_world(api, world)
    assert api.get("/environments/eu-3").status_code == 404


def test_query_is_refused_with_422_when_a_parameter_has_the_wrong_type_or_range(api, world):
    for path in ["/environments", "/applications", "/tenants", "/events", "/release-tracks"]:
        for params in [
            {"limit": "abc"},
            {"limit": "0"},
            {"limit": "100000"},
            {"limit": "-1"},
            {"limit": "1.5"},
            {"limit": "99999999999999999999999999"},
        ]:
            assert_problem(api.get(path, params=params), 422, "invalid_input")
    for params in [{"after": "abc"}, {"after": "-1"}, {"after": "99999999999999999999999"}]:
        assert_problem(api.get("/events", params=params), 422, "invalid_input")
    for params in [{"offset": "-1"}, {"offset": "x"}, {"offset": "99999999999999999999999"}]:
        assert_problem(api.get("/environments", params=params), 422, "invalid_input")
    assert_problem(api.get("/applications", params={"search": "s" * 500}), 422, "invalid_input")

    unchanged_world(api, world)


def test_unknown_route_and_method_are_problems_when_requested(api, world):
    assert_problem(api.get("/no-such-thing"), 404)
    assert_problem(api.delete("/environments"), 405)
    assert_problem(api.put("/tenants", json={}), 405)

    unchanged_world(api, world)


# --- random bodies ------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=80)
    | st.sampled_from(["acme", "eu-1", "eu-2", "ghost", "Bad_ID", "a" * 70, "\x00"]),
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(
            st.sampled_from(["tenant_id", "display_name", "description", "environments", "x"])
            | st.text(max_size=10),
            inner,
            max_size=5,
        )
    ),
    max_leaves=20,
)
tenant_bodies = json_values | st.fixed_dictionaries(
    {"tenant_id": json_values, "display_name": json_values},
    optional={"description": json_values, "extra": json_values},
)
mapping_bodies = json_values | st.fixed_dictionaries(
    {"environments": json_values | st.lists(json_values, max_size=4)},
    optional={"extra": json_values},
)
RANDOM = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)


def check_random_answer(api: httpx.Client, response: httpx.Response, body: Any) -> None:
    assert response.status_code < 500, f"{body!r}: {response.status_code} {response.text}"
    if response.status_code >= 400:
        assert_problem(response, response.status_code)


@RANDOM
@given(body=tenant_bodies)
def test_random_tenant_bodies_never_fail_the_server_when_posted(api, body):
    head = event_head(api)

    response = api.post("/tenants", content=json.dumps(body), headers=JSON)

    check_random_answer(api, response, body)
    if response.status_code >= 400:
        assert event_head(api) == head, body
    else:
        assert response.status_code == 201
        assert api.get(f"/tenants/{body['tenant_id']}").status_code == 200


@RANDOM
@given(body=mapping_bodies)
def test_random_mapping_bodies_never_fail_the_server_when_put(api, world, body):
    head = event_head(api)

    response = api.put(MAPPING, content=json.dumps(body), headers=JSON)

    check_random_answer(api, response, body)
    if response.status_code >= 400:
        assert event_head(api) == head, body
    else:
        assert response.status_code == 200
        wanted = sorted(set(body["environments"]))
        assert sorted(response.json()["environments"]) == wanted

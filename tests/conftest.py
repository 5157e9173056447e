"""Shared fixtures: real PostgreSQL, and the composed service over real HTTP.

In CI (``CI=true``) a test that needs PostgreSQL fails when it cannot reach it;
elsewhere it is skipped with the reason.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
import uvicorn

from adapters.settings import Settings
from api.app import create_app
from api.bootstrap import Runtime, build_runtime

# The shared helpers assert too: give their failures pytest's detailed messages.
pytest.register_assert_rewrite("tests.helpers")

PG_URL = os.environ.get("SDH_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() == "true"
ADMIN = "sdh_test_admin_token"


def require_postgres() -> str:
    try:
        with psycopg.connect(PG_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError as error:
        message = f"PostgreSQL unreachable at {PG_URL}: {error}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return PG_URL


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A fresh schema, dropped afterwards: tests never see each other's events."""
    url = require_postgres()
    schema = "sdh_t_" + uuid.uuid4().hex[:12]
    yield schema
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def make_settings(backend: str, tmp_path: Path, schema: str | None = None) -> Settings:
    common = {"data_dir": tmp_path / "data", "admin_token": ADMIN, "poll_interval": 0.05}
    if backend == "postgres":
        assert schema is not None
        return Settings(database_url=PG_URL, database_schema=schema, **common)
    return Settings(**common)


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def settings(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    schema = request.getfixturevalue("pg_schema") if backend == "postgres" else None
    return make_settings(backend, tmp_path, schema)


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    rt = build_runtime(settings)
    rt.start()
    yield rt
    rt.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Server:
    url: str
    runtime: Runtime

    def client(self, token: str | None = ADMIN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url + "/api/v1", headers=headers, timeout=30)


@pytest.fixture
def server(runtime: Runtime) -> Iterator[Server]:
    """The real app, served by uvicorn on a loopback port, in this process."""
    port = free_port()
    config = uvicorn.Config(
        create_app(runtime=runtime), host="127.0.0.1", port=port, log_config=None, lifespan="on"
    )
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uv.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    yield Server(f"http://127.0.0.1:{port}", runtime)
    uv.should_exit = True
    thread.join(10)


@pytest.fixture
def api(server: Server) -> Iterator[httpx.Client]:
    """An admin client of the served API (base URL ``/api/v1``)."""
    with server.client() as client:
        yield client


@pytest.fixture
def token_for(api: httpx.Client, server: Server) -> Callable[..., httpx.Client]:
    """Issues a token through the API and returns a client using it."""
    clients: list[httpx.Client] = []

    def make(role: str, tenant_id: str | None = None, name: str | None = None) -> httpx.Client:
        body = {"name": name or f"{role}-{uuid.uuid4().hex[:6]}", "role": role}
        if tenant_id:
            body["tenant_id"] = tenant_id
        response = api.post("/tokens", json=body)
        assert response.status_code == 201, response.text
        client = server.client(response.json()["token"])
        clients.append(client)
        return client

    yield make  # type: ignore[misc]
    for client in clients:
        client.close()

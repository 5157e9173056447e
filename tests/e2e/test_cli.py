"""The ``sdh`` command as a user runs it: real processes, real HTTP."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import free_port
from tests.helpers import run_sdh, sdh_env, start_sdh, stop_sdh, wait_until

pytestmark = pytest.mark.e2e


def test_serve_prints_generated_admin_token_once_when_first_started(tmp_path):
    port = free_port()
    first = start_sdh(sdh_env(tmp_path), port)
    first_err = stop_sdh(first)
    token = (tmp_path / "admin-token").read_text().strip()
    assert token in first_err
    assert oct((tmp_path / "admin-token").stat().st_mode & 0o777) == "0o600"

    second = start_sdh(sdh_env(tmp_path), port)
    try:
        response = httpx.get(
            f"http://127.0.0.1:{port}/api/v1/tenants",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 200
    finally:
        second_err = stop_sdh(second)
    assert token not in second_err


def test_token_created_by_cli_authenticates_against_running_server_when_sharing_data_dir(
    tmp_path,
):
    port = free_port()
    server = start_sdh(sdh_env(tmp_path), port)
    try:
        created = run_sdh(
            sdh_env(tmp_path), "token", "create", "--name", "alice", "--role", "viewer"
        )
        assert created.returncode == 0, created.stderr
        secret = created.stdout.strip()
        assert secret.startswith("sdh_")
        headers = {"Authorization": f"Bearer {secret}"}
        wait_until(
            lambda: (
                httpx.get(
                    f"http://127.0.0.1:{port}/api/v1/environments", headers=headers
                ).status_code
                == 200
            ),
            what="the server to accept the token made by the CLI",
        )
        denied = httpx.post(
            f"http://127.0.0.1:{port}/api/v1/environments", headers=headers, json={"name": "x"}
        )
        assert denied.status_code == 403
        events = httpx.get(
            f"http://127.0.0.1:{port}/api/v1/events",
            headers={"Authorization": f"Bearer {(tmp_path / 'admin-token').read_text().strip()}"},
        ).json()["events"]
        issued = [e for e in events if e["type"] == "TokenIssued"]
        assert issued[-1]["actor"].startswith("cli")
        assert secret not in str(events)
    finally:
        stop_sdh(server)


def test_token_create_explains_refusal_when_tenant_is_unknown(tmp_path):
    token_create = ("token", "create", "--name", "poc", "--role", "tenant", "--tenant", "nobody")
    result = run_sdh(sdh_env(tmp_path), *token_create)
    assert result.returncode == 1
    assert "tenant 'nobody' not found" in result.stderr
    assert result.stdout == ""


def test_projections_rebuild_restores_views_when_run_on_existing_store(tmp_path):
    port = free_port()
    server = start_sdh(sdh_env(tmp_path), port)
    token = (tmp_path / "admin-token").read_text().strip()
    headers = {"Authorization": f"Bearer {token}"}
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        for name in ("doc1", "doc2"):
            assert (
                httpx.post(f"{base}/environments", headers=headers, json={"name": name}).status_code
                == 201
            )
    finally:
        stop_sdh(server)
    result = run_sdh(sdh_env(tmp_path), "projections", "rebuild")
    assert result.returncode == 0, result.stderr
    assert "rebuilt read models from 2 events" in result.stderr
    server = start_sdh(sdh_env(tmp_path), port)
    try:
        names = [e["name"] for e in httpx.get(f"{base}/environments", headers=headers).json()]
        assert names == ["doc1", "doc2"]
    finally:
        stop_sdh(server)


def test_serve_refuses_to_start_when_configuration_is_invalid(tmp_path):
    result = run_sdh(sdh_env(tmp_path, SDH_DATABASE_URL="mysql://x"), "serve")
    assert result.returncode != 0
    assert "SDH_DATABASE_URL must be a postgresql:// URL" in result.stderr

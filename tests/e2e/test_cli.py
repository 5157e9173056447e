"""The ``sdh`` command as a user runs it: real processes, real HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.e2e

SDH = str(Path(sys.executable).with_name("sdh"))


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SDH_")}
    env.update(SDH_DATA_DIR=str(data_dir), SDH_POLL_INTERVAL="0.05", SDH_LOG_FORMAT="json")
    env.update(extra)
    return env


def _serve(data_dir: Path, port: int) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [SDH, "serve", "--port", str(port)],
        env=_env(data_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError("sdh serve did not come up: " + process.communicate()[1][-2000:])


def _stop(process: subprocess.Popen[str]) -> str:
    process.terminate()
    _, err = process.communicate(timeout=20)
    return err


def test_serve_prints_generated_admin_token_once_when_first_started(tmp_path):
    port = free_port()
    first = _serve(tmp_path, port)
    first_err = _stop(first)
    token = (tmp_path / "admin-token").read_text().strip()
    assert token in first_err
    assert oct((tmp_path / "admin-token").stat().st_mode & 0o777) == "0o600"

    second = _serve(tmp_path, port)
    try:
        response = httpx.get(
            f"http://127.0.0.1:{port}/api/v1/tenants",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 200
    finally:
        second_err = _stop(second)
    assert token not in second_err


def test_token_created_by_cli_authenticates_against_running_server_when_sharing_data_dir(
    tmp_path,
):
    port = free_port()
    server = _serve(tmp_path, port)
    try:
        created = subprocess.run(
            [SDH, "token", "create", "--name", "alice", "--role", "viewer"],
            env=_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        secret = created.stdout.strip()
        assert secret.startswith("sdh_")
        headers = {"Authorization": f"Bearer {secret}"}
        deadline = time.monotonic() + 10
        status = 0
        while time.monotonic() < deadline:
            status = httpx.get(
                f"http://127.0.0.1:{port}/api/v1/environments", headers=headers
            ).status_code
            if status == 200:
                break
            time.sleep(0.1)
        assert status == 200
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
        _stop(server)


def test_token_create_explains_refusal_when_tenant_is_unknown(tmp_path):
    result = subprocess.run(
        [SDH, "token", "create", "--name", "poc", "--role", "tenant", "--tenant", "nobody"],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "tenant 'nobody' not found" in result.stderr
    assert result.stdout == ""


def test_projections_rebuild_restores_views_when_run_on_existing_store(tmp_path):
    port = free_port()
    server = _serve(tmp_path, port)
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
        _stop(server)
    result = subprocess.run(
        [SDH, "projections", "rebuild"],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "rebuilt read models from 2 events" in result.stderr
    server = _serve(tmp_path, port)
    try:
        names = [e["name"] for e in httpx.get(f"{base}/environments", headers=headers).json()]
        assert names == ["doc1", "doc2"]
    finally:
        _stop(server)


def test_serve_refuses_to_start_when_configuration_is_invalid(tmp_path):
    result = subprocess.run(
        [SDH, "serve"],
        env=_env(tmp_path, SDH_DATABASE_URL="mysql://x"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "SDH_DATABASE_URL must be a postgresql:// URL" in result.stderr

"""Helpers shared by the test modules: answers of the HTTP API, the global event log,
waiting, and ``sdh`` run as a real process.

Fixtures live in ``tests/conftest.py``; these are plain functions a test calls.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

PROBLEM_JSON = "application/problem+json"
PROBLEM_FIELDS = {"type", "title", "status", "detail", "code"}

# --- answers of the HTTP API ---------------------------------------------------------


def ok(response: httpx.Response, status: int = 200) -> Any:
    """The JSON body of an answer that must have ``status``."""
    assert response.status_code == status, response.text
    return response.json()


def assert_problem(
    response: httpx.Response, status: int, code: str | None = None
) -> dict[str, Any]:
    """Asserts an RFC 9457 refusal: ``status``, a problem+json body with every field
    filled in, and ``code`` when given; returns the body."""
    request = f"{response.request.method} {response.request.url}"
    assert response.status_code == status, f"{request}: {response.text}"
    assert response.headers["content-type"].startswith(PROBLEM_JSON), response.headers
    body: dict[str, Any] = response.json()
    assert body.keys() >= PROBLEM_FIELDS, body
    assert body["status"] == status, body
    assert isinstance(body["code"], str), body
    assert body["code"], body
    assert body["detail"], body
    if code is not None:
        assert body["code"] == code, body
    return body


# --- setting up through the API ------------------------------------------------------


def add_installation(
    api: httpx.Client,
    tenant_id: str,
    installation_id: str,
    environments: list[str],
    display_name: str | None = None,
) -> None:
    """Adds an installation to an existing tenant and maps ``environments`` to it."""
    body = {"installation_id": installation_id, "display_name": display_name or installation_id}
    ok(api.post(f"/tenants/{tenant_id}/installations", json=body), 201)
    mapping = {"environments": environments}
    ok(api.put(f"/tenants/{tenant_id}/installations/{installation_id}/environments", json=mapping))


def post_all(api: httpx.Client, *posts: tuple[str, dict[str, Any]]) -> None:
    """POSTs each ``(path, body)`` in turn; every one must create (201)."""
    for path, body in posts:
        ok(api.post(path, json=body), 201)


# --- the global event log (GET /events) ----------------------------------------------


def event_pages(api: httpx.Client, page_size: int = 1000) -> Iterator[list[dict[str, Any]]]:
    """Every non-empty page of the event log, oldest first, following ``next_after``."""
    after = 0
    while True:
        page = ok(api.get("/events", params={"after": after, "limit": page_size}))
        if not page["events"]:
            return
        yield page["events"]
        assert page["next_after"] == page["events"][-1]["position"], page["next_after"]
        after = page["next_after"]


def all_events(api: httpx.Client) -> list[dict[str, Any]]:
    """Every event in the global log, however many pages it takes."""
    return [event for page in event_pages(api) for event in page]


def event_head(api: httpx.Client) -> int:
    """Position of the newest event in the global log (0 when empty)."""
    head = 0
    for page in event_pages(api):
        head = page[-1]["position"]
    return head


# --- waiting -------------------------------------------------------------------------


def wait_until(check: Callable[[], Any], timeout: float = 10.0, what: str = "the condition") -> Any:
    """Polls ``check`` until it returns something truthy, and returns that."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
    return value


# --- a receiver of outgoing HTTP (webhooks, external deployers) ----------------------


class JsonHandler(BaseHTTPRequestHandler):
    """A quiet request handler that answers with JSON documents."""

    def answer(self, status: int, document: Any) -> None:
        payload = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def http_receiver(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serves ``handler`` on a loopback port from a thread; yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# --- sdh as a real process -----------------------------------------------------------

SDH = str(Path(sys.executable).with_name("sdh"))


def sdh_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """This process's environment without any inherited ``SDH_*`` setting, for an sdh
    on ``data_dir`` that polls fast and logs JSON; ``extra`` adds or overrides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SDH_")}
    env.update(SDH_DATA_DIR=str(data_dir), SDH_POLL_INTERVAL="0.05", SDH_LOG_FORMAT="json")
    env.update(extra)
    return env


def run_sdh(
    env: dict[str, str], *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Runs one ``sdh`` command to its end, capturing its output."""
    return subprocess.run(
        [SDH, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def start_sdh(env: dict[str, str], port: int, timeout: float = 30) -> subprocess.Popen[str]:
    """Starts ``sdh serve`` on ``port`` and waits until it answers ``/healthz``; its
    standard error is kept for :func:`stop_sdh`."""
    process = subprocess.Popen(
        [SDH, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    _, err = process.communicate(timeout=20)
    raise AssertionError(
        f"sdh serve did not come up on port {port} within {timeout}s "
        f"(exit code {process.returncode}): {err[-2000:]}"
    )


def stop_sdh(process: subprocess.Popen[str], timeout: float = 20) -> str:
    """Stops a server started by :func:`start_sdh` (SIGTERM) and returns its standard
    error."""
    process.terminate()
    _, err = process.communicate(timeout=timeout)
    return err

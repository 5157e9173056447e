"""Operations endpoints: OpenAPI, health, readiness, metrics."""

import httpx
import pytest

pytestmark = pytest.mark.e2e


def test_openapi_describes_the_contract_paths_when_fetched(server):
    spec = httpx.get(server.url + "/openapi.json").json()
    paths = spec["paths"]
    for path in (
        "/api/v1/environments",
        "/api/v1/tenants/{tenant_id}/installations/{installation_id}/environments",
        "/api/v1/release-tracks/{track}/releases/{version}/lock",
        "/api/v1/release-tracks/{track}/releases/{version}/deployments",
        "/api/v1/deployments/{deployment_id}/result",
        "/api/v1/tokens",
        "/api/v1/events",
    ):
        assert path in paths, path
    assert httpx.get(server.url + "/docs").status_code == 200


def test_readyz_reports_store_and_follower_lag_when_running(server, api):
    api.post("/environments", json={"name": "doc1"})
    ready = httpx.get(server.url + "/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["event_store"] == "reachable"
    assert body["head"] >= 1
    assert body["followers"]["views"]["lag"] == 0
    assert httpx.get(server.url + "/healthz").json() == {"status": "ok"}


def test_metrics_expose_log_head_and_request_counts_when_scraped(server, api):
    api.post("/environments", json={"name": "doc1"})
    api.get("/environments")
    text = httpx.get(server.url + "/metrics").text
    assert "sdh_event_log_head 1" in text
    assert 'sdh_follower_lag{follower="views"} 0' in text
    assert 'sdh_http_requests_total{method="POST",status="201"} 1' in text

"""The dashboard in a real headless Chromium, against the served API."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.conftest import ADMIN, IN_CI
from tests.helpers import add_installation, wait_until

pytestmark = pytest.mark.e2e

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    # The dashboard only talks HTTP: one backend is enough here.
    return str(request.param)


@pytest.fixture
def browser() -> Iterator[object]:
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        message = "Chromium is not installed (Debian package 'chromium')"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


def _prepare(api) -> None:
    for env in ("doc1", "acme-main"):
        assert api.post("/environments", json={"name": env}).status_code == 201
    assert (
        api.post(
            "/tenants", json={"tenant_id": "flareup123", "display_name": "flareup.xyz"}
        ).status_code
        == 201
    )
    assert (
        api.post("/tenants", json={"tenant_id": "acme42", "display_name": "ACME"}).status_code
        == 201
    )
    add_installation(api, "flareup123", "flareup-prod-1", ["doc1"])
    add_installation(api, "acme42", "acme-prod-1", ["acme-main"])
    api.post("/applications", json={"name": "payments"}).raise_for_status()
    api.post("/applications/payments/images", json={"workflow": "ci", "image": "r/payments:1"})
    api.put(
        "/applications/payments/pipelines/doc1", json={"target": {"simulate": {"seconds": 0.3}}}
    )
    api.put(
        "/applications/payments/pipelines/acme-main",
        json={"target": {"simulate": {"seconds": 0.3, "outcome": "failed"}}},
    ).raise_for_status()
    release = "/release-tracks/numero/releases/1.0.0"
    api.post("/release-tracks", json={"name": "numero"}).raise_for_status()
    api.post("/release-tracks/numero/releases", json={"version": "1.0.0"}).raise_for_status()
    api.put(release + "/stages", json={"stages": [["payments"]]}).raise_for_status()
    api.put(
        release + "/applications/payments",
        json={"image": "r/payments:1", "instructions": "<b>migrate</b> first"},
    ).raise_for_status()
    api.put(
        release + "/notes", json={"markdown": '<img src=x onerror="window.pwned=1"> notes'}
    ).raise_for_status()
    api.post(release + "/lock").raise_for_status()
    api.post(release + "/ready").raise_for_status()


def _open(browser, server, token: str):
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(server.url + "/")
    page.fill("#token", token)
    page.click("text=Use token")
    return page, errors


def _status(page, installation: str) -> str:
    return page.get_attribute(
        f'#rollout tr[data-installation="{installation}"] td:nth-child(4) .badge', "data-status"
    )


def test_release_manager_watches_a_rollout_move_to_completed_and_failed_when_deploying(
    browser, server, api
):
    _prepare(api)
    page, errors = _open(browser, server, ADMIN)
    page.wait_for_selector("#tracks")
    assert page.inner_text("#tracks tbody").split("\t")[:2] == ["numero", "1.0.0"]
    page.click("#tracks >> text=1.0.0")
    page.wait_for_selector("#rollout")
    assert _status(page, "flareup-prod-1") == "yet_to_trigger"
    assert _status(page, "acme-prod-1") == "yet_to_trigger"

    deploy = api.post(
        "/release-tracks/numero/releases/1.0.0/deployments",
        json={"installations": ["flareup-prod-1", "acme-prod-1"], "applications": ["payments"]},
    )
    assert deploy.status_code == 202
    # The page refreshes itself: statuses move without a reload.
    assert wait_until(lambda: _status(page, "flareup-prod-1") == "completed", timeout=15)
    assert wait_until(lambda: _status(page, "acme-prod-1") == "failed", timeout=15)
    assert "partially released" in page.inner_text("h1")
    assert wait_until(lambda: page.locator("#history tbody tr").count() == 2, timeout=10)
    assert "simulated failure" in page.inner_text("#history")

    page.click("text=failed (1)")
    assert wait_until(lambda: page.locator("#rollout tbody tr").count() == 1, timeout=10)
    assert _status(page, "acme-prod-1") == "failed"
    # Markup from the API is shown as text, never run.
    assert "<img src=x" in page.inner_text("#notes")
    assert page.evaluate("window.pwned") is None
    assert page.locator("main img").count() == 0
    assert errors == []


def test_tenant_contact_sees_only_its_installation_when_using_a_tenant_token(browser, server, api):
    _prepare(api)
    secret = api.post(
        "/tokens", json={"name": "acme-poc", "role": "tenant", "tenant_id": "acme42"}
    ).json()["token"]
    page, errors = _open(browser, server, secret)
    page.wait_for_selector("#tracks")
    page.click("#tracks >> text=1.0.0")
    page.wait_for_selector("#rollout")
    assert page.locator("#rollout tbody tr").count() == 1
    assert _status(page, "acme-prod-1") == "yet_to_trigger"
    assert "flareup" not in page.inner_text("main")
    page.click("text=Tenants")
    page.wait_for_selector("#tenants")
    assert "acme42" in page.inner_text("#tenants")
    assert "flareup123" not in page.inner_text("#tenants")
    assert errors == []


def test_dashboard_explains_a_refused_token_when_it_is_unknown(browser, server):
    page, _ = _open(browser, server, "not-a-token")
    page.wait_for_selector("#error")
    assert "401" in page.inner_text("#error")
    headers = page.request.get(server.url + "/ui/").headers
    assert "default-src 'self'" in headers["content-security-policy"]


def test_release_manager_rolls_out_stage_by_stage_from_the_dashboard_when_ticking_boxes(
    browser, server, api
):
    api.post("/environments", json={"name": "e1"}).raise_for_status()
    api.post("/tenants", json={"tenant_id": "t1", "display_name": "T1"}).raise_for_status()
    add_installation(api, "t1", "i1", ["e1"])
    release = "/release-tracks/numero/releases/1.0.0"
    api.post("/release-tracks", json={"name": "numero"}).raise_for_status()
    api.post("/release-tracks/numero/releases", json={"version": "1.0.0"}).raise_for_status()
    for app in ("api", "web"):
        api.post("/applications", json={"name": app}).raise_for_status()
        api.post(f"/applications/{app}/images", json={"workflow": "ci", "image": f"r/{app}:1"})
        api.put(
            f"/applications/{app}/pipelines/e1", json={"target": {"simulate": {"seconds": 0.2}}}
        ).raise_for_status()
    api.put(release + "/stages", json={"stages": [["api"], ["web"]]}).raise_for_status()
    for app in ("api", "web"):
        api.put(f"{release}/applications/{app}", json={"image": f"r/{app}:1"}).raise_for_status()
    manager = api.post("/tokens", json={"name": "rm", "role": "release-manager"}).json()["token"]

    page, errors = _open(browser, server, manager)
    page.wait_for_selector("#tracks")
    page.click("#tracks >> text=1.0.0")
    page.wait_for_selector("#actions")
    page.click('[data-action="/lock"]')
    assert wait_until(lambda: page.locator('[data-action="/ready"]').count() == 1)
    page.click('[data-action="/ready"]')
    assert wait_until(lambda: "ready" in page.inner_text("h1"))

    page.check('#rollout input[aria-label="select i1"]')
    page.check('#deploy input[data-application="web"]')
    page.click("#deploy-button")
    assert wait_until(lambda: "stage_gate" in page.inner_text("#notice"))
    assert "i1/web: stage_gate" in page.inner_text("#notice")

    page.uncheck('#deploy input[data-application="web"]')
    page.check('#deploy input[data-application="api"]')
    page.click("#deploy-button")
    assert wait_until(lambda: "Deployments requested" in page.inner_text("#notice"))
    assert wait_until(lambda: "partially released" in page.inner_text("h1"), timeout=15)

    # Ticks survive the page's refreshes: switch the application and deploy stage 2.
    page.uncheck('#deploy input[data-application="api"]')
    page.check('#deploy input[data-application="web"]')
    page.click("#deploy-button")
    assert wait_until(lambda: _status(page, "i1") == "completed", timeout=15)
    assert wait_until(lambda: "completely released" in page.inner_text("h1"), timeout=10)

    page.once("dialog", lambda dialog: dialog.accept("waiting for approval"))
    page.click('[data-action="/hold"]')
    assert wait_until(lambda: "on hold" in page.inner_text("h1"))
    assert api.get(release).json()["hold_reason"] == "waiting for approval"
    page.click('[data-action="/resume"]')
    assert wait_until(lambda: "completely released" in page.inner_text("h1"))
    assert errors == []


def test_viewer_gets_no_actions_when_using_a_read_only_token(browser, server, api):
    _prepare(api)
    viewer = api.post("/tokens", json={"name": "v", "role": "viewer"}).json()["token"]
    page, errors = _open(browser, server, viewer)
    page.wait_for_selector("#tracks")
    page.click("#tracks >> text=1.0.0")
    page.wait_for_selector("#rollout")
    assert page.locator("#actions").count() == 0
    assert page.locator("#deploy").count() == 0
    assert errors == []

"""The NATS relay against a real nats-server with JetStream (a private one per test,
on a free port, that a test can stop and restart on the same port and store).

In CI (``CI=true``) a missing or failing nats-server fails the test; elsewhere it skips.
"""

from __future__ import annotations

import asyncio
import json
import queue
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from nats.aio.msg import Msg

from adapters.checkpoint import ViewStoreCheckpoint
from adapters.nats_relay import STREAM, NatsRelay, hub_origin
from adapters.settings import Settings
from api.bootstrap import Runtime, build_runtime
from application.hub import Hub
from application.log import RecordedEvent
from tests.conftest import IN_CI, Server, free_port, make_settings
from tests.helpers import SDH, run_sdh, sdh_env, wait_until

pytestmark = pytest.mark.integration

ACTOR = "alice"
TRACK, SEMVER = "shop", "1.0.0"
SIMULATE: dict[str, Any] = {"simulate": {"seconds": 0}}
SECRET = "hunter2-webhook-secret"
WEBHOOK: dict[str, Any] = {"webhook": {"url": "https://deploy.example/hook", "secret": SECRET}}


# --- a private nats-server ----------------------------------------------------------


def _unavailable(message: str) -> None:
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class NatsServer:
    binary: str
    port: int
    store_dir: Path
    log_file: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    self.binary,
                    "-js",
                    "-a",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-sd",
                    str(self.store_dir),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        _unavailable(f"nats-server did not start: {self.log_file.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    binary = shutil.which("nats-server") or (
        "/usr/sbin/nats-server" if Path("/usr/sbin/nats-server").exists() else None
    )
    if binary is None:
        _unavailable("nats-server is not installed")
    assert binary is not None
    server = NatsServer(binary, free_port(), tmp_path / "jetstream", tmp_path / "nats.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def settings(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, nats_server: NatsServer
) -> Settings:
    """Overrides the conftest fixture for this module: sdh publishing to our server, so
    the ``runtime`` and ``server`` fixtures run the relay."""
    schema = request.getfixturevalue("pg_schema") if backend == "postgres" else None
    base = make_settings(backend, tmp_path, schema)
    return base.model_copy(update={"nats_url": nats_server.url})


# --- reading the stream back --------------------------------------------------------


@dataclass(frozen=True)
class Published:
    seq: int
    subject: str
    headers: dict[str, str]
    raw: bytes
    document: dict[str, Any]


def read_stream(url: str) -> tuple[int, list[Published]]:
    """The stream's message count, and every message through a fresh consumer."""

    async def read() -> tuple[int, list[Published]]:
        nc = await nats.connect(url)
        try:
            js = nc.jetstream()
            count = (await js.stream_info(STREAM)).state.messages
            sub = await js.pull_subscribe("sdh.>", stream=STREAM)
            messages: list[Msg] = []
            while len(messages) < count:
                try:
                    batch = await sub.fetch(500, timeout=2)
                except TimeoutError:
                    break
                for msg in batch:
                    await msg.ack()
                messages.extend(batch)
            return count, [
                Published(
                    m.metadata.sequence.stream,
                    m.subject,
                    dict(m.headers or {}),
                    m.data,
                    json.loads(m.data),
                )
                for m in messages
            ]
        finally:
            await nc.close()

    return asyncio.run(read())


def relayed_all(runtime: Runtime, timeout: float = 20) -> None:
    assert runtime.relay is not None
    relay = runtime.relay
    wait_until(
        lambda: relay.position() >= runtime.hub.last_position(), timeout, "the relay to catch up"
    )


def assert_published_exactly(published: list[Published], stored: list[RecordedEvent]) -> None:
    """Each stored event once, in store order, as the CloudEvent of that event."""
    assert [p.document["id"] for p in published] == [e.id for e in stored]
    assert [p.seq for p in published] == sorted(p.seq for p in published)
    positions = [p.document["sdhposition"] for p in published]
    assert positions == sorted(set(positions))
    for message, event in zip(published, stored, strict=True):
        assert message.subject == event.topic == f"sdh.{event.aggregate}.{event.type}"
        assert message.headers["Nats-Msg-Id"] == event.id


def assert_valid_cloud_event(document: dict[str, Any], event: RecordedEvent) -> None:
    required = {"specversion", "id", "source", "type", "subject", "time", "datacontenttype"}
    assert required <= document.keys()
    assert document["specversion"] == "1.0"
    assert document["id"] == event.id
    assert document["source"] == "urn:sdh"
    assert document["type"] == event.topic
    assert document["datacontenttype"] == "application/json"
    assert isinstance(document["subject"], str)
    assert document["subject"]
    assert datetime.fromisoformat(document["time"]).utcoffset() is not None
    assert document["sdhactor"] == event.actor
    assert document["sdhaggregateid"] == event.aggregate_id
    assert document["sdhversion"] == event.version
    # CloudEvents attribute names: lower-case letters and digits only.
    assert all(re.fullmatch(r"[a-z0-9]{1,20}", name) for name in document)


# --- the scenario -------------------------------------------------------------------


def wait_deployments_succeeded(hub: Hub, count: int) -> None:
    def done() -> bool:
        events = hub.read_events(0, 100_000)
        assert not [e for e in events if e.type == "DeploymentFailed"]
        return sum(e.type == "DeploymentSucceeded" for e in events) >= count

    wait_until(done, 20, f"{count} deployments to succeed")


def small_rollout(hub: Hub) -> str:
    """The platform, a two-stage release and its rollout to one installation; returns
    the secret of the token it issues (which must never be published)."""
    hub.register_environment("eu-prod", "cluster-eu", "shop", "", ACTOR)
    hub.register_environment("us-prod", "cluster-us", "shop", "", ACTOR)
    hub.register_tenant("acme", "Acme", "", ACTOR)
    hub.add_installation("acme", "acme-prod", "Production", ACTOR)
    hub.map_environments("acme", "acme-prod", ["eu-prod"], ACTOR)
    for app in ("api", "web"):
        hub.register_application(app, "shop", "", ACTOR)
        hub.register_image(app, "build", f"registry.example/{app}:1.0", "c0ffee", ACTOR)
        hub.set_pipeline(app, "eu-prod", SIMULATE, None, None, ACTOR)
    # us-prod belongs to no installation: never deployed, but its webhook secret is stored.
    hub.set_pipeline("api", "us-prod", WEBHOOK, None, None, ACTOR)
    hub.create_track(TRACK, "", None, ACTOR)
    hub.create_release(TRACK, SEMVER, None, "", None, ACTOR)
    hub.set_stages(TRACK, SEMVER, [["api"], ["web"]], ACTOR)
    for app in ("api", "web"):
        hub.set_release_application(
            TRACK, SEMVER, app, None, f"registry.example/{app}:1.0", None, ACTOR
        )
    hub.lock_requirements(TRACK, SEMVER, ACTOR)
    hub.mark_ready(TRACK, SEMVER, ACTOR)
    token = hub.issue_token("ci-bot", "deployer", None, None, actor=ACTOR)
    hub.request_deployments(TRACK, SEMVER, ["acme-prod"], ["api"], "deploy", ACTOR)
    wait_deployments_succeeded(hub, 1)
    hub.request_deployments(TRACK, SEMVER, ["acme-prod"], ["web"], "deploy", ACTOR)
    wait_deployments_succeeded(hub, 2)
    return token.secret


# --- the tests ----------------------------------------------------------------------


def test_every_event_of_a_rollout_is_published_once_in_store_order_when_relaying(
    runtime: Runtime, nats_server: NatsServer
) -> None:
    token_secret = small_rollout(runtime.hub)
    relayed_all(runtime)

    stored = runtime.hub.read_events(0, 100_000)
    count, published = read_stream(nats_server.url)

    assert count == len(stored)
    assert_published_exactly(published, stored)
    for message, event in zip(published, stored, strict=True):
        assert_valid_cloud_event(message.document, event)
        assert SECRET.encode() not in message.raw
        assert token_secret.encode() not in message.raw
    types = [p.document["type"] for p in published]
    for expected in (
        "sdh.release.RequirementsLocked",
        "sdh.rollout.DeploymentQueued",
        "sdh.rollout.DeploymentSucceeded",
        "sdh.rollout.StageDeployed",
    ):
        assert expected in types
    by_type = {p.document["type"]: p.document for p in published}
    assert by_type["sdh.release.RequirementsLocked"]["subject"] == "release/shop/1.0.0"
    assert by_type["sdh.rollout.StageDeployed"]["subject"] == "rollout/shop/1.0.0/acme-prod"
    assert by_type["sdh.token.TokenIssued"]["data"]["token_hash"] == "********"
    webhook = [
        p.document["data"]["target"]
        for p in published
        if p.document["type"] == "sdh.application.PipelineSet"
        and p.document["data"]["environment"] == "us-prod"
    ]
    assert webhook == [{"webhook": {"url": "https://deploy.example/hook", "secret": "********"}}]


def test_nothing_is_lost_when_nats_stops_during_a_burst_of_commands(
    runtime: Runtime, nats_server: NatsServer
) -> None:
    hub = runtime.hub
    hub.register_tenant("acme", "Acme", "", ACTOR)
    relayed_all(runtime)

    nats_server.stop()
    for n in range(100):  # every command succeeds while NATS is down
        hub.register_environment(f"env-{n}", "cluster", f"ns-{n}", "", ACTOR)
    head = hub.last_position()
    assert runtime.relay is not None
    assert runtime.relay.position() < head
    follower = runtime.relay_follower
    assert follower is not None
    wait_until(lambda: follower.last_error is not None, 15, "the relay to fail and back off")

    nats_server.start()
    relayed_all(runtime, timeout=30)

    stored = hub.read_events(0, 100_000)
    count, published = read_stream(nats_server.url)
    assert count == len(stored) == 101
    assert_published_exactly(published, stored)


class CrashingCheckpoint:
    """The relay process dies after JetStream acknowledged a batch, before its checkpoint
    is saved: ``save`` raises (once), and nothing is recorded."""

    def __init__(self, inner: ViewStoreCheckpoint) -> None:
        self.inner = inner
        self.crashed = False

    def load(self) -> int:
        return self.inner.load()

    def save(self, position: int) -> None:
        if not self.crashed:
            self.crashed = True
            raise RuntimeError("killed between publish and checkpoint")
        self.inner.save(position)


def test_no_duplicate_reaches_consumers_when_the_relay_dies_before_its_checkpoint(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, nats_server: NatsServer
) -> None:
    # The store alone (no relay running): this test drives the relays by hand.
    schema = request.getfixturevalue("pg_schema") if backend == "postgres" else None
    runtime = build_runtime(make_settings(backend, tmp_path, schema))
    try:
        hub = runtime.hub
        hub.register_tenant("acme", "Acme", "", ACTOR)
        for n in range(20):
            hub.register_environment(f"env-{n}", "cluster", f"ns-{n}", "", ACTOR)
        first_batch = hub.read_events(0, 1000)

        checkpoint = ViewStoreCheckpoint(runtime.store, "relay")
        dying = NatsRelay(nats_server.url, CrashingCheckpoint(checkpoint), origin=hub_origin(hub))
        try:
            with pytest.raises(RuntimeError, match="killed"):
                dying.handle(first_batch)
        finally:
            dying.close()
        assert checkpoint.load() == 0
        assert read_stream(nats_server.url)[0] == len(first_batch)

        # More events meanwhile; the restarted relay resumes from the old checkpoint.
        for n in range(20, 30):
            hub.register_environment(f"env-{n}", "cluster", f"ns-{n}", "", ACTOR)
        restarted = NatsRelay(nats_server.url, checkpoint, origin=hub_origin(hub))
        try:
            assert restarted.position() == 0
            restarted.handle(hub.read_events(restarted.position(), 1000))
        finally:
            restarted.close()

        stored = hub.read_events(0, 1000)
        assert checkpoint.load() == stored[-1].position
        count, published = read_stream(nats_server.url)
        assert count == len(stored) == 31
        assert_published_exactly(published, stored)
    finally:
        runtime.close()


class MemoryCheckpoint:
    def __init__(self) -> None:
        self.position = 0

    def load(self) -> int:
        return self.position

    def save(self, position: int) -> None:
        self.position = position


class LosingJetStream:
    """The relay's JetStream context, except that one message is lost on the wire: it
    never reaches the server and its ack never comes (a connection dropped mid-batch)."""

    def __init__(self, js: Any, lost_id: str) -> None:
        self.js = js
        self.lost_id = lost_id

    async def publish_async(self, subject: str, payload: bytes, **kwargs: Any) -> Any:
        if kwargs["headers"]["Nats-Msg-Id"] == self.lost_id:
            return asyncio.get_running_loop().create_future()
        return await self.js.publish_async(subject, payload, **kwargs)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_later_events_stay_out_of_the_stream_when_one_is_lost_mid_batch(
    runtime: Runtime, nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The runtime's own relay publishes the platform; a second one, with its own
    # checkpoint, re-publishes the log from the start: duplicates until the loss.
    hub = runtime.hub
    for n in range(10):
        hub.register_environment(f"env-{n}", "cluster", f"ns-{n}", "", ACTOR)
    relayed_all(runtime)
    assert runtime.relay_follower is not None
    runtime.relay_follower.stop()
    for n in range(10, 20):
        hub.register_environment(f"env-{n}", "cluster", f"ns-{n}", "", ACTOR)
    events = hub.read_events(0, 1000)
    lost = events[14]

    relay = NatsRelay(nats_server.url, MemoryCheckpoint(), ack_timeout=1.0)
    ready = relay._ready

    async def losing_ready() -> Any:
        return LosingJetStream(await ready(), lost.id)

    monkeypatch.setattr(relay, "_ready", losing_ready)
    try:
        with pytest.raises(Exception, match="published 14 of 20"):
            relay.handle(events)
        assert relay.position() == events[13].position
        # Events 16..20 were sent, but each expects its predecessor to be the stream's
        # last message: JetStream refused them, the stream is still in store order.
        count, published = read_stream(nats_server.url)
        assert count == 14
        assert_published_exactly(published, events[:14])

        monkeypatch.undo()
        relay.handle(hub.read_events(relay.position(), 1000))
    finally:
        relay.close()
    count, published = read_stream(nats_server.url)
    assert count == 20
    assert_published_exactly(published, events)


def test_relay_lag_and_error_show_in_readyz_and_metrics_when_nats_is_down(
    server: Server, api: httpx.Client, nats_server: NatsServer
) -> None:
    ops = httpx.Client(base_url=server.url, timeout=10)

    def relay_state() -> dict[str, Any]:
        response = ops.get("/readyz")
        assert response.status_code == 200, response.text
        state: dict[str, Any] = response.json()["followers"]["relay"]
        return state

    assert api.post("/tenants", json={"tenant_id": "acme", "display_name": "Acme"}).is_success
    wait_until(lambda: relay_state()["lag"] == 0, 10, "the relay to catch up")

    nats_server.stop()
    for n in range(5):
        response = api.post(
            "/environments", json={"name": f"env-{n}", "cluster": "c", "namespace": f"n{n}"}
        )
        assert response.status_code == 201, response.text
    wait_until(lambda: relay_state()["error"] is not None, 15, "the relay to report its error")
    state = relay_state()
    assert state["lag"] >= 5
    assert "NATS" in state["error"] or "nats" in state["error"].lower()
    metrics = ops.get("/metrics").text
    lag = re.search(r'^sdh_follower_lag\{follower="relay"\} (\d+)$', metrics, re.MULTILINE)
    assert lag is not None
    assert int(lag.group(1)) >= 5

    nats_server.start()
    wait_until(lambda: relay_state()["lag"] == 0, 30, "the relay to drain its backlog")
    assert relay_state()["error"] is None
    ops.close()


# --- sdh events tail ----------------------------------------------------------------


def _lines(stream: Any) -> queue.Queue[str]:
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stream:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return lines


@pytest.mark.parametrize("backend", ["sqlite"])
def test_events_tail_prints_an_event_published_after_it_started(
    runtime: Runtime, nats_server: NatsServer, tmp_path: Path
) -> None:
    tail = subprocess.Popen(
        [SDH, "events", "tail", "--subject", "sdh.environment.>"],
        env=sdh_env(tmp_path / "cli", SDH_NATS_URL=nats_server.url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        err = _lines(tail.stderr)
        out = _lines(tail.stdout)
        assert "tailing sdh.environment.>" in err.get(timeout=15)
        runtime.hub.register_tenant("acme", "Acme", "", ACTOR)  # filtered out
        runtime.hub.register_environment("eu-prod", "cluster-eu", "shop", "", ACTOR)
        line = out.get(timeout=15)
        event = runtime.hub.read_events(0, 10)[-1]
        assert line.split()[:4] == [
            str(event.position),
            "sdh.environment.EnvironmentRegistered",
            event.id,
            ACTOR,
        ]
        assert '"name":"eu-prod"' in line
        assert out.empty()
    finally:
        tail.terminate()
        assert tail.wait(10) == 0


def test_events_tail_exits_2_with_a_reason_when_nats_is_not_configured_or_unreachable(
    tmp_path: Path,
) -> None:
    unset = run_sdh(sdh_env(tmp_path), "events", "tail", timeout=20)
    assert unset.returncode == 2
    assert "SDH_NATS_URL" in unset.stderr
    unreachable = sdh_env(tmp_path, SDH_NATS_URL=f"nats://127.0.0.1:{free_port()}")
    down = run_sdh(unreachable, "events", "tail", timeout=20)
    assert down.returncode == 2
    assert "unreachable" in down.stderr

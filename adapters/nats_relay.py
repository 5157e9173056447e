"""The NATS relay: every stored event, in store order, on JetStream as a CloudEvent.

The event store is the outbox. The relay is a follower of the notification log
(``Follower(hub, relay)``): for each batch it publishes one CloudEvents 1.0 JSON document
per event on ``sdh.<aggregate>.<EventName>``, waits until JetStream acknowledged every one,
saves its checkpoint and only then advances its position. A crash between the publish
and the checkpoint re-publishes the batch on restart; the ``Nats-Msg-Id`` header (the
event's deterministic id) lets JetStream drop those copies within the stream's duplicate
window, so a consumer sees each event once.

Order. Publishes are pipelined (``publish_async``, a bounded number of acks outstanding)
for throughput. A connection lost mid-batch could then store a later event while an
earlier one was lost on the wire (nats-py flushes its reconnect buffer on reconnect),
putting the stream out of store order. So every message after the first of a batch
carries ``Nats-Expected-Last-Msg-Id`` = the previous event's id: JetStream refuses a message
whose predecessor is not the stream's last one, and the stream stays a prefix of the log
in log order. JetStream checks duplicates before that expectation, so re-publishing an
already stored batch is acknowledged as duplicates. The first message of a batch carries
no expectation: its predecessor is already acknowledged (it is at or before our
checkpoint), which also lets the relay carry on after an operator purged or recreated the
stream. One consequence: the relay must be the only publisher on ``sdh.>`` of its stream.

NATS is asyncio; the Follower is a thread. The relay owns a private event loop in its own
thread and ``handle()`` blocks on it. When NATS is unreachable ``handle()`` raises: the
Follower keeps the batch, backs off and retries, while sdh keeps accepting commands; the
backlog drains, in order, when NATS returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import Callable, Coroutine, Mapping, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, TypeVar
from uuid import UUID

import nats
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

from application.hub import Hub
from application.log import RecordedEvent, redact
from application.ports import Checkpoint

log = logging.getLogger("sdh.relay")

STREAM = "SDH_EVENTS"
STREAM_SUBJECTS = ["sdh.>"]
MSG_ID = "Nats-Msg-Id"
EXPECTED_LAST_MSG_ID = "Nats-Expected-Last-Msg-Id"

T = TypeVar("T")


# --- the stream ---------------------------------------------------------------------


@dataclass(frozen=True)
class StreamSettings:
    """How ``SDH_EVENTS`` is created when absent (an existing stream is left alone).

    ``duplicate_window`` bounds how long after publishing an event a re-publication of it
    is still dropped by JetStream. It must exceed the longest gap between a publish and
    the checkpoint that follows it being used again, i.e. relay downtime after a crash
    mid-batch: one hour covers a restart by an orchestrator or a person, while the
    server keeps only one hour of message ids in memory (the default, 2 min, does not).
    """

    max_age_days: float = 30.0
    duplicate_window: float = 3600.0

    def config(self) -> StreamConfig:
        return StreamConfig(
            name=STREAM,
            description="sdh events as CloudEvents 1.0 (see the README)",
            subjects=list(STREAM_SUBJECTS),
            storage=StorageType.FILE,
            retention=RetentionPolicy.LIMITS,
            discard=DiscardPolicy.OLD,
            max_age=self.max_age_days * 86400,
            duplicate_window=self.duplicate_window,
        )


async def ensure_stream(js: JetStreamContext, settings: StreamSettings) -> bool:
    """Creates ``SDH_EVENTS`` if absent; returns whether it did."""
    try:
        info = await js.stream_info(STREAM)
    except nats.js.errors.NotFoundError:
        pass
    else:
        window = info.config.duplicate_window or 0
        if window < settings.duplicate_window:
            # Left alone, but a relay restarted after a crash may re-publish a batch that
            # JetStream no longer recognises: consumers would see those events twice.
            log.warning(
                "SDH_EVENTS has a shorter duplicate window than sdh asks for",
                extra={"duplicate_window": window, "wanted": settings.duplicate_window},
            )
        return False
    try:
        await js.add_stream(settings.config())
    except nats.js.errors.BadRequestError:
        # Another process created it meanwhile ("stream name already in use").
        await js.stream_info(STREAM)
        return False
    log.info(
        "created the JetStream stream",
        extra={"stream": STREAM, "duplicate_window": settings.duplicate_window},
    )
    return True


async def connect(
    url: str,
    name: str,
    timeout: float = 5.0,
    reconnect_time_wait: float = 1.0,
    reconnected: Callable[[], Coroutine[Any, Any, None]] | None = None,
) -> NatsClient:
    """A client that reconnects forever once connected. The first connection fails fast
    (on the first error, or after ``timeout``): nats-py would otherwise retry it forever,
    and the callers (the relay's retry loop, a person running tail) decide what next."""
    first_error: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()
    nc = NatsClient()

    async def error(e: Exception) -> None:
        if not first_error.done():
            first_error.set_result(e)
        log.debug("nats client error", extra={"error": f"{type(e).__name__}: {e}"})

    async def disconnected_cb() -> None:
        if not nc.is_closed:
            log.warning("disconnected from NATS", extra={"client": name})

    async def reconnected_cb() -> None:
        log.info("reconnected to NATS", extra={"client": name})
        if reconnected is not None:
            await reconnected()

    connecting = asyncio.ensure_future(
        nc.connect(
            servers=[url],
            name=name,
            connect_timeout=max(1, int(min(timeout, 2.0))),
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            reconnect_time_wait=reconnect_time_wait,  # type: ignore[arg-type]
            error_cb=error,
            disconnected_cb=disconnected_cb,
            reconnected_cb=reconnected_cb,
        )
    )
    racing: set[asyncio.Future[Any]] = {connecting, first_error}
    await asyncio.wait(racing, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    if connecting.done() and connecting.exception() is None:
        return nc
    connecting.cancel()
    with contextlib.suppress(Exception):  # best effort: it never connected
        await asyncio.wait_for(nc.close(), 1.0)
    reason = first_error.result() if first_error.done() else None
    if reason is None and connecting.done() and not connecting.cancelled():
        reason = connecting.exception()
    detail = f": {type(reason).__name__}: {reason}" if reason is not None else ""
    raise ConnectionError(f"NATS unreachable at {url}{detail}")


# --- the document -------------------------------------------------------------------

# The fields of each aggregate's creation event that name it for people.
SUBJECT_FIELDS: dict[str, tuple[str, ...]] = {
    "environment": ("name",),
    "application": ("name",),
    "tenant": ("tenant_id",),
    "installation": ("installation_id",),
    "track": ("name",),
    "release": ("track", "semver"),
    "rollout": ("track", "semver", "installation_id"),
    "token": ("name",),
}

Origin = Callable[[str], Mapping[str, Any] | None]


def hub_origin(hub: Hub) -> Origin:
    """The data of an aggregate's first (creation) event, read from the store."""

    def origin(aggregate_id: str) -> Mapping[str, Any] | None:
        for domain_event in hub.events.get(UUID(aggregate_id), lte=1):
            return vars(domain_event)
        return None

    return origin


class HumanSubjects:
    """CloudEvents ``subject`` for people: ``release/numero/1.0.0``, ``tenant/flareup``.

    Names never change after creation, so they are read from an aggregate's creation
    event (``origin``) once and remembered; the aggregate id when none can be found.
    """

    def __init__(self, origin: Origin | None = None, capacity: int = 50_000) -> None:
        self.origin = origin
        self.capacity = capacity
        self._known: dict[str, str] = {}

    def __call__(self, event: RecordedEvent) -> str:
        fields = SUBJECT_FIELDS.get(event.aggregate)
        if fields is None:
            return event.aggregate_id
        known = self._known.get(event.aggregate_id)
        if known is not None:
            return known
        data: Mapping[str, Any] | None = event.data if event.version == 1 else None
        if data is None and self.origin is not None:
            data = self.origin(event.aggregate_id)
        if data is None or any(data.get(f) is None for f in fields):
            return event.aggregate_id
        subject = "/".join([event.aggregate, *(str(data[f]) for f in fields)])
        if len(self._known) >= self.capacity:
            self._known.pop(next(iter(self._known)))
        self._known[event.aggregate_id] = subject
        return subject


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def cloud_event(event: RecordedEvent, source: str, subject: str) -> dict[str, Any]:
    """The published document: CloudEvents 1.0, structured JSON mode.

    Extension attributes (``sdh…``) carry the log position, aggregate id and version and
    the actor. ``data`` is the event's payload with secrets redacted.
    """
    timestamp = event.timestamp
    if timestamp.tzinfo is None:
        timestamp = timestamp.replace(tzinfo=UTC)
    return {
        "specversion": "1.0",
        "id": event.id,
        "source": source,
        "type": event.topic,
        "subject": subject,
        "time": timestamp.isoformat(),
        "datacontenttype": "application/json",
        "data": redact(event.data),
        "sdhposition": event.position,
        "sdhaggregate": event.aggregate,
        "sdhaggregateid": event.aggregate_id,
        "sdhversion": event.version,
        "sdhactor": event.actor,
    }


def encode(document: Mapping[str, Any]) -> bytes:
    return json.dumps(
        document, separators=(",", ":"), ensure_ascii=False, default=_json_default
    ).encode()


# --- the relay ----------------------------------------------------------------------


class _LoopThread:
    """A private asyncio event loop running in its own daemon thread."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float) -> T:
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result(timeout)
        except FutureTimeout:
            future.cancel()
            raise TimeoutError(f"NATS operation did not finish within {timeout:.0f}s") from None

    def submit(self, coroutine: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        if not self.thread.is_alive():
            self.loop.close()


class RelayPublishError(Exception):
    """JetStream did not acknowledge every message of a batch."""


class NatsRelay:
    """Publishes the log to JetStream; run it under a ``Follower``.

    ``max_pending``: acks outstanding at once (the pipeline's window); ``ack_timeout``:
    seconds for a whole batch to be sent and acknowledged; ``origin``: reads an
    aggregate's creation event, for human subjects of events whose creation came before
    the relay's position.
    """

    name = "relay"

    def __init__(
        self,
        url: str,
        checkpoint: Checkpoint,
        source: str = "urn:sdh",
        stream: StreamSettings | None = None,
        origin: Origin | None = None,
        max_pending: int = 1000,
        ack_timeout: float = 10.0,
        connect_timeout: float = 5.0,
        reconnect_time_wait: float = 1.0,
    ) -> None:
        self.url = url
        self.checkpoint = checkpoint
        self.source = source
        self.stream = stream or StreamSettings()
        self.subjects = HumanSubjects(origin)
        self.max_pending = max_pending
        self.ack_timeout = ack_timeout
        self.connect_timeout = connect_timeout
        self.reconnect_time_wait = reconnect_time_wait
        self.published = 0
        self._position = checkpoint.load()
        self._loop: _LoopThread | None = None
        self._loop_guard = threading.Lock()
        self._connecting = asyncio.Lock()
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._stream_ready = False

    # --- the follower side ----------------------------------------------------------

    def position(self) -> int:
        return self._position

    def resume(self) -> None:
        """Taking over from another process: continue from its checkpoint."""
        self._position = self.checkpoint.load()

    def start(self) -> None:
        """Connects and ensures the stream in the background, so ``SDH_EVENTS`` exists
        before the first event (a consumer can subscribe to a fresh install)."""
        self._ensure_loop().submit(self._warm_up())

    def handle(self, events: Sequence[RecordedEvent]) -> None:
        messages = [
            (e.topic, encode(cloud_event(e, self.source, self.subjects(e))), e.id) for e in events
        ]
        # Bounded: every await inside has its own timeout, this is the backstop.
        deadline = self.connect_timeout * 2 + self.ack_timeout * 2 + 5
        acked, error = self._ensure_loop().run(self._publish(messages), deadline)
        if acked:
            # Keep what JetStream acknowledged even when the rest of the batch failed.
            self.checkpoint.save(events[acked - 1].position)
            self._position = events[acked - 1].position
            self.published += acked
        if error is not None:
            raise RelayPublishError(
                f"published {acked} of {len(events)} events: {type(error).__name__}: {error}"
            ) from error

    def close(self) -> None:
        with self._loop_guard:
            loop, self._loop = self._loop, None
        if loop is None:
            return
        try:
            loop.run(self._disconnect(), 5.0)
        except Exception as error:
            log.warning("closing the NATS connection failed", extra={"error": str(error)})
        loop.stop()

    # --- on the loop ----------------------------------------------------------------

    def _ensure_loop(self) -> _LoopThread:
        with self._loop_guard:
            if self._loop is None:
                self._loop = _LoopThread("relay-nats-loop")
            return self._loop

    async def _warm_up(self) -> None:
        try:
            await self._ready()
        except Exception as error:
            log.warning("NATS not ready yet", extra={"url": self.url, "error": str(error)})

    async def _ready(self) -> JetStreamContext:
        async with self._connecting:
            if self._nc is None or self._nc.is_closed:
                self._nc = await connect(
                    self.url,
                    "sdh-relay",
                    self.connect_timeout,
                    self.reconnect_time_wait,
                    reconnected=self._on_reconnected,
                )
                self._js = self._nc.jetstream(publish_async_max_pending=self.max_pending)
                self._stream_ready = False
                log.info("connected to NATS", extra={"url": self.url})
            nc, js = self._nc, self._js
            assert js is not None
            if not nc.is_connected:
                # Reconnecting: give it a moment before reporting the failure.
                for _ in range(int(min(self.connect_timeout, 2.0) / 0.05)):
                    await asyncio.sleep(0.05)
                    if nc.is_connected:
                        break
                else:
                    raise ConnectionError(f"NATS at {self.url} is not connected (reconnecting)")
            if not self._stream_ready:
                # Also after a reconnect: the server may have come back without the stream
                # (nats.py issue 504 is the same trap for subscriptions).
                await ensure_stream(js, self.stream)
                self._stream_ready = True
            return js

    async def _on_reconnected(self) -> None:
        self._stream_ready = False

    async def _publish(
        self, messages: Sequence[tuple[str, bytes, str]]
    ) -> tuple[int, BaseException | None]:
        """Publishes in order with pipelined acks; returns how many leading messages
        JetStream acknowledged, and the error that stopped the rest (if any)."""
        try:
            js = await self._ready()
        except Exception as error:
            return 0, error
        futures: list[asyncio.Future[Any]] = []
        try:
            # One deadline for the batch: sending (which waits when ``max_pending`` acks are
            # outstanding) and every ack. Not one per message: a timer per publish (nats-py's
            # ``wait_stall``) halves the throughput.
            async with asyncio.timeout(self.ack_timeout):
                previous: str | None = None
                for subject, payload, msg_id in messages:
                    headers = {MSG_ID: msg_id}
                    if previous is not None:
                        headers[EXPECTED_LAST_MSG_ID] = previous
                    futures.append(await js.publish_async(subject, payload, headers=headers))
                    previous = msg_id
                await asyncio.gather(*futures)
            return len(futures), None
        except Exception as error:
            self._stream_ready = False  # re-check on the next attempt (deleted stream)
            return _acked_prefix(futures), error
        finally:
            for future in futures:
                if not future.done():
                    future.cancel()  # frees its slot in the outstanding-acks window

    async def _disconnect(self) -> None:
        nc, self._nc = self._nc, None
        if nc is not None and not nc.is_closed:
            try:
                await asyncio.wait_for(nc.close(), 3.0)
            except TimeoutError:
                log.warning("NATS connection did not close in time")


def _acked_prefix(futures: Sequence[asyncio.Future[Any]]) -> int:
    count = 0
    for future in futures:
        if not future.done() or future.cancelled() or future.exception() is not None:
            break
        count += 1
    return count

"""``sdh events tail``: print events live from JetStream, to check the wiring by eye."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from typing import Any, TextIO

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, DeliverPolicy

from adapters.nats_relay import STREAM, StreamSettings, connect, ensure_stream


class TailError(Exception):
    """Tail cannot start (NATS unreachable, bad subject); the message says why."""


def format_line(msg: Msg) -> str:
    """``position subject id actor data`` — one line per event."""
    try:
        document: dict[str, Any] = json.loads(msg.data)
    except ValueError:
        return f"- {msg.subject} (not JSON) {msg.data[:200]!r}"
    data = json.dumps(document.get("data"), separators=(",", ":"), ensure_ascii=False)
    return (
        f"{document.get('sdhposition', '-')} {msg.subject} {document.get('id', '-')} "
        f"{document.get('sdhactor') or '-'} {data}"
    )


async def tail(
    url: str,
    subject: str,
    from_start: bool,
    stream: StreamSettings,
    out: TextIO,
    err: TextIO,
) -> None:
    """Prints events until cancelled. An ordered consumer: ephemeral, flow-controlled,
    re-created by the client on a gap, so lines come in stream (store) order."""
    try:
        nc = await connect(url, "sdh-events-tail", timeout=5.0)
    except ConnectionError as error:
        raise TailError(f"{error}: is nats-server running (nats-server -js)?") from None
    try:
        js = nc.jetstream()
        try:
            # The same stream the relay creates, so tailing may start before sdh does.
            await ensure_stream(js, stream)
        except (nats.errors.NoRespondersError, nats.errors.TimeoutError, nats.js.errors.Error):
            raise TailError(f"JetStream is not enabled on {url} (start nats-server -js)") from None
        done = asyncio.get_running_loop().create_future()

        async def show(msg: Msg) -> None:
            print(format_line(msg), file=out, flush=True)

        try:
            sub = await js.subscribe(
                subject,
                stream=STREAM,
                cb=show,
                ordered_consumer=True,
                config=ConsumerConfig(
                    deliver_policy=DeliverPolicy.ALL if from_start else DeliverPolicy.NEW
                ),
            )
        except (nats.js.errors.BadRequestError, nats.errors.BadSubjectError) as error:
            raise TailError(f"cannot follow subject {subject!r}: {error}") from None
        print(
            f"tailing {subject} on stream {STREAM} at {url}"
            f" ({'from the start' if from_start else 'new events'}); Ctrl-C stops",
            file=err,
            flush=True,
        )
        try:
            await done
        finally:
            await sub.unsubscribe()
    finally:
        await nc.close()


def run_tail(url: str | None, subject: str, from_start: bool, stream: StreamSettings) -> int:
    """The CLI entry: exit 0 on Ctrl-C/SIGTERM, 2 when tail cannot start."""
    if not url:
        print(
            "sdh: SDH_NATS_URL is not set; start nats-server -js and set"
            " SDH_NATS_URL=nats://127.0.0.1:4222",
            file=sys.stderr,
        )
        return 2

    async def main() -> int:
        task = asyncio.ensure_future(tail(url, subject, from_start, stream, sys.stdout, sys.stderr))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        try:
            await task
        except asyncio.CancelledError:
            return 0
        except TailError as error:
            print(f"sdh: {error}", file=sys.stderr)
            return 2
        return 0

    return asyncio.run(main())

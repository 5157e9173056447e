"""Relay throughput: N stored events published to JetStream by the NATS relay.

Starts a private nats-server (or uses --nats-url), stores N events in a fresh SQLite
store, and times the relay draining them (read + decode from the log, CloudEvents
encoding, pipelined publish, every ack, checkpoint per batch). Prints the figure next to
raw nats-py ``publish_async`` throughput of as many messages of the same size into another
stream of the same server, measured in the same run.

    .venv/bin/python bench/relay_throughput.py [--events 20000] [--batch 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import nats
from nats.js.api import StreamConfig

from adapters.nats_relay import NatsRelay, cloud_event, encode
from adapters.settings import Settings
from api.bootstrap import build_runtime
from application.follower import Follower
from domain.environment import Environment

ACTOR = "bench"


class MemoryCheckpoint:
    def __init__(self) -> None:
        self.position = 0

    def load(self) -> int:
        return self.position

    def save(self, position: int) -> None:
        self.position = position


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_nats(store: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
    port = free_port()
    process = subprocess.Popen(
        [binary, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(store)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process, f"nats://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit("nats-server did not start")


def raw_publish_rate(url: str, count: int, size: int, max_pending: int) -> float:
    async def run() -> float:
        nc = await nats.connect(url)
        js = nc.jetstream(publish_async_max_pending=max_pending)
        await js.add_stream(StreamConfig(name="BENCH_RAW", subjects=["bench.>"]))
        payload = b"x" * size
        start = time.perf_counter()
        futures = [
            await js.publish_async("bench.raw", payload, headers={"Nats-Msg-Id": f"raw-{n}"})
            for n in range(count)
        ]
        await asyncio.gather(*futures)
        elapsed = time.perf_counter() - start
        await js.delete_stream("BENCH_RAW")
        await nc.close()
        return count / elapsed

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--nats-url", help="an existing nats-server -js (default: start one)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        process = None
        url = args.nats_url
        if url is None:
            process, url = start_nats(Path(tmp) / "jetstream")
        runtime = build_runtime(Settings(data_dir=Path(tmp) / "data", admin_token="bench"))
        try:
            hub = runtime.hub
            for start in range(0, args.events, 500):
                hub.save(
                    *(
                        Environment.register(f"env{n}", "cluster", f"ns{n}", "", ACTOR)
                        for n in range(start, min(start + 500, args.events))
                    )
                )
            events = hub.read_events(0, args.events)
            size = sum(len(encode(cloud_event(e, "urn:sdh", "x"))) for e in events) // len(events)

            relay = NatsRelay(url, MemoryCheckpoint())
            follower = Follower(hub, relay, batch_size=args.batch)
            relay.handle(events[:1])  # connect and create the stream outside the timing
            start_time = time.perf_counter()
            relayed = follower.catch_up()
            relay_rate = relayed / (time.perf_counter() - start_time)
            relay.close()

            start_time = time.perf_counter()
            for position in range(0, args.events, args.batch):
                hub.read_events(position, args.batch)
            read_rate = args.events / (time.perf_counter() - start_time)

            raw_rate = raw_publish_rate(url, args.events, size, relay.max_pending)
        finally:
            runtime.close()
            if process is not None:
                process.terminate()
                process.wait(10)

    print(f"events: {args.events} (~{size} bytes each), relay batch {args.batch}")
    print(f"relay (read+decode+encode+publish+acks+checkpoint): {relay_rate:>9,.0f} events/s")
    print(f"raw nats-py publish_async, same server, same size:  {raw_rate:>9,.0f} msgs/s")
    print(f"reading + decoding the log alone (SQLite):          {read_rate:>9,.0f} events/s")
    print(f"relay / raw publish: {relay_rate / raw_rate:.2f}")


if __name__ == "__main__":
    main()

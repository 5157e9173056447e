"""The HTTP composition root: ``create_app`` wires a Runtime into FastAPI."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from adapters.settings import Settings
from api import problems
from api.bootstrap import Runtime, build_runtime
from api.routes import audit, catalog, ops, releases, rollout, tenants, tokens

access = logging.getLogger("sdh.access")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyLimit:
    """Refuses request bodies over ``max_bytes`` with 413 before any handler runs."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problems.problem(
            413, "too_large", f"request body exceeds {self.max_bytes} bytes"
        )
        await response(scope, receive, send)


class RefuseNulInUrl:
    """A NUL in a path or query parameter cannot reach a PostgreSQL text column (the
    query fails); refuse it as invalid input before any handler runs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (
            "\x00" in scope.get("path", "")
            or b"\x00" in unquote_to_bytes(scope.get("query_string", b""))
        ):
            response = problems.problem(
                422, "invalid_input", "path and query parameters may not contain NUL"
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


class CountRequests:
    """Counts answers per method and status for /metrics, and logs one structured line
    per request (the access log)."""

    def __init__(self, app: ASGIApp, counts: Counter[tuple[str, int]]) -> None:
        self.app = app
        self.counts = counts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def counting_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                self.counts[(scope["method"], status)] += 1
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            access.info(
                "request",
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "ms": round((time.perf_counter() - started) * 1000, 1),
                },
            )


STATIC = Path(__file__).with_name("static")


class SecurityHeaders:
    """The dashboard runs only its own script, and no page sniffs content types."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        dashboard = scope["path"].startswith("/ui")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-content-type-options", b"nosniff"))
                if dashboard:
                    headers.append(
                        (
                            b"content-security-policy",
                            b"default-src 'self'; connect-src 'self'; frame-ancestors 'none'",
                        )
                    )
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(
    settings: Settings | None = None, runtime: Runtime | None = None, start_workers: bool = True
) -> FastAPI:
    """Builds the app. With no runtime given, one is built from ``settings`` on startup
    and closed on shutdown; never at import time."""
    settings = settings or (runtime.settings if runtime else Settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = runtime is None
        rt = runtime or build_runtime(settings)
        app.state.runtime = rt
        if start_workers and owned:
            rt.start()
        try:
            yield
        finally:
            if owned:
                rt.close()

    app = FastAPI(
        title="sdh — Software Distribution Hub",
        version="0.1.0",
        description="Release tracks, locked requirements and staged rollouts to tenant "
        "installations. Errors are RFC 9457 problem details with a stable `code`.",
        lifespan=lifespan,
    )
    app.state.request_counts = Counter()
    problems.install(app)
    app.include_router(ops.ops)
    for router in (
        catalog.router,
        tenants.router,
        releases.router,
        rollout.router,
        audit.router,
        tokens.router,
        tokens.me,
        ops.events,
    ):
        app.include_router(router, prefix="/api/v1")
    app.mount("/ui", StaticFiles(directory=STATIC, html=True), name="dashboard")

    @app.get("/", include_in_schema=False)
    def dashboard() -> RedirectResponse:
        return RedirectResponse("/ui/")

    app.add_middleware(SecurityHeaders)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RefuseNulInUrl)
    app.add_middleware(CountRequests, counts=app.state.request_counts)
    return app

"""Operations: health, readiness, metrics (no auth) and the global event log."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from api.deps import ReadAll, RuntimeDep

log = logging.getLogger("sdh.api")

ops = APIRouter(tags=["operations"])
events = APIRouter(tags=["audit"])


@ops.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@ops.get("/readyz")
def readyz(runtime: RuntimeDep) -> JSONResponse:
    try:
        head = runtime.hub.last_position()
    except Exception as error:  # any failure to reach the store means not ready
        log.warning("event store unreachable", extra={"error": str(error)})
        return JSONResponse(
            {"status": "unavailable", "event_store": "unreachable"}, status_code=503
        )
    followers = {
        f.handler.name: {
            "position": f.handler.position(),
            "lag": max(0, head - f.handler.position()),
            "error": f.last_error,
            # False on standby: another process holds this follower's lease.
            "leading": f.leading,
        }
        for f in runtime.followers
    }
    return JSONResponse(
        {"status": "ok", "event_store": "reachable", "head": head, "followers": followers}
    )


@ops.get("/metrics", response_class=PlainTextResponse)
def metrics(request: Request, runtime: RuntimeDep) -> str:
    lines = [
        "# HELP sdh_event_log_head Position of the newest stored event.",
        "# TYPE sdh_event_log_head gauge",
        f"sdh_event_log_head {runtime.hub.last_position()}",
        "# HELP sdh_follower_position Last event position a follower handled.",
        "# TYPE sdh_follower_position gauge",
    ]
    for follower in runtime.followers:
        lines.append(
            f'sdh_follower_position{{follower="{follower.handler.name}"}} '
            f"{follower.handler.position()}"
        )
    lines += [
        "# HELP sdh_follower_lag Events stored but not yet handled.",
        "# TYPE sdh_follower_lag gauge",
    ]
    for follower in runtime.followers:
        lines.append(f'sdh_follower_lag{{follower="{follower.handler.name}"}} {follower.lag()}')
    counts: dict[tuple[str, int], int] = request.app.state.request_counts
    lines += [
        "# HELP sdh_http_requests_total HTTP requests answered.",
        "# TYPE sdh_http_requests_total counter",
    ]
    for (method, code), count in sorted(counts.items()):
        lines.append(f'sdh_http_requests_total{{method="{method}",status="{code}"}} {count}')
    return "\n".join(lines) + "\n"


@events.get("/events")
def list_events(
    runtime: RuntimeDep,
    _: ReadAll,
    after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    recorded = runtime.hub.read_events(after, limit)
    return {
        "events": [e.as_json() for e in recorded],
        "next_after": recorded[-1].position if recorded else after,
    }

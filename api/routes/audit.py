"""Audit: a release's state as of any time, replayed from the events themselves."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.deps import ReadAll, RuntimeDep
from api.problems import ApiProblemError
from application.audit import release_snapshot

router = APIRouter(tags=["audit"])


@router.get("/release-tracks/{track}/releases/{version}/audit")
def release_audit(
    track: str,
    version: str,
    runtime: RuntimeDep,
    _: ReadAll,
    as_of: Annotated[datetime | None, Query(description="ISO-8601; default: now")] = None,
) -> dict[str, Any]:
    if as_of is not None and as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=UTC)
    release, events = runtime.hub.release_as_of(track, version, as_of)
    if release is None:
        when = f" as of {as_of.isoformat()}" if as_of else ""
        raise ApiProblemError(
            404, "not_found", f"release {version!r} of track {track!r} did not exist{when}"
        )
    return {
        "as_of": (as_of or datetime.now(UTC)).isoformat(),
        "state": release_snapshot(release),
        "events": events,
    }

"""Release tracks, releases, their requirements and lifecycle."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, status

from adapters.tokens import Principal
from api.deps import (
    ManageReleases,
    ReaderDep,
    RuntimeDep,
    WriteInstructions,
    settle,
    tenant_scope,
)
from api.problems import ApiProblemError
from api.schemas import (
    CatalogIn,
    NotesIn,
    ReasonIn,
    ReleaseApplicationIn,
    ReleaseIn,
    RescindIn,
    StagesIn,
    TrackIn,
)
from application.hub import Outcome
from domain.access import Permission, allows

router = APIRouter(prefix="/release-tracks", tags=["release tracks and releases"])

RELEASE = "/{track}/releases/{version}"


def _track_or_404(runtime: RuntimeDep, name: str, who: Principal | None = None) -> Any:
    found = runtime.releases.track(name, only_tenant=tenant_scope(who) if who else None)
    if found is None:
        raise ApiProblemError(404, "not_found", f"release track {name!r} not found")
    return found


def _release_or_404(
    runtime: RuntimeDep, track: str, version: str, who: Principal | None = None
) -> Any:
    found = runtime.releases.release(track, version, only_tenant=tenant_scope(who) if who else None)
    if found is None:
        raise ApiProblemError(404, "not_found", f"release {version!r} of track {track!r} not found")
    return found


def _answer(runtime: RuntimeDep, outcome: Outcome, track: str, version: str) -> Any:
    settle(runtime, outcome.position)
    return _release_or_404(runtime, track, version)


@router.post("", status_code=status.HTTP_201_CREATED)
def create_track(body: TrackIn, runtime: RuntimeDep, who: ManageReleases) -> Any:
    outcome = runtime.hub.create_track(
        body.name, body.description, body.catalog_schema, actor=who.name
    )
    settle(runtime, outcome.position)
    return _track_or_404(runtime, body.name)


@router.get("")
def list_tracks(
    runtime: RuntimeDep,
    who: ReaderDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> list[dict[str, Any]]:
    return runtime.releases.tracks(limit, offset, only_tenant=tenant_scope(who))


@router.get("/{track}")
def get_track(track: str, runtime: RuntimeDep, who: ReaderDep) -> Any:
    return _track_or_404(runtime, track, who)


@router.post("/{track}/releases", status_code=status.HTTP_201_CREATED)
def create_release(track: str, body: ReleaseIn, runtime: RuntimeDep, who: ManageReleases) -> Any:
    outcome = runtime.hub.create_release(
        track, body.version, body.name, body.description, body.clone_from, actor=who.name
    )
    return _answer(runtime, outcome, track, body.version)


@router.get(RELEASE)
def get_release(track: str, version: str, runtime: RuntimeDep, who: ReaderDep) -> Any:
    return _release_or_404(runtime, track, version, who)


@router.put(RELEASE + "/stages")
def set_stages(
    track: str, version: str, body: StagesIn, runtime: RuntimeDep, who: ManageReleases
) -> Any:
    outcome = runtime.hub.set_stages(track, version, body.stages, actor=who.name)
    return _answer(runtime, outcome, track, version)


@router.put(RELEASE + "/applications/{app}")
def set_release_application(
    track: str,
    version: str,
    app: str,
    body: ReleaseApplicationIn,
    runtime: RuntimeDep,
    who: WriteInstructions,
) -> Any:
    if (body.workflow is not None or body.image is not None) and not allows(
        who.role, Permission.MANAGE_RELEASES
    ):
        raise ApiProblemError(
            403, "forbidden", f"role {who.role.value!r} may write instructions, not choose images"
        )
    outcome = runtime.hub.set_release_application(
        track, version, app, body.workflow, body.image, body.instructions, actor=who.name
    )
    return _answer(runtime, outcome, track, version)


@router.post(RELEASE + "/lock")
def lock(track: str, version: str, runtime: RuntimeDep, who: ManageReleases) -> Any:
    return _answer(runtime, runtime.hub.lock_requirements(track, version, who.name), track, version)


@router.post(RELEASE + "/unlock")
def unlock(track: str, version: str, runtime: RuntimeDep, who: ManageReleases) -> Any:
    outcome = runtime.hub.unlock_requirements(track, version, who.name)
    return _answer(runtime, outcome, track, version)


@router.post(RELEASE + "/ready")
def mark_ready(track: str, version: str, runtime: RuntimeDep, who: ManageReleases) -> Any:
    return _answer(runtime, runtime.hub.mark_ready(track, version, who.name), track, version)


@router.post(RELEASE + "/hold")
def hold(
    track: str, version: str, runtime: RuntimeDep, who: ManageReleases, body: ReasonIn | None = None
) -> Any:
    reason = body.reason if body else ""
    return _answer(runtime, runtime.hub.hold(track, version, reason, who.name), track, version)


@router.post(RELEASE + "/resume")
def resume(
    track: str, version: str, runtime: RuntimeDep, who: ManageReleases, body: ReasonIn | None = None
) -> Any:
    reason = body.reason if body else ""
    return _answer(runtime, runtime.hub.resume(track, version, reason, who.name), track, version)


@router.post(RELEASE + "/rescind")
def rescind(
    track: str, version: str, body: RescindIn, runtime: RuntimeDep, who: ManageReleases
) -> Any:
    outcome = runtime.hub.rescind(track, version, body.reason, who.name)
    return _answer(runtime, outcome, track, version)


@router.put(RELEASE + "/notes")
def set_notes(
    track: str, version: str, body: NotesIn, runtime: RuntimeDep, who: ManageReleases
) -> Any:
    outcome = runtime.hub.set_notes(track, version, body.markdown, who.name)
    return _answer(runtime, outcome, track, version)


@router.put(RELEASE + "/catalog")
def set_catalog(
    track: str, version: str, body: CatalogIn, runtime: RuntimeDep, who: ManageReleases
) -> Any:
    outcome = runtime.hub.set_catalog(track, version, body.data, who.name)
    return _answer(runtime, outcome, track, version)

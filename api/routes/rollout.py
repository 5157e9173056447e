"""Rollout: request deployments, watch the status per installation, read the history."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, status

from api.deps import ReaderDep, ReportResults, RollOut, RuntimeDep, settle, tenant_scope
from api.problems import ApiProblemError
from api.schemas import DeploymentResultIn, DeploymentsIn, TenantId

router = APIRouter(tags=["rollout"])

RELEASE = "/release-tracks/{track}/releases/{version}"
Limit = Annotated[int, Query(ge=1, le=10_000)]
Offset = Annotated[int, Query(ge=0, le=1_000_000_000)]


@router.post(RELEASE + "/deployments", status_code=status.HTTP_202_ACCEPTED)
def request_deployments(
    track: str, version: str, body: DeploymentsIn, runtime: RuntimeDep, who: RollOut
) -> dict[str, Any]:
    batch = runtime.hub.request_deployments(
        track, version, body.installations, body.applications, body.phase, actor=who.name
    )
    settle(runtime, batch.position)
    return {
        "deployments": [
            {
                "id": d.id,
                "installation_id": d.installation_id,
                "application": d.application,
                "phase": d.phase,
                "status": d.status,
            }
            for d in batch.deployments
        ]
    }


def _scoped_tenant(who: Any, asked: str | None) -> str | None:
    scope = tenant_scope(who)
    if scope is None:
        return asked
    if asked is not None and asked != scope:
        # Another tenant's installations do not exist for this token.
        return "~"
    return scope


@router.get(RELEASE + "/rollout")
def rollout_status(
    track: str,
    version: str,
    runtime: RuntimeDep,
    who: ReaderDep,
    status: Annotated[
        str | None, Query(pattern="^(yet_to_trigger|ongoing|failed|completed)$")
    ] = None,
    tenant_id: Annotated[TenantId | None, Query()] = None,
    limit: Limit = 1000,
    offset: Offset = 0,
) -> Any:
    scope = tenant_scope(who)
    if scope is not None and runtime.releases.release(track, version, only_tenant=scope) is None:
        raise ApiProblemError(404, "not_found", f"release {version!r} of track {track!r} not found")
    found = runtime.rollouts.rollout(
        track, version, status, _scoped_tenant(who, tenant_id), limit, offset
    )
    if found is None:
        raise ApiProblemError(404, "not_found", f"release {version!r} of track {track!r} not found")
    return found


@router.get(RELEASE + "/history")
def rollout_history(
    track: str,
    version: str,
    runtime: RuntimeDep,
    who: ReaderDep,
    installation_id: Annotated[str | None, Query(max_length=63)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> list[dict[str, Any]]:
    scope = tenant_scope(who)
    if runtime.releases.release(track, version, only_tenant=scope) is None:
        raise ApiProblemError(404, "not_found", f"release {version!r} of track {track!r} not found")
    return runtime.rollouts.history(track, version, scope, installation_id, limit, offset)


@router.get("/deployments/{deployment_id}")
def get_deployment(deployment_id: str, runtime: RuntimeDep, who: ReaderDep) -> Any:
    found = runtime.rollouts.deployment(deployment_id)
    scope = tenant_scope(who)
    if found is None or (scope is not None and found["tenant_id"] != scope):
        raise ApiProblemError(404, "not_found", f"deployment {deployment_id!r} not found")
    return found


@router.post("/deployments/{deployment_id}/result")
def report_result(
    deployment_id: str, body: DeploymentResultIn, runtime: RuntimeDep, who: ReportResults
) -> Any:
    outcome = runtime.hub.report_result(
        deployment_id, body.status == "succeeded", body.message, actor=who.name
    )
    runtime.deployer.forget_pending(deployment_id)
    settle(runtime, outcome.position)
    return runtime.rollouts.deployment(deployment_id) or {
        "id": deployment_id,
        "status": body.status,
    }

"""Tenants, installations and environment mappings."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, status

from api.deps import ManagePlatform, ReaderDep, RuntimeDep, settle, tenant_scope
from api.problems import ApiProblemError
from api.schemas import EnvironmentMappingIn, InstallationIn, TenantIn, TenantPatch

router = APIRouter(prefix="/tenants", tags=["tenants"])


def _tenant_or_404(runtime: RuntimeDep, tenant_id: str) -> dict[str, Any]:
    found = runtime.tenants.tenant(tenant_id)
    if found is None:
        raise ApiProblemError(404, "not_found", f"tenant {tenant_id!r} not found")
    return found


@router.post("", status_code=status.HTTP_201_CREATED)
def create_tenant(body: TenantIn, runtime: RuntimeDep, who: ManagePlatform) -> Any:
    outcome = runtime.hub.register_tenant(
        body.tenant_id, body.display_name, body.description, actor=who.name
    )
    settle(runtime, outcome.position)
    return _tenant_or_404(runtime, body.tenant_id)


@router.get("")
def list_tenants(
    runtime: RuntimeDep,
    who: ReaderDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> list[dict[str, Any]]:
    return runtime.tenants.tenants(limit, offset, only_tenant=tenant_scope(who))


@router.get("/{tenant_id}")
def get_tenant(tenant_id: str, runtime: RuntimeDep, who: ReaderDep) -> Any:
    scope = tenant_scope(who)
    if scope is not None and scope != tenant_id:
        # Never reveal that another tenant exists.
        raise ApiProblemError(404, "not_found", f"tenant {tenant_id!r} not found")
    return _tenant_or_404(runtime, tenant_id)


@router.patch("/{tenant_id}")
def update_tenant(
    tenant_id: str, body: TenantPatch, runtime: RuntimeDep, who: ManagePlatform
) -> Any:
    outcome = runtime.hub.change_tenant(
        tenant_id, body.display_name, body.description, actor=who.name
    )
    settle(runtime, outcome.position)
    return _tenant_or_404(runtime, tenant_id)


@router.post("/{tenant_id}/installations", status_code=status.HTTP_201_CREATED)
def add_installation(
    tenant_id: str, body: InstallationIn, runtime: RuntimeDep, who: ManagePlatform
) -> Any:
    outcome = runtime.hub.add_installation(
        tenant_id, body.installation_id, body.display_name, actor=who.name
    )
    settle(runtime, outcome.position)
    tenant = _tenant_or_404(runtime, tenant_id)
    return next(i for i in tenant["installations"] if i["installation_id"] == body.installation_id)


@router.put("/{tenant_id}/installations/{installation_id}/environments")
def map_environments(
    tenant_id: str,
    installation_id: str,
    body: EnvironmentMappingIn,
    runtime: RuntimeDep,
    who: ManagePlatform,
) -> Any:
    outcome = runtime.hub.map_environments(
        tenant_id, installation_id, body.environments, actor=who.name
    )
    settle(runtime, outcome.position)
    tenant = _tenant_or_404(runtime, tenant_id)
    return next(i for i in tenant["installations"] if i["installation_id"] == installation_id)

"""Request dependencies: the runtime, the authenticated principal, and role checks."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from adapters.tokens import Principal
from api.bootstrap import Runtime
from api.problems import ApiProblemError, ReadModelsBehindError
from domain.access import Permission, Role, allows

_bearer = HTTPBearer(auto_error=False, description="an sdh API token")


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_principal(
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ApiProblemError(401, "unauthorized", "send 'Authorization: Bearer <token>'")
    principal = runtime.auth.authenticate(credentials.credentials)
    if principal is None:
        raise ApiProblemError(401, "unauthorized", "unknown, revoked or expired token")
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require(permission: Permission) -> Any:
    def check(principal: PrincipalDep) -> Principal:
        if not allows(principal.role, permission):
            raise ApiProblemError(
                403,
                "forbidden",
                f"role {principal.role.value!r} may not do this (needs {permission.value})",
            )
        return principal

    return Depends(check)


def reader(principal: PrincipalDep) -> Principal:
    """Anyone who may read: every role with read_all, and tenant tokens (scoped)."""
    if principal.role is Role.TENANT or allows(principal.role, Permission.READ_ALL):
        return principal
    raise ApiProblemError(403, "forbidden", "this token may not read")  # pragma: no cover


ReaderDep = Annotated[Principal, Depends(reader)]


def tenant_scope(principal: Principal) -> str | None:
    """The tenant a token is confined to, or None for a vendor-side token."""
    return principal.tenant_id if principal.role is Role.TENANT else None


def staff_only(principal: Principal) -> None:
    """Catalog-wide reads are not for tenant tokens."""
    if principal.role is Role.TENANT:
        raise ApiProblemError(403, "forbidden", "a tenant token reads only its own tenant")


ManagePlatform = Annotated[Principal, require(Permission.MANAGE_PLATFORM)]
ManageApplications = Annotated[Principal, require(Permission.MANAGE_APPLICATIONS)]
ManageReleases = Annotated[Principal, require(Permission.MANAGE_RELEASES)]
WriteInstructions = Annotated[Principal, require(Permission.WRITE_INSTRUCTIONS)]
ManageTokens = Annotated[Principal, require(Permission.MANAGE_TOKENS)]
RollOut = Annotated[Principal, require(Permission.ROLL_OUT)]
ReportResults = Annotated[Principal, require(Permission.REPORT_RESULTS)]
ReadAll = Annotated[Principal, require(Permission.READ_ALL)]


def settle(runtime: Runtime, position: int) -> None:
    """Read-your-writes: the answer to a command reflects the command. When the read
    models lag past the bound, say so (202) rather than answer with stale data."""
    if not runtime.wait_for(position):
        raise ReadModelsBehindError(position)

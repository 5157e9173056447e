"""API tokens (admin only). Secrets are shown once; only their hashes are kept."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response, status

from api.deps import ManageTokens, ReaderDep, RuntimeDep, settle
from api.schemas import TokenIn

router = APIRouter(prefix="/tokens", tags=["tokens"])


@router.post("", status_code=status.HTTP_201_CREATED)
def create_token(body: TokenIn, runtime: RuntimeDep, who: ManageTokens) -> dict[str, Any]:
    issued = runtime.hub.issue_token(
        body.name, body.role, body.tenant_id, body.expires_in_days, actor=who.name
    )
    settle(runtime, issued.position)
    return {
        "name": issued.name,
        "role": issued.role,
        "tenant_id": issued.tenant_id,
        "expires_at": issued.expires_at,
        "token": issued.secret,
    }


@router.get("")
def list_tokens(runtime: RuntimeDep, _: ManageTokens) -> list[dict[str, Any]]:
    last_used = runtime.auth.last_used()
    return [
        {**token, "last_used_at": last_used.get(token["name"])} for token in runtime.tokens.tokens()
    ]


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_token(name: str, runtime: RuntimeDep, who: ManageTokens) -> Response:
    outcome = runtime.hub.revoke_token(name, actor=who.name)
    settle(runtime, outcome.position)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


me = APIRouter(tags=["tokens"])


@me.get("/me")
def whoami(who: ReaderDep) -> dict[str, Any]:
    """The calling token's name, role and tenant (what a client may show or offer)."""
    return {"name": who.name, "role": who.role.value, "tenant_id": who.tenant_id}

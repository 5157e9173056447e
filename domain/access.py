"""Who may do what: roles, permissions and API tokens."""

from __future__ import annotations

from enum import StrEnum
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.base import deterministic_id, stable_topics
from domain.errors import DuplicateError, InvalidRoleError, NotFoundError
from domain.ids import check_name, check_tenant_id


class Role(StrEnum):
    ADMIN = "admin"
    RELEASE_MANAGER = "release-manager"
    DEPLOYER = "deployer"
    DEVELOPER = "developer"
    VIEWER = "viewer"
    TENANT = "tenant"


class Permission(StrEnum):
    READ_ALL = "read_all"
    MANAGE_PLATFORM = "manage_platform"  # environments, tenants, installations, mappings
    MANAGE_APPLICATIONS = "manage_applications"  # applications, pipelines, images
    MANAGE_RELEASES = "manage_releases"  # tracks, releases, requirements, lifecycle, notes
    WRITE_INSTRUCTIONS = "write_instructions"
    ROLL_OUT = "roll_out"
    REPORT_RESULTS = "report_results"
    MANAGE_TOKENS = "manage_tokens"


_READERS = {Permission.READ_ALL}
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.RELEASE_MANAGER: frozenset(
        _READERS | {Permission.MANAGE_RELEASES, Permission.WRITE_INSTRUCTIONS, Permission.ROLL_OUT}
    ),
    Role.DEPLOYER: frozenset(_READERS | {Permission.ROLL_OUT, Permission.REPORT_RESULTS}),
    Role.DEVELOPER: frozenset(
        _READERS | {Permission.MANAGE_APPLICATIONS, Permission.WRITE_INSTRUCTIONS}
    ),
    Role.VIEWER: frozenset(_READERS),
    # A tenant token reads its own tenant only; every query filters by its tenant_id.
    Role.TENANT: frozenset(),
}


def allows(role: Role, permission: Permission) -> bool:
    return permission in ROLE_PERMISSIONS[role]


def parse_role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise InvalidRoleError(
            f"role {value!r} is not one of {', '.join(r.value for r in Role)}", field="role"
        ) from None


@stable_topics("token")
class ApiToken(Aggregate):
    """A named bearer token. Only the SHA-256 of its secret is ever stored."""

    @staticmethod
    def create_id(name: str) -> UUID:
        return deterministic_id("token", name)

    @classmethod
    def issue(
        cls,
        name: str,
        role: Role,
        tenant_id: str | None,
        token_hash: str,
        expires_at: str | None,
        actor: str,
    ) -> ApiToken:
        check_name(name, "name")
        cls._check_binding(role, tenant_id)
        return cls(
            name=name,
            role=role.value,
            tenant_id=tenant_id,
            token_hash=token_hash,
            expires_at=expires_at,
            actor=actor,
        )

    @staticmethod
    def _check_binding(role: Role, tenant_id: str | None) -> None:
        if role is Role.TENANT and tenant_id is None:
            raise InvalidRoleError("a tenant token needs tenant_id", field="tenant_id")
        if role is not Role.TENANT and tenant_id is not None:
            raise InvalidRoleError("only a tenant token is bound to a tenant_id", field="tenant_id")
        if tenant_id is not None:
            check_tenant_id(tenant_id)

    @event("TokenIssued")
    def __init__(
        self,
        name: str,
        role: str,
        tenant_id: str | None,
        token_hash: str,
        expires_at: str | None,
        actor: str,
    ) -> None:
        self.name = name
        self.role = Role(role)
        self.tenant_id = tenant_id
        self.token_hash = token_hash
        self.expires_at = expires_at
        self.revoked = False

    def reissue(
        self,
        role: Role,
        tenant_id: str | None,
        token_hash: str,
        expires_at: str | None,
        actor: str,
    ) -> None:
        """A revoked name may be used again; a live one may not."""
        if not self.revoked:
            raise DuplicateError(f"token {self.name!r} exists; revoke it first")
        self._check_binding(role, tenant_id)
        self._reissued(
            role=role.value,
            tenant_id=tenant_id,
            token_hash=token_hash,
            expires_at=expires_at,
            actor=actor,
        )

    @event("TokenReissued")
    def _reissued(
        self,
        role: str,
        tenant_id: str | None,
        token_hash: str,
        expires_at: str | None,
        actor: str,
    ) -> None:
        self.role = Role(role)
        self.tenant_id = tenant_id
        self.token_hash = token_hash
        self.expires_at = expires_at
        self.revoked = False

    def revoke(self, actor: str) -> None:
        if self.revoked:
            raise NotFoundError(f"token {self.name!r} was already revoked")
        self._revoked(actor=actor)

    @event("TokenRevoked")
    def _revoked(self, actor: str) -> None:
        self.revoked = True

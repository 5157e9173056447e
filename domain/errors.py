"""Domain errors. Each carries the stable API ``code`` and the kind of refusal it is.

The HTTP edge maps ``kind`` to a status once (invalid → 422, not found → 404,
conflict → 409); nothing inside the domain knows about HTTP.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, ClassVar


class ErrorKind(Enum):
    INVALID = "invalid"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    FORBIDDEN = "forbidden"


class DomainError(Exception):
    code: ClassVar[str] = "domain_error"
    kind: ClassVar[ErrorKind] = ErrorKind.CONFLICT

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class InvalidInputError(DomainError):
    code = "invalid_input"
    kind = ErrorKind.INVALID


class InvalidIdentifierError(InvalidInputError):
    code = "invalid_identifier"


class InvalidSemverError(InvalidInputError):
    code = "invalid_semver"


class InvalidStagesError(InvalidInputError):
    code = "invalid_stages"


class UnknownImageError(InvalidInputError):
    code = "unknown_image"


class InvalidTargetError(InvalidInputError):
    code = "invalid_target"


class CatalogDataInvalidError(InvalidInputError):
    code = "catalog_invalid"


class InvalidCatalogSchemaError(InvalidInputError):
    code = "invalid_catalog_schema"


class InvalidRoleError(InvalidInputError):
    code = "invalid_role"


class NotFoundError(DomainError):
    code = "not_found"
    kind = ErrorKind.NOT_FOUND


class DuplicateError(DomainError):
    code = "duplicate"


class ConcurrentModificationError(DomainError):
    code = "concurrent_modification"


class EnvironmentAlreadyMappedError(DomainError):
    code = "environment_already_mapped"


class ReleaseLockedError(DomainError):
    code = "release_locked"


class ReleaseNotLockedError(DomainError):
    code = "release_not_locked"


class ReleaseOnHoldError(DomainError):
    code = "release_on_hold"


class ReleaseRescindedError(DomainError):
    code = "release_rescinded"


class RequirementsIncompleteError(DomainError):
    code = "requirements_incomplete"


class NoTargetedInstallationError(DomainError):
    code = "no_targeted_installation"


class InvalidReleaseStatusError(DomainError):
    code = "invalid_status"


class DeploymentsRequestedError(DomainError):
    code = "deployments_requested"


class ForbiddenError(DomainError):
    code = "forbidden"
    kind = ErrorKind.FORBIDDEN


class UnknownWorkflowError(InvalidInputError):
    code = "unknown_workflow"


class ApplicationNotInReleaseError(DomainError):
    code = "application_not_in_release"
    kind = ErrorKind.NOT_FOUND


class DeploymentRefusedError(DomainError):
    """Some requested (installation, application) pairs may not deploy; none was queued."""

    code = "deployment_refused"


class StageGateError(DeploymentRefusedError):
    code = "stage_gate"


class DeploymentFinishedError(DomainError):
    code = "deployment_finished"

"""Human identifiers and their validation."""

from __future__ import annotations

import re

import semver

from domain.errors import InvalidIdentifierError, InvalidSemverError

# API.md fixes the tenant id pattern; the other ids use the same DNS-label style so
# they can become Kubernetes names and NATS subject tokens, with '.' and '_' allowed.
TENANT_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,62}$"

_TENANT_ID = re.compile(TENANT_ID_PATTERN)
_NAME = re.compile(NAME_PATTERN)


def check_tenant_id(value: str) -> str:
    if not _TENANT_ID.fullmatch(value):
        raise InvalidIdentifierError(
            f"tenant_id {value!r} must match {TENANT_ID_PATTERN}", field="tenant_id"
        )
    return value


def check_name(value: str, field: str) -> str:
    if not _NAME.fullmatch(value):
        raise InvalidIdentifierError(f"{field} {value!r} must match {NAME_PATTERN}", field=field)
    return value


def check_semver(value: str) -> str:
    """The version exactly as written, once it parses as SemVer 2.0.0 (no 'v' prefix)."""
    try:
        semver.Version.parse(value)
    except (ValueError, TypeError):
        raise InvalidSemverError(
            f"version {value!r} is not a semantic version (MAJOR.MINOR.PATCH[-PRE][+BUILD])",
            field="version",
        ) from None
    return value


def semver_sort_key(value: str) -> semver.Version:
    return semver.Version.parse(value)

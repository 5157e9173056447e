"""Request bodies. Unknown fields are refused (422) and every string is bounded."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from domain.ids import NAME_PATTERN, TENANT_ID_PATTERN

Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
TenantId = Annotated[str, StringConstraints(pattern=TENANT_ID_PATTERN)]
Label = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Description = Annotated[str, StringConstraints(max_length=2000)]
Markdown = Annotated[str, StringConstraints(max_length=100_000)]
Reason = Annotated[str, StringConstraints(max_length=2000)]


def _refuse_nul(value: Any) -> Any:
    """NUL cannot be stored in a PostgreSQL text column: an event carrying one would stop
    the read models for good. Refuse it in any string, key or value, at any depth; and
    NaN/Infinity, which Python's JSON parser accepts but JSON itself does not have."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise ValueError("strings may not contain NUL (\\u0000) characters")
        elif isinstance(item, float) and not math.isfinite(item):
            raise ValueError("numbers must be finite (NaN and Infinity are not JSON)")
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return value


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        return _refuse_nul(data)


class EnvironmentIn(Body):
    name: Name
    cluster: Annotated[str, StringConstraints(max_length=253)] = ""
    namespace: Annotated[str, StringConstraints(max_length=253)] = ""
    description: Description = ""


class ApplicationIn(Body):
    name: Name
    project: Annotated[str, StringConstraints(max_length=200)] = ""
    description: Description = ""


class SimulateSpec(Body):
    outcome: Literal["succeeded", "failed"] = "succeeded"
    seconds: Annotated[float, Field(ge=0, le=3600)] = 0.0
    model_config = ConfigDict(extra="forbid", strict=False)


class WebhookSpec(Body):
    url: Annotated[str, StringConstraints(pattern=r"^https?://", max_length=2000)]
    secret: Annotated[str, StringConstraints(min_length=1, max_length=500)]


class KubernetesSpec(Body):
    namespace: Annotated[str, StringConstraints(max_length=253)] | None = None
    deployment: Annotated[str, StringConstraints(min_length=1, max_length=253)]
    container: Annotated[str, StringConstraints(max_length=253)] | None = None
    # The pre/post-deploy Job's command (the image's entrypoint when absent).
    command: (
        Annotated[list[Annotated[str, StringConstraints(max_length=1000)]], Field(max_length=50)]
        | None
    ) = None


class Target(Body):
    """At most one adapter; none means the simulated one."""

    simulate: SimulateSpec | None = None
    webhook: WebhookSpec | None = None
    kubernetes: KubernetesSpec | None = None

    @model_validator(mode="after")
    def _one_adapter(self) -> Target:
        chosen = [k for k in ("simulate", "webhook", "kubernetes") if getattr(self, k) is not None]
        if len(chosen) > 1:
            raise ValueError(f"a target names one adapter, not {' and '.join(chosen)}")
        return self

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class PipelineIn(Body):
    target: Target = Field(default_factory=Target)
    pre_deploy: Target | None = None
    post_deploy: Target | None = None


class ImageIn(Body):
    workflow: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    image: Annotated[str, StringConstraints(min_length=1, max_length=500)]
    commit: Annotated[str, StringConstraints(max_length=100)] = ""
    digest: Annotated[str, StringConstraints(pattern=r"^[a-z0-9]+:[a-f0-9]{32,128}$")] | None = None


class TenantIn(Body):
    tenant_id: TenantId
    display_name: Label
    description: Description = ""


class TenantPatch(Body):
    display_name: Label | None = None
    description: Description | None = None


class InstallationIn(Body):
    installation_id: Name
    display_name: Label


class EnvironmentMappingIn(Body):
    environments: Annotated[list[Name], Field(max_length=1000)]


class TrackIn(Body):
    name: Name
    description: Description = ""
    catalog_schema: dict[str, Any] | None = None
    model_config = ConfigDict(extra="forbid", strict=False)


class ReleaseIn(Body):
    version: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    name: Label | None = None
    description: Description = ""
    clone_from: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None


class StagesIn(Body):
    stages: Annotated[list[Annotated[list[Name], Field(max_length=500)]], Field(max_length=50)]


class ReleaseApplicationIn(Body):
    workflow: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    image: Annotated[str, StringConstraints(min_length=1, max_length=500)] | None = None
    instructions: Markdown | None = None


class ReasonIn(Body):
    reason: Reason = ""


class RescindIn(Body):
    reason: Annotated[str, StringConstraints(min_length=1, max_length=2000)]


class NotesIn(Body):
    markdown: Markdown


class CatalogIn(Body):
    data: Any
    model_config = ConfigDict(extra="forbid", strict=False)


class TokenIn(Body):
    name: Name
    role: Literal["admin", "release-manager", "deployer", "developer", "viewer", "tenant"]
    tenant_id: TenantId | None = None
    expires_in_days: Annotated[int, Field(ge=1, le=3650)] | None = None


class DeploymentsIn(Body):
    installations: Annotated[list[Name], Field(min_length=1, max_length=10_000)]
    applications: Annotated[list[Name], Field(min_length=1, max_length=500)]
    phase: Literal["pre", "deploy", "post"] = "deploy"


class DeploymentResultIn(Body):
    status: Literal["succeeded", "failed"]
    message: Annotated[str, StringConstraints(max_length=2000)] = ""

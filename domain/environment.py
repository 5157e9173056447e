"""Environments: deploy targets that belong to at most one tenant installation."""

from __future__ import annotations

from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.base import deterministic_id, stable_topics
from domain.errors import EnvironmentAlreadyMappedError
from domain.ids import check_name


@stable_topics("environment")
class Environment(Aggregate):
    @staticmethod
    def create_id(name: str) -> UUID:
        return deterministic_id("environment", name)

    @classmethod
    def register(
        cls, name: str, cluster: str, namespace: str, description: str, actor: str
    ) -> Environment:
        check_name(name, "name")
        return cls(
            name=name, cluster=cluster, namespace=namespace, description=description, actor=actor
        )

    @event("EnvironmentRegistered")
    def __init__(
        self, name: str, cluster: str, namespace: str, description: str, actor: str
    ) -> None:
        self.name = name
        self.cluster = cluster
        self.namespace = namespace
        self.description = description
        self.installation: dict[str, str] | None = None

    def map_to(self, tenant_id: str, installation_id: str, actor: str) -> None:
        wanted = {"tenant_id": tenant_id, "installation_id": installation_id}
        if self.installation == wanted:
            return
        if self.installation is not None:
            raise EnvironmentAlreadyMappedError(
                f"environment {self.name!r} is mapped to installation "
                f"{self.installation['installation_id']!r}",
                environments=[{"environment": self.name, **self.installation}],
            )
        self._mapped(tenant_id=tenant_id, installation_id=installation_id, actor=actor)

    @event("EnvironmentMapped")
    def _mapped(self, tenant_id: str, installation_id: str, actor: str) -> None:
        self.installation = {"tenant_id": tenant_id, "installation_id": installation_id}

    def unmap(self, actor: str) -> None:
        if self.installation is None:
            return
        self._unmapped(
            tenant_id=self.installation["tenant_id"],
            installation_id=self.installation["installation_id"],
            actor=actor,
        )

    @event("EnvironmentUnmapped")
    def _unmapped(self, tenant_id: str, installation_id: str, actor: str) -> None:
        self.installation = None

"""Tenants, their installations, and which environments each installation owns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.base import deterministic_id, stable_topics
from domain.environment import Environment
from domain.errors import DuplicateError, EnvironmentAlreadyMappedError, NotFoundError
from domain.ids import check_name, check_tenant_id


@stable_topics("tenant")
class Tenant(Aggregate):
    """A customer. ``tenant_id`` never changes; the display name may."""

    @staticmethod
    def create_id(tenant_id: str) -> UUID:
        return deterministic_id("tenant", tenant_id)

    @classmethod
    def register(cls, tenant_id: str, display_name: str, description: str, actor: str) -> Tenant:
        check_tenant_id(tenant_id)
        return cls(
            tenant_id=tenant_id, display_name=display_name, description=description, actor=actor
        )

    @event("TenantRegistered")
    def __init__(self, tenant_id: str, display_name: str, description: str, actor: str) -> None:
        self.tenant_id = tenant_id
        self.display_name = display_name
        self.description = description
        # installation_id -> {"display_name": str, "environments": [name, ...]}
        self.installations: dict[str, dict[str, Any]] = {}

    def change_details(self, display_name: str | None, description: str | None, actor: str) -> bool:
        new_name = self.display_name if display_name is None else display_name
        new_description = self.description if description is None else description
        if (new_name, new_description) == (self.display_name, self.description):
            return False
        self._details_changed(display_name=new_name, description=new_description, actor=actor)
        return True

    @event("TenantDetailsChanged")
    def _details_changed(self, display_name: str, description: str, actor: str) -> None:
        self.display_name = display_name
        self.description = description

    def add_installation(
        self, installation_id: str, display_name: str, actor: str
    ) -> InstallationReservation:
        """Adds the installation and returns the reservation to save with it: the
        reservation's deterministic id keeps ``installation_id`` unique across tenants."""
        check_name(installation_id, "installation_id")
        if installation_id in self.installations:
            raise DuplicateError(f"installation {installation_id!r} already exists")
        self._installation_added(
            installation_id=installation_id, display_name=display_name, actor=actor
        )
        return InstallationReservation(
            installation_id=installation_id, tenant_id=self.tenant_id, actor=actor
        )

    @event("InstallationAdded")
    def _installation_added(self, installation_id: str, display_name: str, actor: str) -> None:
        self.installations[installation_id] = {"display_name": display_name, "environments": []}

    def map_environments(
        self,
        installation_id: str,
        wanted: Sequence[Environment],
        currently_mapped: Sequence[Environment],
        actor: str,
    ) -> list[Environment]:
        """Makes ``wanted`` exactly the environments of the installation.

        Every environment involved is checked before anything changes, so a refusal
        changes nothing. Returns the environments that changed: save them together
        with this tenant, so a concurrent mapping of any of them conflicts.
        """
        if installation_id not in self.installations:
            raise NotFoundError(
                f"tenant {self.tenant_id!r} has no installation {installation_id!r}"
            )
        taken = [
            {"environment": env.name, **env.installation}
            for env in wanted
            if env.installation is not None
            and env.installation
            != {"tenant_id": self.tenant_id, "installation_id": installation_id}
        ]
        if taken:
            names = ", ".join(t["environment"] for t in taken)
            raise EnvironmentAlreadyMappedError(
                f"already mapped to another installation: {names}", environments=taken
            )
        wanted_names = [env.name for env in wanted]
        changed: list[Environment] = []
        for env in currently_mapped:
            if env.name not in wanted_names:
                env.unmap(actor=actor)
                changed.append(env)
        for env in wanted:
            if env.installation is None:
                env.map_to(self.tenant_id, installation_id, actor=actor)
                changed.append(env)
        if sorted(wanted_names) != sorted(self.installations[installation_id]["environments"]):
            self._installation_environments_set(
                installation_id=installation_id, environments=sorted(wanted_names), actor=actor
            )
        return changed

    @event("InstallationEnvironmentsSet")
    def _installation_environments_set(
        self, installation_id: str, environments: list[str], actor: str
    ) -> None:
        self.installations[installation_id]["environments"] = list(environments)


@stable_topics("installation")
class InstallationReservation(Aggregate):
    """Reserves an installation id across all tenants (its id is derived from it)."""

    @staticmethod
    def create_id(installation_id: str) -> UUID:
        return deterministic_id("installation", installation_id)

    @event("InstallationReserved")
    def __init__(self, installation_id: str, tenant_id: str, actor: str) -> None:
        self.installation_id = installation_id
        self.tenant_id = tenant_id

"""The notification log as the rest of sdh reads it: stable, JSON-ready event records."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.persistence import Mapper, Notification

SECRET_KEYS = frozenset({"secret", "token_hash"})


def redact(value: Any) -> Any:
    """Hides credentials (webhook secrets, token hashes) in anything shown to readers or
    published; the store keeps them, since the deployer needs the secret to sign."""
    if isinstance(value, dict):
        return {k: "********" if k in SECRET_KEYS else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


_SKIPPED = {"originator_id", "originator_version", "timestamp", "originator_topic", "actor"}


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """One stored event: what projections, the deployer, the relay and auditors see.

    ``type`` is the event class name (``RequirementsLocked``), ``aggregate`` the short
    aggregate kind (``release``); together they form the stable topic and NATS subject.
    """

    position: int
    id: str
    type: str
    aggregate: str
    aggregate_id: str
    version: int
    timestamp: datetime
    actor: str
    data: dict[str, Any]

    @property
    def topic(self) -> str:
        return f"sdh.{self.aggregate}.{self.type}"

    def as_json(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "id": self.id,
            "type": self.type,
            "aggregate": self.aggregate,
            "aggregate_id": self.aggregate_id,
            "version": self.version,
            "timestamp": self.timestamp.isoformat(),
            "actor": self.actor,
            "data": redact(self.data),
        }


def event_id(aggregate_id: UUID, version: int) -> str:
    """Deterministic, so a re-published event keeps its id (NATS de-duplication)."""
    return str(uuid5(aggregate_id, str(version)))


def event_fields(domain_event: object) -> tuple[str, dict[str, Any]]:
    """The actor and the payload of a domain event."""
    fields = vars(domain_event)
    return str(fields.get("actor", "")), {k: v for k, v in fields.items() if k not in _SKIPPED}


def decode(notification: Notification, mapper: Mapper[UUID]) -> RecordedEvent:
    # Through the mapper, so upcasters of old event versions apply.
    domain_event = mapper.to_domain_event(notification)
    _, _, rest = notification.topic.partition("sdh.")
    aggregate, _, type_name = rest.rpartition(".")
    fields = vars(domain_event)
    actor, data = event_fields(domain_event)
    return RecordedEvent(
        position=notification.id,
        id=event_id(UUID(str(notification.originator_id)), notification.originator_version),
        type=type_name,
        aggregate=aggregate,
        aggregate_id=str(notification.originator_id),
        version=notification.originator_version,
        timestamp=fields["timestamp"],
        actor=actor,
        data=data,
    )

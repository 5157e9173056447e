"""What every sdh aggregate shares: stable topics and deterministic ids."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, CanMutateAggregate
from eventsourcing.utils import register_topic

A = TypeVar("A", bound=type[Aggregate])

# Never change: every stored id is derived from it.
SDH_NAMESPACE = UUID("6f1c3a52-3c6e-4b8e-9d0e-5d2f7b6c1a90")


def deterministic_id(kind: str, *parts: str) -> UUID:
    """Same human id, same aggregate id: creating a second one is a version conflict
    in the store itself, so uniqueness needs no read-then-write."""
    return uuid5(SDH_NAMESPACE, "/".join((kind, *parts)))


def stable_topics(name: str) -> Callable[[A], A]:
    """Give an aggregate and its events topics that do not depend on module paths.

    Stored events keep ``sdh.<name>.<EventName>``, so modules can move without
    breaking history; the same string is the NATS subject suffix.
    """

    def decorate(cls: A) -> A:
        topic = f"sdh.{name}"
        cls.TOPIC = topic  # type: ignore[attr-defined]
        register_topic(topic, cls)
        for attr, obj in list(vars(cls).items()):
            if isinstance(obj, type) and issubclass(obj, CanMutateAggregate) and attr != "Event":
                event_topic = f"{topic}.{obj.__name__}"
                obj.TOPIC = event_topic  # type: ignore[attr-defined]
                register_topic(event_topic, obj)
        return cls

    return decorate


def aggregate_kind(obj: Any) -> str:
    """The short name ('release', 'tenant', …) from an aggregate's stable topic."""
    topic: str = type(obj).TOPIC
    return topic.removeprefix("sdh.")


def evolve(
    event_class: object, version: int, **upcasters: Callable[[dict[str, Any]], None]
) -> None:
    """Declares the current version of an event class and how older stored versions are
    brought up to it (``upcast_v1_v2=...``): stored history stays readable for good."""
    expected = {f"upcast_v{n}_v{n + 1}" for n in range(1, version)}
    if set(upcasters) != expected:
        raise TypeError(f"{event_class} v{version} needs exactly {sorted(expected)}")
    setattr(event_class, "class_version", version)  # noqa: B010
    for name, upcast in upcasters.items():
        setattr(event_class, name, staticmethod(upcast))

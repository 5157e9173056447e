"""Release tracks: one per product, holding its releases and the schema of their catalog data."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.base import deterministic_id, stable_topics
from domain.ids import check_name


@stable_topics("track")
class ReleaseTrack(Aggregate):
    @staticmethod
    def create_id(name: str) -> UUID:
        return deterministic_id("track", name)

    @classmethod
    def create(
        cls, name: str, description: str, catalog_schema: dict[str, Any] | None, actor: str
    ) -> ReleaseTrack:
        check_name(name, "name")
        return cls(name=name, description=description, catalog_schema=catalog_schema, actor=actor)

    @event("ReleaseTrackCreated")
    def __init__(
        self, name: str, description: str, catalog_schema: dict[str, Any] | None, actor: str
    ) -> None:
        self.name = name
        self.description = description
        self.catalog_schema = catalog_schema

"""The document the relay publishes for each event, built without NATS."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

import pytest

from adapters.nats_relay import HumanSubjects, cloud_event, encode, hub_origin
from application.hub import Hub

pytestmark = pytest.mark.unit

SECRET = "hunter2-webhook-secret"
WEBHOOK: dict[str, Any] = {"webhook": {"url": "https://deploy.example/hook", "secret": SECRET}}


@pytest.fixture
def hub() -> Hub:
    hub = Hub(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    hub.register_environment("eu-prod", "cluster-eu", "shop", "", "alice")
    hub.register_application("api", "shop", "", "alice")
    hub.set_pipeline("api", "eu-prod", WEBHOOK, None, None, "alice")
    hub.create_track("shop", "", None, "alice")
    hub.create_release("shop", "1.0.0", None, "", None, "alice")
    hub.set_stages("shop", "1.0.0", [["api"]], "alice")
    return hub


def test_subject_names_the_object_when_the_relay_never_saw_its_creation(hub: Hub) -> None:
    stages_set = hub.read_events(0, 100)[-1]
    assert stages_set.type == "StagesSet"
    assert HumanSubjects(hub_origin(hub))(stages_set) == "release/shop/1.0.0"


def test_subject_is_the_aggregate_id_when_no_name_can_be_found(hub: Hub) -> None:
    stages_set = hub.read_events(0, 100)[-1]
    assert HumanSubjects()(stages_set) == stages_set.aggregate_id


def test_document_is_a_cloud_event_with_secrets_redacted_when_encoded(hub: Hub) -> None:
    pipeline_set = next(e for e in hub.read_events(0, 100) if e.type == "PipelineSet")
    raw = encode(cloud_event(pipeline_set, "urn:sdh", "application/api"))
    document = json.loads(raw)

    assert SECRET.encode() not in raw
    assert document["data"]["target"] == {
        "webhook": {"url": "https://deploy.example/hook", "secret": "********"}
    }
    assert document["specversion"] == "1.0"
    assert document["id"] == pipeline_set.id
    assert document["type"] == "sdh.application.PipelineSet"
    assert document["subject"] == "application/api"
    assert datetime.fromisoformat(document["time"]).utcoffset() is not None
    assert document["sdhactor"] == "alice"
    assert document["sdhposition"] == pipeline_set.position
    assert all(re.fullmatch(r"[a-z0-9]{1,20}", name) for name in document)
    # The stored event keeps the secret: the deployer needs it to sign.
    assert pipeline_set.data["target"]["webhook"]["secret"] == SECRET

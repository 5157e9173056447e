import pytest

pytestmark = pytest.mark.e2e


def test_environment_is_listed_after_create_when_served(api):
    created = api.post("/environments", json={"name": "doc1", "cluster": "c1"})
    assert created.status_code == 201
    assert created.json()["installation"] is None
    listed = api.get("/environments").json()
    assert [e["name"] for e in listed] == ["doc1"]

"""History through the API, on every backend: reads `as_of` a time at each boundary, the kept versions listed,
pruning by count and by age, out-of-order writes, erasure, and rollbacks of one job among two."""

from datetime import timedelta
from typing import Any

import pytest

from tests.components.events.kafka_helpers import consume
from tests.conftest import AppClient, KafkaBroker
from tests.factories import CLOCK_START, write_body

KEPT = {"user_features": {"versions": 3, "retention_seconds": 3600}}
T1, T2, T3 = (CLOCK_START - timedelta(seconds=seconds) for seconds in (30, 20, 10))


def iso(moment) -> str:
    return moment.isoformat(timespec="microseconds")


@pytest.fixture
def client(make_client) -> AppClient:
    return make_client(category_history=KEPT)


def write(
    client: AppClient, event_time, features: dict[str, Any], *, job: str = "job-a", entity: str = "user-123", **more
) -> None:
    categories = {"user_features": features, **more}
    body = write_body(entity, categories, event_time=iso(event_time))
    body["metadata"]["compute_id"] = job
    response = client.post("/api/v1/items", json=body)
    assert response.status_code == 200, response.text


def read_as_of(client: AppClient, as_of, *feature_list: str, entity: str = "user-123") -> dict[str, Any]:
    body = {
        "meta": {"as_of": iso(as_of)},
        "data": {"entity_value": entity, "feature_list": list(feature_list or ["user_features:*"])},
    }
    response = client.post("/api/v1/get/items", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def served(answer: dict[str, Any], category: str = "user_features") -> dict[str, Any]:
    """The category's `{"data", "metadata"}` in a read's answer; it must be there."""
    item = answer["items"].get(category)
    assert item is not None, f"{category} unavailable: {answer['unavailable_feature_categories']}"
    features: dict[str, Any] = item["features"]
    return features


def history(client: AppClient, entity: str = "user-123", query: str = "") -> dict[str, Any]:
    response = client.get(f"/api/v1/history/{entity}/user_features{query}")
    assert response.status_code == 200, response.text
    return response.json()


def rollback(client: AppClient, job: str, *entities: str) -> dict[str, Any]:
    body = {"entity_type": "bright_uid", "entity_values": list(entities), "compute_id": job}
    response = client.post("/api/v1/admin/rollback", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_as_of_answers_the_value_current_at_each_boundary(client: AppClient, clock) -> None:
    for event_time, age in ((T1, 1), (T2, 2), (T3, 3)):
        write(client, event_time, {"age": age})
    exactly = served(read_as_of(client, T2))
    assert (exactly["data"], exactly["metadata"]["as_of_resolved"]) == ({"age": 2}, iso(T2))
    assert exactly["metadata"]["version"] == 2
    between = served(read_as_of(client, T2 + timedelta(seconds=5)))
    assert between["data"] == {"age": 2}
    newest = served(read_as_of(client, T3 + timedelta(seconds=5)))
    assert newest["data"] == {"age": 3}
    assert newest["metadata"]["age_seconds"] == 5.0, "ages are judged at as_of"
    before = read_as_of(client, T1 - timedelta(seconds=1))
    assert before["unavailable_feature_categories"] == ["user_features"]
    assert before["unavailable_reasons"] == {"user_features": "older_than_history"}
    one = client.get("/api/v1/get/item/user-123/user_features", params={"as_of": iso(T1)})
    assert one.status_code == 200 and one.json()["features"]["data"] == {"age": 1}
    gone = client.get("/api/v1/get/item/user-123/user_features", params={"as_of": iso(T1 - timedelta(seconds=1))})
    assert gone.status_code == 404 and "older_than_history" in gone.json()["detail"]
    batch = client.post(
        "/api/v1/get/items/batch",
        json={
            "meta": {"as_of": iso(T2)},
            "data": {"entity_values": ["user-123"], "feature_list": ["user_features:age"]},
        },
    ).json()
    assert batch["results"][0]["items"]["user_features"]["features"]["data"] == {"age": 2}


def test_a_batch_read_as_of_a_time_answers_each_entity_in_order(client: AppClient, clock) -> None:
    entities = [f"user-{number}" for number in range(12)]
    for number, entity in enumerate(entities):
        write(client, T1, {"age": number}, entity=entity)
        write(client, T3, {"age": 100 + number}, entity=entity)
    body = {
        "meta": {"as_of": iso(T2)},
        "data": {"entity_values": [*entities, "nobody"], "feature_list": ["user_features:*"]},
    }
    answer = client.post("/api/v1/get/items/batch", json=body).json()
    assert [result["entity_value"] for result in answer["results"]] == [*entities, "nobody"]
    assert [served(result)["data"]["age"] for result in answer["results"][:-1]] == list(range(12))
    assert answer["results"][-1]["unavailable_feature_categories"] == ["user_features"]
    assert answer["results"][-1]["unavailable_reasons"] == {}


def test_reads_without_as_of_are_unchanged(client: AppClient, clock) -> None:
    write(client, T1, {"age": 1})
    write(client, T2, {"age": 2})
    body = {"meta": {}, "data": {"entity_value": "user-123", "feature_list": ["user_features:*", "credit_features:*"]}}
    answer = client.post("/api/v1/get/items", json=body).json()
    assert "unavailable_reasons" not in answer
    assert "as_of_resolved" not in served(answer)["metadata"]


def test_a_category_without_history_answers_its_current_value_or_no_history(client: AppClient, clock) -> None:
    write(client, T2, {"age": 2}, credit_features={"score": 700})
    write(client, T3, {"age": 3}, credit_features={"score": 710})
    later = read_as_of(client, T3, "credit_features:*")
    assert served(later, "credit_features")["data"] == {"score": 710}
    earlier = read_as_of(client, T2, "credit_features:*", "user_features:*", "trans_features:*")
    assert earlier["unavailable_reasons"] == {"credit_features": "no_history"}
    assert earlier["unavailable_feature_categories"] == ["credit_features", "trans_features"], "absent: no reason"
    assert served(earlier)["data"] == {"age": 2}


def test_versions_past_the_count_are_forgotten(make_client, clock) -> None:
    client = make_client(category_history={"user_features": {"versions": 2, "retention_seconds": 3600}})
    for number, event_time in enumerate((T1, T2, T3, T3 + timedelta(seconds=1)), 1):
        write(client, event_time, {"age": number})
    assert [version["metadata"]["version"] for version in history(client)["versions"]] == [3, 2]
    assert read_as_of(client, T1)["unavailable_reasons"] == {"user_features": "older_than_history"}


def test_versions_past_their_retention_are_forgotten(make_client, clock) -> None:
    client = make_client(category_history={"user_features": {"versions": 5, "retention_seconds": 60}})
    client.app.state.runtime.flows.clock = lambda: clock.now
    write(client, T1, {"age": 1})
    write(client, T2, {"age": 2})
    assert served(read_as_of(client, T1))["data"] == {"age": 1}
    clock.now += 61
    assert history(client)["versions"] == []
    assert read_as_of(client, T1)["unavailable_reasons"] == {"user_features": "older_than_history"}


def test_an_older_write_is_skipped_and_never_enters_history(client: AppClient, clock) -> None:
    write(client, T2, {"age": 2})
    body = write_body("user-123", {"user_features": {"age": 1}}, event_time=iso(T1))
    assert client.post("/api/v1/items", json=body).json()["categories_skipped"] == ["user_features"]
    assert history(client)["versions"] == []
    assert read_as_of(client, T1)["unavailable_reasons"] == {"user_features": "older_than_history"}


def test_the_kept_versions_are_listed_newest_first_in_pages(client: AppClient, clock) -> None:
    for number, event_time in enumerate((T1, T2, T3, T3 + timedelta(seconds=1)), 1):
        write(client, event_time, {"age": number}, job=f"job-{number}")
    first = history(client, query="?limit=2")
    assert first["history"] == {"versions": 3, "retention_seconds": 3600}
    assert [version["data"] for version in first["versions"]] == [{"age": 3}, {"age": 2}]
    assert [version["metadata"]["compute_id"] for version in first["versions"]] == ["job-3", "job-2"]
    assert first["versions"][0]["metadata"]["event_time"] == iso(T3)
    assert first["next_cursor"] == "2"
    rest = history(client, query=f"?limit=2&cursor={first['next_cursor']}")
    assert [version["data"] for version in rest["versions"]] == [{"age": 1}]
    assert rest["next_cursor"] is None
    other = client.get("/api/v1/history/user-123/credit_features").json()
    assert (other["history"], other["versions"]) == (None, [])


def test_an_erasure_removes_the_history(client: AppClient, clock) -> None:
    write(client, T1, {"age": 1})
    write(client, T2, {"age": 2})
    response = client.delete("/api/v1/items/user-123", params={"category": "user_features"})
    assert response.status_code == 200, response.text
    assert history(client)["versions"] == []
    answer = read_as_of(client, T1)
    assert answer["unavailable_feature_categories"] == ["user_features"]
    assert answer["unavailable_reasons"] == {}


def test_a_rollback_undoes_one_job_among_two_and_is_idempotent(client: AppClient, clock) -> None:
    write(client, T1, {"age": 1}, job="job-a", entity="user-1")
    write(client, T2, {"age": 99}, job="job-b", entity="user-1", credit_features={"score": 1})
    write(client, T1, {"age": 5}, job="job-b", entity="user-2")
    write(client, T2, {"age": 6}, job="job-a", entity="user-2")
    write(client, T1, {"age": 7}, job="job-b", entity="user-3")
    first = rollback(client, "job-b", "user-1", "user-2", "user-3", "user-4")
    assert (first["restored"], first["failed"]) == (1, 0)
    results = {result["entity_value"]: result for result in first["results"]}
    assert results["user-1"]["restored"] == [
        {"category": "user_features", "version": 3, "undone_version": 2, "restored_version": 1}
    ]
    assert results["user-1"]["untouched"] == [{"category": "credit_features", "reason": "no_history"}]
    assert results["user-2"]["untouched"] == [{"category": "user_features", "reason": "written_by_other"}]
    assert results["user-3"]["untouched"] == [{"category": "user_features", "reason": "no_earlier_version"}]
    assert results["user-4"] == {"entity_value": "user-4", "restored": [], "untouched": [], "error": None}
    current = client.get("/api/v1/get/item/user-1/user_features").json()["features"]
    assert current["data"] == {"age": 1}
    metadata = current["metadata"]
    assert (metadata["compute_id"], metadata["event_time"], metadata["version"]) == ("job-a", iso(T1), 3)
    assert client.get("/api/v1/get/item/user-2/user_features").json()["features"]["data"] == {"age": 6}
    kept = history(client, "user-1")["versions"]
    assert [(version["data"], version["metadata"]["compute_id"]) for version in kept] == [
        ({"age": 99}, "job-b"),
        ({"age": 1}, "job-a"),
    ]
    again = rollback(client, "job-b", "user-1", "user-2", "user-3")
    assert again["restored"] == 0
    assert {result["entity_value"]: result["restored"] for result in again["results"]} == {
        "user-1": [],
        "user-2": [],
        "user-3": [],
    }
    assert client.get("/api/v1/get/item/user-1/user_features").json()["features"]["metadata"]["version"] == 3


def test_a_rollback_names_at_most_the_bulk_write_limit(make_client) -> None:
    client = make_client(category_history=KEPT, max_batch_write_entities=2)
    body = {"entity_type": "bright_uid", "entity_values": ["a", "b", "c"], "compute_id": "job-1"}
    response = client.post("/api/v1/admin/rollback", json=body)
    assert response.status_code == 422
    assert "split the rollback" in str(response.json()["detail"])


def test_the_events_of_a_restore_and_an_erasure_decoded_from_kafka(
    make_client, kafka_settings, kafka_broker: KafkaBroker, kafka_topic: str
) -> None:
    client = make_client(category_history=KEPT, **kafka_settings)
    write(client, T1, {"age": 1}, job="job-a", entity="user-1")
    write(client, T2, {"age": 99}, job="job-b", entity="user-1")
    assert rollback(client, "job-b", "user-1")["restored"] == 1
    assert client.delete("/api/v1/items/user-1", params={"category": "user_features"}).status_code == 200
    received = consume(kafka_broker.bootstrap, kafka_topic, distinct=4)
    events = sorted({item.event["event_id"]: item.event for item in received}.values(), key=lambda e: e["version"])
    assert [(event["event_type"], event["version"], event["compute_id"]) for event in events] == [
        ("feature_available", 1, "job-a"),
        ("feature_available", 2, "job-b"),
        ("feature_available", 3, "job-a"),
        ("feature_deleted", 4, ""),
    ]
    assert events[2]["features"] == ["age"] and events[2]["erased_versions"] is None
    assert events[3]["erased_versions"] == 2
    assert {item.key for item in received} == {"bright_uid:user-1"}

"""DynamoDB stops answering (SIGSTOP of a Dynoxide of the test's own) in the middle of a bulk write and of a
single write: no write the store applied is reported `store_unavailable` (which promises nothing was
written); what it may have applied is `outcome_unknown`; and the client's retry with the same
`Idempotency-Key` once DynamoDB is back writes nothing twice and answers the first outcome."""

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from devservers import ManagedServer, ServiceProcess, start_dynoxide
from tests.conftest import KafkaBroker, dynamodb_tables
from tests.test_faults import events_env, pending, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timing]  # DynamoDB stopped for seconds under a service process

ENTITIES = 40
ATTEMPTS = 3
"""The pause must land while the bulk write runs; on a busy machine the write may be done first: then the
run is repeated with new entities."""


def bulk_body(prefix: str) -> dict[str, Any]:
    return {
        "meta": {"source": "prediction_service", "compute_id": "outcome"},
        "data": {
            "entity_type": "bright_uid",
            "entities": [
                {
                    "entity_value": f"{prefix}-{number}",
                    "feature_list": [{"category": "user_features", "features": {"n": 1}}],
                }
                for number in range(ENTITIES)
            ],
        },
    }


def stored_versions(dynamodb: Any, table: str, prefix: str) -> dict[str, int]:
    """entity -> the stored version of its `user_features`, for the entities named `prefix...`, read behind the
    service's back."""
    items = dynamodb.scan(TableName=table, ConsistentRead=True)["Items"]
    return {
        item["bright_uid"]["S"]: int(item["features"]["M"]["metadata"]["M"]["version"]["N"])
        for item in items
        if item["category"]["S"] == "user_features" and item["bright_uid"]["S"].startswith(prefix)
    }


def paused_mid_bulk(
    client: httpx.Client,
    server: ManagedServer,
    dynamodb: Any,
    table: str,
    prefix: str,
    bulk_key: dict[str, str],
    single: dict[str, Any],
    single_key: dict[str, str],
) -> dict[str, httpx.Response]:
    """Send the bulk write, stop DynamoDB once 10 of its entities are stored, send the single write while it is
    stopped, and let it run again once the bulk write is answered: both answers."""
    answers: dict[str, httpx.Response] = {}

    def send_bulk() -> None:
        answers["bulk"] = client.post("/api/v1/items/batch", json=bulk_body(prefix), headers=bulk_key)

    sender = threading.Thread(target=send_bulk)
    sender.start()
    wait_until(lambda: len(stored_versions(dynamodb, table, prefix)) >= 10, 20, "the bulk write did not start")
    server.pause()
    try:
        answers["single"] = client.post("/api/v1/items", json=single, headers=single_key)
        sender.join(timeout=60)
    finally:
        server.resume()
    return answers


def test_a_paused_dynamodb_answers_outcome_unknown_and_the_retry_writes_nothing_twice(
    kafka_mock: KafkaBroker, tmp_path: Path, aws_test_credentials: None, report
) -> None:
    server, endpoint = start_dynoxide(tmp_path)
    tables = {name.upper(): str(value).lower() for name, value in dynamodb_tables().items()}
    topic = f"outcome-{uuid.uuid4().hex[:12]}"
    timeouts = {
        "DYNAMODB_CONNECT_TIMEOUT_SECONDS": "0.5",
        "DYNAMODB_READ_TIMEOUT_SECONDS": "0.5",
        "DYNAMODB_MAX_ATTEMPTS": "2",
        "DYNAMODB_WRITE_CONCURRENCY": "2",
    }
    env = events_env(kafka_mock, topic) | {"STORE_BACKEND": "dynamodb", "DYNAMODB_ENDPOINT_URL": endpoint} | tables
    service = ServiceProcess(env | timeouts, tmp_path)
    dynamodb = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
    table = tables["DYNAMODB_TABLE_BRIGHT_UID"]
    try:
        with httpx.Client(base_url=service.url, timeout=60) as client:
            for attempt in range(1, ATTEMPTS + 1):
                prefix, single_entity = f"bulk{attempt}", f"single{attempt}"
                bulk_key = {"Idempotency-Key": str(uuid.uuid4())}
                single_key = {"Idempotency-Key": str(uuid.uuid4())}
                single = {
                    "meta": {"source": "prediction_service"},
                    "data": {
                        "entity_value": single_entity,
                        "feature_list": [{"category": "user_features", "features": {"n": 1}}],
                    },
                }
                # Written once before: the service knows its version, so the paused write is its transaction
                # (a write of a category the service does not know starts with a read of its version, and a
                # read left unanswered is `store_unavailable`: nothing was sent that could be applied).
                assert client.post("/api/v1/items", json=single).status_code == 200
                answers = paused_mid_bulk(client, server, dynamodb, table, prefix, bulk_key, single, single_key)
                bulk = answers["bulk"].json()["results"]
                errors = {result["entity_value"]: (result["error"] or {}).get("error") for result in bulk}
                stored = stored_versions(dynamodb, table, prefix)
                report(
                    f"attempt {attempt}: bulk: {sum(error is None for error in errors.values())} written, "
                    f"{sum(error == 'outcome_unknown' for error in errors.values())} outcome_unknown, "
                    f"{sum(error == 'store_unavailable' for error in errors.values())} store_unavailable, "
                    f"{len(stored)} stored; single: {answers['single'].status_code} {answers['single'].text[:80]}"
                )
                assert not {entity for entity, error in errors.items() if error == "store_unavailable"} & stored.keys()
                reported = [errors[entity] for entity in stored if entity in errors]
                assert all(error in (None, "outcome_unknown") for error in reported), "stored: written or unknown"
                if "outcome_unknown" in errors.values():
                    break
            assert "outcome_unknown" in errors.values(), f"the pause never hit the bulk write in {ATTEMPTS} attempts"
            assert answers["single"].status_code == 503
            assert answers["single"].json()["error"] == "outcome_unknown"
            assert int(answers["single"].headers["retry-after"]) > 0

            time.sleep(1)  # what the stopped DynamoDB had received is applied once it runs again
            again = client.post("/api/v1/items/batch", json=bulk_body(prefix), headers=bulk_key)
            assert again.status_code == 200 and again.json()["failed"] == 0, again.text
            first_written = {entity for entity, error in errors.items() if error is None}
            replayed = {result["entity_value"]: result for result in again.json()["results"]}
            assert all(replayed[entity]["categories_updated"] == ["user_features"] for entity in first_written)
            single_again = client.post("/api/v1/items", json=single, headers=single_key)
            assert single_again.status_code == 200, single_again.text
            versions = stored_versions(dynamodb, table, prefix)
            assert len(versions) == ENTITIES
            assert set(versions.values()) == {1}, "each entity written once, whatever the retries"
            assert stored_versions(dynamodb, table, single_entity) == {single_entity: 2}, "once before, once keyed"
        wait_until(lambda: pending(service) == 0, 30, "the relay did not drain the outbox")
    finally:
        service.kill()
        server.stop()

"""`feature-store rollback` and the clients' `rollback` against the service under uvicorn: the entities from
JSON Lines or Parquet, sent in parts of the service's bulk-write maximum, and a second run restoring nothing."""

import asyncio
import io
import json
from pathlib import Path

import pytest

from feature_store_client import AsyncFeatureStoreClient, FeatureStoreClient
from feature_store_client.cli import main

pytestmark = pytest.mark.backends("sqlite")
HISTORY = json.dumps({"user_features": {"versions": 5, "retention_seconds": 3600}})
ENTITIES = ["user-1", "user-2", "user-3"]


@pytest.fixture
def url(start_service) -> str:
    """A service keeping user_features' history, whose bulk-write maximum is 2 entities; each entity written by
    job-a then job-b."""
    server_url = start_service(CATEGORY_HISTORY=HISTORY, MAX_BATCH_WRITE_ENTITIES="2").url
    with FeatureStoreClient(server_url) as client:
        for job, age in (("job-a", 1), ("job-b", 99)):
            for entity in ENTITIES:
                client.write(entity, {"user_features": {"age": age}}, source="prediction_service", compute_id=job)
    return server_url


def run(capsys: pytest.CaptureFixture[str], *argv: str, stdin: str = "") -> tuple[int, dict, str]:
    status = main(list(argv), stdin=io.StringIO(stdin))
    captured = capsys.readouterr()
    return status, json.loads(captured.out) if captured.out else {}, captured.err


def ages(url: str) -> list[int]:
    with FeatureStoreClient(url) as client:
        return [client.read_category(entity, "user_features").data["age"] for entity in ENTITIES]


def test_rollback_from_a_load_file_then_again(url: str, capsys, tmp_path: Path) -> None:
    path = tmp_path / "load.jsonl"
    lines = [{"entity_value": entity, "categories": {"user_features": {"age": 99}}} for entity in ENTITIES]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines) + "\n")
    status, summary, _ = run(capsys, "--url", url, "rollback", "--compute-id", "job-b", str(path))
    assert status == 0
    assert (summary["entities"], summary["restored"], summary["failed"]) == (3, 3, 0)
    assert [result["entity_value"] for result in summary["results"]] == ENTITIES
    assert ages(url) == [1, 1, 1]
    status, summary, _ = run(capsys, "--url", url, "rollback", "--compute-id", "job-b", str(path))
    assert (status, summary["restored"], summary["results"]) == (0, 0, [])


def test_rollback_from_standard_input_and_parquet(url: str, capsys, tmp_path: Path) -> None:
    status, summary, _ = run(capsys, "--url", url, "rollback", "--compute-id", "job-b", "-", stdin='"user-1"\n')
    assert (status, summary["restored"]) == (0, 1)
    pyarrow = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "entities.parquet"
    pq.write_table(pyarrow.table({"uid": ENTITIES}), path)
    status, summary, _ = run(
        capsys, "--url", url, "rollback", "--compute-id", "job-b", str(path), "--entity-column", "uid"
    )
    assert (status, summary["restored"]) == (0, 2)
    assert ages(url) == [1, 1, 1]


def test_a_file_naming_no_entity_is_a_usage_error(url: str, capsys, tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("\n")
    status = main(["--url", url, "rollback", "--compute-id", "job-b", str(path)], stdin=io.StringIO())
    assert status == 2 and "names no entity" in capsys.readouterr().err
    path.write_text('{"other": 1}\n')
    status = main(["--url", url, "rollback", "--compute-id", "job-b", str(path)], stdin=io.StringIO())
    assert status == 2 and "line 1" in capsys.readouterr().err


def test_both_clients_roll_back_in_parts(url: str) -> None:
    with FeatureStoreClient(url) as client:
        answer = client.rollback(["user-1", "user-2", "user-1"], "job-b")
    assert [result.entity_value for result in answer.results] == ["user-1", "user-2"]
    assert (answer.restored, answer.failed) == (2, 0)

    async def asynchronously() -> int:
        async with AsyncFeatureStoreClient(url) as client:
            answer = await client.rollback(ENTITIES, "job-b")
            return answer.restored

    assert asyncio.run(asynchronously()) == 1
    assert ages(url) == [1, 1, 1]

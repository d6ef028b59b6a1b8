"""The embedded store's group commit: many writers share one transaction, each in its own savepoint."""

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from components.features.store.sqlite import SQLiteStore
from core.settings import Settings
from tests.factories import NOW, make_write


@pytest.fixture
def sqlite_store(tmp_path: Path):
    store = SQLiteStore(tmp_path / "features.db")
    store.initialise()
    yield store
    store.close()


def test_a_failing_request_in_a_group_rolls_back_alone(sqlite_store: SQLiteStore) -> None:
    """Requests whose events collide fail; every other request of the same groups commits."""
    user = Settings(_env_file=None).entity_types["bright_uid"]
    start = threading.Barrier(24)

    def write(index: int) -> str:
        event_id = "shared" if index % 4 == 0 else None
        writes = [
            make_write("user_features", {"i": index}, event_id=event_id),
            make_write("credit_features", {"i": index}),
        ]
        start.wait()
        try:
            sqlite_store.write(user, f"user-{index}", writes, NOW)
        except Exception:
            return "failed"
        return "ok"

    with ThreadPoolExecutor(max_workers=24) as pool:
        outcomes = list(pool.map(write, range(24)))
    assert outcomes.count("failed") == 5, "of the six requests sharing an event id only the first commits"
    for index, outcome in enumerate(outcomes):
        found = sqlite_store.read(user, f"user-{index}", {"user_features": None, "credit_features": None})
        if outcome == "ok":
            assert {name: stored.data for name, stored in found.items()} == {
                "user_features": {"i": index},
                "credit_features": {"i": index},
            }
        else:
            assert found == {}, "a failed request leaves nothing, not even its other category"
    assert sqlite_store.outbox_stats().pending == 2 * outcomes.count("ok")

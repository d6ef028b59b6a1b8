import time
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import AppClient

T0 = datetime(2026, 3, 1, 12, 0, 0, 250_000, tzinfo=UTC)


def write_body(
    entity_value: str = "user-123",
    categories: dict[str, dict[str, Any]] | None = None,
    *,
    source: str = "prediction_service",
    entity_type: str = "bright_uid",
    **meta: Any,
) -> dict[str, Any]:
    categories = categories or {"user_features": {"age": 30, "income": 60000, "city": "SF"}}
    return {
        "metadata": {"source": source, "compute_id": "compute-123", **meta},
        "data": {
            "entity_type": entity_type,
            "entity_value": entity_value,
            "feature_list": [{"category": name, "features": features} for name, features in categories.items()],
        },
    }


def read_body(entity_value: str, *feature_list: str, entity_type: str = "bright_uid") -> dict[str, Any]:
    return {
        "meta": {"source": "api"},
        "data": {"entity_type": entity_type, "entity_value": entity_value, "feature_list": list(feature_list)},
    }


@pytest.fixture
def write(client: TestClient):
    def do(*args: Any, **kwargs: Any) -> dict[str, Any]:
        response = client.post("/api/v1/items", json=write_body(*args, **kwargs))
        assert response.status_code == 200, response.text
        return response.json()

    return do


def stop_clock(client: AppClient) -> float:
    """Pin the app's clock at the current time, so that two reads of the same data answer the same
    `age_seconds`; returns that time (epoch seconds)."""
    now = time.time()
    client.app.state.runtime.flows.clock = lambda: now
    return now


@pytest.fixture
def clock(client: AppClient):
    """Moves the app's clock by hand: `clock.now` is the current epoch second, as a float, from T0."""

    class Clock:
        now = T0.timestamp()

    client.app.state.runtime.flows.clock = lambda: Clock.now
    return Clock

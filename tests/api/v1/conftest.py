"""The API suite's fixtures: a write that must succeed, and the app's clock moved by hand."""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import AppClient
from tests.factories import CLOCK_START, write_body


@pytest.fixture
def write(client: TestClient):
    def do(*args: Any, **kwargs: Any) -> dict[str, Any]:
        response = client.post("/api/v1/items", json=write_body(*args, **kwargs))
        assert response.status_code == 200, response.text
        return response.json()

    return do


@pytest.fixture
def clock(client: AppClient):
    """Moves the app's clock by hand: `clock.now` is the current epoch second, as a float, from `clock.start`."""

    class Clock:
        start = CLOCK_START
        now = CLOCK_START.timestamp()

    client.app.state.runtime.flows.clock = lambda: Clock.now
    return Clock

"""The flows' freshness metrics, read back from a real statsd: how old each category served is, and how
late written data arrives."""

from datetime import timedelta

import pytest

from tests.factories import CLOCK_START, read_body, write_body

pytestmark = pytest.mark.backends("sqlite")  # the flows compute both metrics the same way on every backend

AGE = "read.feature_age_seconds;category={};entity_type=bright_uid"
LAG = "write.event_lag_seconds;entity_type=bright_uid"


def test_read_ages_per_category_and_write_lag(make_client, statsd) -> None:
    client = make_client(**statsd.settings)
    now = CLOCK_START.timestamp()
    client.app.state.runtime.flows.clock = lambda: now
    hour_ago = (CLOCK_START - timedelta(hours=1)).isoformat()
    categories = {"user_features": {"age": 30}, "credit_features": {"score": 700}}
    assert client.post("/api/v1/items", json=write_body("u-1", categories, event_time=hour_ago)).status_code == 200
    # Without event_time the data is as old as its write: no lag to report.
    assert client.post("/api/v1/items", json=write_body("u-2", {"user_features": {"age": 1}})).status_code == 200
    now += 60

    assert client.get("/api/v1/get/item/u-1/user_features").status_code == 200
    assert client.get("/api/v1/get/item/u-9/user_features").status_code == 404  # nothing served, no age
    many = client.post("/api/v1/get/items", json=read_body("u-1", "user_features:age", "credit_features:*"))
    assert many.status_code == 200
    batch = {"meta": {}, "data": {"entity_values": ["u-1", "u-2", "u-3"], "feature_list": ["user_features:*"]}}
    assert client.post("/api/v1/get/items/batch", json=batch).status_code == 200

    expected = {AGE.format("user_features"): 4, AGE.format("credit_features"): 1, LAG: 1}
    timers = statsd.wait_for("timers", expected)
    assert {key: len(timers[key]) for key in expected} == expected
    assert sorted(timers[AGE.format("user_features")]) == [60, 3660, 3660, 3660]
    assert timers[AGE.format("credit_features")] == [3660]
    assert timers[LAG] == [3600]

"""Dead letters through the admin endpoints: listed in pages, re-driven and then delivered; the admin
scope required; bad input a 4xx."""

import json
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import pytest

from components.events.events import Delivery, OutboxEvent, Rejection
from tests.conftest import AppClient
from tests.factories import write_body

LIST = "/api/v1/admin/dead-letters"
REDRIVE = "/api/v1/admin/dead-letters/redrive"


class PoisonSink:
    """Refuses for good every event of an entity whose name starts with `poison` while `refusing`."""

    name = "poison"

    def __init__(self) -> None:
        self.refusing = True
        self.delivered: list[str] = []

    async def initialise(self) -> list[str]:
        return []

    async def publish(self, events: Sequence[OutboxEvent]) -> Delivery:
        delivery = Delivery()
        for event in events:
            if self.refusing and event.key.startswith("bright_uid:poison"):
                delivery.rejected[event.event_id] = Rejection("Kafka refused the event: too large", permanent=True)
            else:
                delivery.delivered.append(event.event_id)
        self.delivered += delivery.delivered
        return delivery

    def state(self) -> dict[str, Any]:
        return {"sink": self.name, "ok": True}

    async def close(self, timeout: float) -> None:
        pass


def wait_for(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


@pytest.fixture
def poisoned(make_client) -> tuple[AppClient, PoisonSink]:
    client = make_client(outbox_gauge_seconds=0.05, outbox_poll_seconds=0.05)
    sink = PoisonSink()
    client.app.state.runtime.relay.sink = sink
    return client, sink


def dead_letter_count(client: AppClient) -> int | None:
    ready = client.get("/api/v1/ready")
    assert ready.status_code == 200, "dead letters never make the service unready"
    return ready.json()["checks"]["events"].get("dead_letters")


def test_dead_letters_are_listed_in_pages_and_redriven(poisoned) -> None:
    client, sink = poisoned
    for entity in ("poison-1", "user-1", "poison-2", "poison-3"):
        assert client.post("/api/v1/items", json=write_body(entity)).status_code == 200
    wait_for(lambda: dead_letter_count(client) == 3 and len(sink.delivered) == 1)

    first = client.get(LIST, params={"limit": 2})
    assert first.status_code == 200, first.text
    page = first.json()
    assert len(page["dead_letters"]) == 2 and page["next_cursor"]
    rest = client.get(LIST, params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert rest["next_cursor"] is None
    # The longest dead first; those that died together (one batch) in no particular order.
    letters = sorted(page["dead_letters"] + rest["dead_letters"], key=lambda letter: letter["event"]["entity_id"])
    assert [letter["event"]["entity_id"] for letter in letters] == ["poison-1", "poison-2", "poison-3"]
    assert len({letter["event_id"] for letter in letters}) == 3
    letter = letters[0]
    assert letter["key"] == "bright_uid:poison-1"
    assert letter["event_id"] == letter["event"]["event_id"]
    assert letter["event"]["resource_name"] == "user_features"
    assert (letter["reason"], letter["attempts"]) == ("Kafka refused the event: too large", 1)
    assert datetime.fromisoformat(letter["created_at"]) <= datetime.fromisoformat(letter["dead_at"])

    sink.refusing = False
    ids = [letter["event_id"] for letter in letters]
    named = client.post(REDRIVE, json={"event_ids": [ids[1], "0b7e-not-a-dead-letter", ids[1]]})
    assert named.status_code == 200, named.text
    assert named.json() == {"redriven": [ids[1]], "not_found": ["0b7e-not-a-dead-letter"]}
    wait_for(lambda: ids[1] in sink.delivered)
    assert client.post(REDRIVE, json={"event_ids": [ids[1]]}).json() == {"redriven": [], "not_found": [ids[1]]}

    everything = client.post(REDRIVE, json={"all": True}).json()
    assert sorted(everything["redriven"]) == sorted([ids[0], ids[2]]) and everything["not_found"] == []
    wait_for(lambda: set(ids) <= set(sink.delivered))
    wait_for(lambda: dead_letter_count(client) == 0)
    assert client.get(LIST).json() == {"dead_letters": [], "next_cursor": None}


@pytest.mark.backends("sqlite")
@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 101},
        {"limit": "many"},
        {"cursor": "not a cursor"},
        {"cursor": "yesterday:id"},
        {"cursor": "1" * 300 + ":id"},
        {"cursor": "1.5:"},
        {"cursor": "nan:a"},
        {"cursor": "WzEuNSwiYSJd"},
        {"cursor": "x" * 513},
        {"cursor": "1.5"},
        {"cursor": "-1:a"},
        {"cursor": "1e9:a"},
        {"cursor": "1.5:a b"},
        {"limits": 5},
    ],
    ids=lambda params: json.dumps(params)[:40],
)
def test_a_bad_listing_is_a_422(client: AppClient, params: dict[str, Any], backend) -> None:
    response = client.get(LIST, params=params)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "validation_error"


@pytest.mark.backends("sqlite")
def test_any_position_in_the_order_is_a_cursor(client: AppClient, backend) -> None:
    """A cursor is `<dead_at>:<event_id>`, documented by its pattern: a made-up one starts a page there."""
    for cursor in ("0:a", "999999999999.999999999:zzz", "1764481234.5:6f1c2a9e-3b7d"):
        response = client.get(LIST, params={"cursor": cursor})
        assert response.status_code == 200, response.text
        assert response.json() == {"dead_letters": [], "next_cursor": None}


@pytest.mark.backends("sqlite")
@pytest.mark.parametrize(
    "body",
    [
        {},
        {"all": False},
        {"all": True, "event_ids": ["a"]},
        {"all": 0, "event_ids": ["a"]},
        {"all": "true"},
        {"all": True, "event_ids": None},
        {"event_ids": []},
        {"event_ids": ["a"] * 1001},
        {"event_ids": ["has space"]},
        '{"event_ids": ["\\ud800"]}',
        {"event_ids": ["a" * 129]},
        {"event_ids": "a"},
        {"event_ids": [1]},
        {"ids": ["a"]},
        [],
    ],
    ids=lambda body: json.dumps(body)[:40],
)
def test_a_bad_redrive_is_a_422(client: AppClient, body: Any, backend) -> None:
    if isinstance(body, str):  # JSON text the client's encoder would not produce (a lone surrogate)
        response = client.post(REDRIVE, content=body, headers={"content-type": "application/json"})
    else:
        response = client.post(REDRIVE, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "validation_error"


@pytest.mark.backends("sqlite")
def test_a_redrive_must_be_json(client: AppClient, backend) -> None:
    response = client.post(REDRIVE, content="all", headers={"content-type": "text/plain"})
    assert response.status_code == 415


def key(value: str) -> dict[str, str]:
    return {"X-API-Key": value}


@pytest.mark.backends("sqlite")
def test_dead_letters_need_the_admin_scope(make_auth_client, api_keys: dict[str, str], backend) -> None:
    client = make_auth_client()
    for method, path, body in (("GET", LIST, None), ("POST", REDRIVE, {"all": True})):
        assert client.request(method, path, json=body).status_code == 401
        for name in ("reader", "writer", "any_writer"):
            response = client.request(method, path, json=body, headers=key(api_keys[name]))
            assert response.status_code == 403, (name, path)
            assert response.json()["error"] == "forbidden"
        allowed = client.request(method, path, json=body, headers=key(api_keys["operator"]))
        assert allowed.status_code == 200, allowed.text

"""A stored category handed over as JSON serves the same answer as one decoded: the metadata spliced
into the response holds what the decoded metadata holds, in the same order."""

import orjson
import pytest

from components.features.store.base import StoredCategory
from core.serialization import dumps

METADATA = {
    "updated_at": "2026-01-02T03:04:05.000000Z",
    "source": "job",
    "ttl": None,
    "event_time": "2026-01-02T03:04:00Z",
}


def as_json(stored: StoredCategory, metadata_json: bytes | str) -> StoredCategory:
    return StoredCategory(
        None,
        None,
        data_json=b'{"a":1.5}',
        metadata_json=metadata_json,
        created_at="2026-01-01T00:00:00Z",
        event_time=stored.event_time,
        erased=stored.erased,
    )


def decoded() -> StoredCategory:
    return StoredCategory({"a": 1.5}, {"created_at": "2026-01-01T00:00:00Z", **METADATA})


def served(stored: StoredCategory) -> bytes:
    return dumps({"data": stored.response_data, "metadata": stored.response_metadata})


@pytest.mark.parametrize("metadata_json", [dumps(METADATA), dumps(METADATA).decode()], ids=["bytes", "str"])
@pytest.mark.parametrize("age", [None, 12.5, 1e-05, "not aged"])
def test_the_spliced_metadata_is_the_decoded_metadata_byte_for_byte(metadata_json: bytes | str, age: object) -> None:
    whole, raw = decoded(), as_json(decoded(), metadata_json)
    if age != "not aged":
        assert isinstance(age, float | None)
        whole.set_age(age)
        raw.set_age(age)
    assert served(raw) == served(whole)
    assert raw.metadata == whole.metadata
    assert list(raw.metadata) == list(whole.metadata)


@pytest.mark.parametrize("metadata_json", [b"{}", b"{ }", "{}"])
def test_an_empty_stored_metadata_still_serves_valid_json(metadata_json: bytes | str) -> None:
    raw = StoredCategory(None, None, data_json=b"{}", metadata_json=metadata_json, created_at="t", event_time=None)
    assert orjson.loads(served(raw)) == {"data": {}, "metadata": {"created_at": "t"}}
    raw.set_age(None)
    assert orjson.loads(served(raw)) == {"data": {}, "metadata": {"created_at": "t", "age_seconds": None}}


def test_the_age_set_before_or_after_decoding_is_in_the_metadata() -> None:
    before, after = as_json(decoded(), dumps(METADATA)), as_json(decoded(), dumps(METADATA))
    before.set_age(3.0)
    assert before.metadata["age_seconds"] == 3.0
    assert after.metadata.get("age_seconds") is None
    after.set_age(4.0)
    assert after.metadata["age_seconds"] == 4.0 and after.age_seconds == 4.0


def test_a_projection_shares_the_metadata_and_its_age() -> None:
    raw = as_json(decoded(), dumps(METADATA))
    raw.set_age(2.0)
    picked = raw.with_data({"a": 1.5})
    assert served(picked) == served(raw)
    assert (picked.event_time, picked.erased, picked.age_seconds) == (raw.event_time, raw.erased, 2.0)


def test_decoded_metadata_gives_the_event_time_and_whether_it_is_a_tombstone() -> None:
    assert decoded().event_time == "2026-01-02T03:04:00Z" and not decoded().erased
    written = StoredCategory({}, {"updated_at": "2026-01-02T03:04:05Z", "deleted_at": "2026-01-02T03:04:05Z"})
    assert written.event_time == "2026-01-02T03:04:05Z" and written.erased
    assert StoredCategory({}, {}).event_time is None


def test_a_category_needs_its_metadata_decoded_or_as_json() -> None:
    with pytest.raises(ValueError, match="metadata"):
        StoredCategory({}, None)

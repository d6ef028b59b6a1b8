"""JSON values <-> DynamoDB attribute values as the store sends and reads them, and item sizes, without a server."""

import base64
from typing import Any

import orjson
import pytest

from components.features.store.dynamodb.items import attribute_size, item_size
from core.dynamodb_client.attributes import decode, encode
from core.serialization import dumps


def on_the_wire(attribute: dict[str, Any]) -> Any:
    """An attribute as it travels in DynamoDB's JSON (binary values as base64), read back as DynamoDB answers it."""
    return orjson.loads(
        orjson.dumps(attribute, default=lambda raw: base64.b64encode(raw).decode() if isinstance(raw, bytes) else raw)
    )


@pytest.mark.parametrize(
    ("value", "attribute"),
    [
        ("", {"S": ""}),
        (True, {"BOOL": True}),
        (None, {"NULL": True}),
        (30, {"N": "30"}),
        (2**64 - 1, {"N": "18446744073709551615"}),
        (-(2**63), {"N": "-9223372036854775808"}),
        (150.5, {"N": "150.5"}),
        (1e16, {"N": "1E+16"}),
        (1e-300, {"B": b"float:1e-300"}),
        (-1.5e300, {"B": b"float:-1.5e+300"}),
        ([], {"L": []}),
        ({"a": [1, {}]}, {"M": {"a": {"L": [{"N": "1"}, {"M": {}}]}}}),
    ],
)
def test_encode_and_decode(value, attribute) -> None:
    assert encode(value) == attribute
    decoded = decode(on_the_wire(attribute))
    assert decoded == value
    assert type(decoded) is type(value)


@pytest.mark.parametrize(
    ("text", "value"), [("1", 1), ("0.00001", 1e-05), ("25000000000", 25000000000), ("-0.5", -0.5), ("1E+16", 1e16)]
)
def test_numbers_as_dynamodb_returns_them(text: str, value) -> None:
    """DynamoDB normalises numbers: digits only is an int; a point or an exponent is a float."""
    decoded = decode({"N": text})
    assert decoded == value
    assert type(decoded) is type(value)


def test_no_decimal_ever_comes_back() -> None:
    decoded = decode({"M": {"a": {"L": [{"N": "1.25"}, {"NS": ["2", "3.5"]}]}}})
    assert decoded == {"a": [1.25, [2, 3.5]]}


def test_item_size_follows_dynamodbs_rules() -> None:
    assert item_size({"name": {"S": "héllo"}}) == 4 + 6
    assert item_size({"n": {"N": "12345"}}) == 1 + 4
    assert item_size({"l": {"L": [{"BOOL": True}, {"NULL": True}]}}) == 1 + 3 + 2 * 2
    assert item_size({"m": {"M": {"ab": {"S": "c"}}}}) == 1 + 3 + 2 + 1 + 1


@pytest.mark.parametrize(
    "value",
    [0, 1, -1, 1.5, 1e-300, True, None, "", "é", [], {}, [[]], [{}], {"": {}}, [0, 0, 0], {"a": [None, True, 1e16]}],
)
def test_size_never_exceeds_three_bytes_per_json_byte(value) -> None:
    """The store skips the exact size walk when three times the JSON length is small enough."""
    assert attribute_size(encode(value)) <= 3 * len(dumps(value))

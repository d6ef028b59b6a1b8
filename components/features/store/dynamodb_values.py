"""JSON values <-> DynamoDB attribute values, and DynamoDB's item size, for the low-level client.

Faster than boto3's TypeSerializer/TypeDeserializer and never hands out `Decimal`: integers are sent
as their digits and come back as `int`; floats are sent as `Decimal(repr(f))` and come back as
`float`. DynamoDB keeps a number's value, not its spelling, so a float with an integral value
(`1.0`) reads back as `1`. Floats outside DynamoDB's number range (zero, or 1e-130 <= |x| < 1e126),
e.g. `1e-300`, are stored as Binary, a type JSON never produces, so they still round-trip.
"""

from decimal import Decimal
from typing import Any

FLOAT_TAG = b"float:"
MIN_MAGNITUDE = 1e-130
MAX_MAGNITUDE = 1e126


def encode(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, bool):
        return {"BOOL": value}
    if value is None:
        return {"NULL": True}
    if isinstance(value, int):
        return {"N": str(value)}
    if isinstance(value, float):
        if value == 0 or MIN_MAGNITUDE <= abs(value) < MAX_MAGNITUDE:
            return {"N": str(Decimal(repr(value)))}
        return {"B": FLOAT_TAG + repr(value).encode()}
    if isinstance(value, dict):
        return {"M": encode_map(value)}
    if isinstance(value, (list, tuple)):
        return {"L": [encode(item) for item in value]}
    raise TypeError(f"cannot store a {type(value).__name__} in DynamoDB")


def encode_map(values: dict[str, Any]) -> dict[str, Any]:
    return {key: encode(value) for key, value in values.items()}


def number(text: str) -> int | float:
    """Digits only: an int (exact, any size); anything with a point or an exponent: a float."""
    try:
        return int(text)
    except ValueError:
        return float(text)


def decode(attribute: dict[str, Any]) -> Any:
    ((kind, value),) = attribute.items()
    if kind == "S":
        return value
    if kind == "N":
        return number(value)
    if kind == "M":
        return decode_map(value)
    if kind == "L":
        return [decode(item) for item in value]
    if kind == "BOOL":
        return value
    if kind == "NULL":
        return None
    if kind == "B":
        return _binary(value)
    if kind == "SS":
        return list(value)
    if kind == "NS":
        return [number(item) for item in value]
    if kind == "BS":
        return [_binary(item) for item in value]
    raise ValueError(f"unknown DynamoDB attribute type {kind!r}")


def decode_map(values: dict[str, Any]) -> dict[str, Any]:
    return {key: decode(value) for key, value in values.items()}


def _binary(value: bytes) -> Any:
    if value.startswith(FLOAT_TAG):
        return float(value[len(FLOAT_TAG) :].decode())
    return value.hex()


def _number_size(text: str) -> int:
    digits = text.lstrip("-").split("E")[0].split("e")[0].replace(".", "").strip("0")
    return (len(digits) + 1) // 2 + 1


def attribute_size(attribute: dict[str, Any]) -> int:
    """Bytes DynamoDB counts for one value: strings in UTF-8, numbers by significant digits,
    3 bytes per list or map plus 1 per element (and each map key's length)."""
    ((kind, value),) = attribute.items()
    if kind == "S":
        return len(value.encode("utf-8", "surrogatepass"))
    if kind == "N":
        return _number_size(value)
    if kind == "M":
        return 3 + sum(
            len(key.encode("utf-8", "surrogatepass")) + 1 + attribute_size(item) for key, item in value.items()
        )
    if kind == "L":
        return 3 + sum(1 + attribute_size(item) for item in value)
    if kind == "B":
        return len(value)
    return 1


def item_size(item: dict[str, dict[str, Any]]) -> int:
    return sum(len(name.encode("utf-8")) + attribute_size(value) for name, value in item.items())

"""What a feature value may be: JSON that round-trips exactly through both stores and the events."""

import math
from typing import Any

from components.features.names import has_unsafe_characters
from core.exceptions import InvalidRequest
from core.serialization import MAX_INT, MIN_INT


class ValueChecker:
    """Checks written values against MAX_STRING_BYTES and MAX_JSON_DEPTH; each refusal is a 422 at `loc`."""

    def __init__(self, max_string_bytes: int, max_json_depth: int) -> None:
        self.max_string_bytes = max_string_bytes
        self.max_json_depth = max_json_depth

    def check_features(self, features: dict[str, Any], loc: tuple[str | int, ...]) -> None:
        """`check_value` for each feature, with the common scalars that need no walk (finite floats,
        64-bit integers, booleans, null, short ASCII text) passed at once: a bulk write checks
        hundreds of thousands of values."""
        short = self.max_string_bytes // 4
        for name, value in features.items():
            kind = type(value)
            if kind is float:
                if value - value == 0.0:  # false for NaN and the infinities
                    continue
            elif kind is int:
                if MIN_INT <= value <= MAX_INT:
                    continue
            elif kind is bool or value is None:
                continue
            elif kind is str and len(value) <= short and value.isascii():
                continue
            self.check_value(value, (*loc, "features", name))

    def check_string(self, text: str, loc: tuple) -> None:
        limit = self.max_string_bytes
        if len(text) > limit // 4 and len(text.encode("utf-8", "surrogatepass")) > limit:
            raise InvalidRequest(f"string longer than {limit} UTF-8 bytes", loc)
        if any("\ud800" <= char <= "\udfff" for char in text):
            raise InvalidRequest("string holds an unpaired surrogate", loc)

    def check_value(self, value: Any, loc: tuple) -> None:
        """Reject what cannot round-trip exactly: NaN/Infinity, integers past 64 bits, unsafe text, deep nesting.

        Walks with an explicit stack, so no depth setting can exhaust Python's recursion limit.
        """
        max_depth = self.max_json_depth
        stack: list[tuple[Any, tuple, int]] = [(value, loc, 0)]
        while stack:
            value, loc, depth = stack.pop()
            if isinstance(value, str):
                self.check_string(value, loc)
            elif isinstance(value, bool) or value is None:
                continue
            elif isinstance(value, int):
                if not MIN_INT <= value <= MAX_INT:
                    raise InvalidRequest("integer outside the 64-bit range; send it as a string", loc)
            elif isinstance(value, float):
                if not math.isfinite(value):
                    raise InvalidRequest("NaN and Infinity are not valid JSON numbers", loc)
            elif isinstance(value, (list, dict)):
                if depth >= max_depth:
                    raise InvalidRequest(f"value nested deeper than {max_depth} levels", loc)
                if isinstance(value, dict):
                    for key, item in value.items():
                        self.check_string(key, loc)
                        if has_unsafe_characters(key):
                            raise InvalidRequest("object key holds control characters", loc)
                        stack.append((item, (*loc, key), depth + 1))
                else:
                    stack.extend((item, (*loc, index), depth + 1) for index, item in enumerate(value))
            else:
                raise InvalidRequest(f"unsupported value type {type(value).__name__}", loc)

"""Fast JSON for the hot path: orjson, whose integer range (signed and unsigned 64-bit) the API enforces."""

from typing import Any

import orjson
from starlette.responses import Response

MIN_INT = -(2**63)
MAX_INT = 2**64 - 1

dumps = orjson.dumps
loads = orjson.loads
RawJSON = orjson.Fragment
"""JSON already encoded, which `dumps` writes as it is."""


class JSONBytesResponse(Response):
    """A response whose body is already serialised, or is serialised with orjson (no `jsonable_encoder`)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        if isinstance(content, bytes):
            return content
        return orjson.dumps(content)

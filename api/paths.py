"""Path parameters read from the raw request target, one whole segment each.

The server hands Starlette the path already percent-decoded, so an `entity_value` of `a/b`, sent as
`a%2Fb`, becomes two segments that no route matches (404), and bytes that are not UTF-8 (`h%FFy`)
become U+FFFD, silently another id. A request whose raw path holds a `%` is matched here instead: the
raw path is split on its literal slashes, each segment decoded on its own (an escaped `/` never separates
segments, in a parameter or in the route's own text), so every value a write accepts can be read and
erased by path. A parameter whose bytes are not valid UTF-8 matches, and is refused as
a 422 `validation_error` before the endpoint runs (`invalid_parameters`).
"""

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

from starlette.types import Scope

PARAMETER = re.compile(r"^\{(\w+)(?::\w+)?\}$")
INVALID_PARAMETERS = "feature_store.invalid_path_parameters"
"""The scope key listing the path parameters whose bytes are not UTF-8 (`invalid_parameters` reads it)."""


@dataclass(frozen=True)
class PathTemplate:
    """A route's path as segments: a literal, or the name of a parameter taking the whole segment."""

    segments: tuple[tuple[str, bool], ...]

    @classmethod
    def of(cls, path: str) -> "PathTemplate | None":
        """None when a parameter shares a segment with text (`/files/{name}.json`): Starlette's own matching serves it."""
        segments: list[tuple[str, bool]] = []
        for segment in path.split("/"):
            parameter = PARAMETER.match(segment)
            if parameter:
                segments.append((parameter.group(1), True))
            elif "{" in segment:
                return None
            else:
                segments.append((segment, False))
        return cls(tuple(segments))

    def match(self, raw_path: bytes) -> tuple[dict[str, str], list[str]] | None:
        """The parameters of `raw_path` (its values, and the names of those not valid UTF-8), None if it does not match."""
        raw_segments = raw_path.split(b"/")
        if len(raw_segments) != len(self.segments):
            return None
        values: dict[str, str] = {}
        invalid: list[str] = []
        for raw, (text, is_parameter) in zip(raw_segments, self.segments, strict=True):
            decoded = unquote_to_bytes(raw)
            if not is_parameter:
                if decoded != text.encode("utf-8"):
                    return None
                continue
            if not decoded:
                return None
            try:
                values[text] = decoded.decode("utf-8")
            except UnicodeDecodeError:
                values[text] = decoded.decode("utf-8", "replace")
                invalid.append(text)
        return values, invalid


def raw_route_path(scope: Scope) -> bytes | None:
    """The raw path to match, without the root path, when it holds percent-escapes; None when Starlette's
    own matching on the decoded path is exact. The raw path wins over the decoded one whatever it decodes
    to: no layer of the service rewrites a request's path."""
    raw_path: bytes | None = scope.get("raw_path")
    if not raw_path or b"%" not in raw_path:
        return None
    raw = raw_path.split(b"?", 1)[0]
    root = scope.get("root_path", "")
    if root:
        if not raw.startswith(root.encode("latin-1")):
            return None
        raw = raw[len(root) :]
    return raw


def invalid_parameters(scope: Scope) -> list[dict[str, Any]]:
    """Field errors, FastAPI's shape, for the path parameters whose bytes are not UTF-8."""
    names: list[str] = scope.get(INVALID_PARAMETERS) or []
    return [
        {
            "type": "string_unicode",
            "loc": ("path", name),
            "msg": "Input should be a valid string, unable to parse raw data as a unicode string",
            "input": scope["path_params"][name],
        }
        for name in names
    ]

"""The name grammar: what category, feature and entity names may hold, and the limits on them.

Plain Python, so the HTTP models, the service, the registry and the value checks share one definition
without importing each other.
"""

import re

NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,128}$"
"""Category and feature names: letters, digits, `_`, `.`, `-`; 1 to 128 characters."""
_NAME_CHARS = NAME_PATTERN.removeprefix("^").removesuffix("$")
WILDCARD = "*"
"""In place of a feature name: the whole category."""
FEATURE_SELECTOR_PATTERN = rf"^({_NAME_CHARS}|\*)$"
"""A feature name, or `*` for the whole category."""
FEATURE_ENTRY_PATTERN = rf"^{_NAME_CHARS}:({_NAME_CHARS}|\*)$"
"""A feature list's entry: `category:feature` or `category:*`."""
FEATURE_ENTRY = re.compile(rf"^({_NAME_CHARS}):({_NAME_CHARS}|\*)$")
"""`FEATURE_ENTRY_PATTERN` with the category and the feature as groups."""

CONTROL_FREE_PATTERN = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"
"""As JSON Schema: no control characters (what `has_unsafe_characters` refuses, bar unpaired surrogates)."""
ENTITY_VALUE_PATTERN = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$"
"""As JSON Schema: `CONTROL_FREE_PATTERN`, not empty."""
MAX_ENTITY_VALUE_BYTES = 1024
MAX_ENTITY_TYPE_CHARS = 128
MAX_META_TEXT = 256
"""`source` and `compute_id`."""


_UNSAFE_CHARACTER = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
"""Unicode's control characters (category Cc) and surrogates (Cs): one regular expression search, where a
walk asking `unicodedata` of every character took a fifth of a 50-entity batch read's validation."""


def has_unsafe_characters(text: str) -> bool:
    """Control characters and lone surrogates cannot be stored or logged safely."""
    return _UNSAFE_CHARACTER.search(text) is not None

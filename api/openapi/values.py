"""Values in OpenAPI within the limits the service enforces, so the document does not call valid what
the service refuses.

pydantic sees a feature value as `Any` (the service checks it once, on its own terms: services.py),
so the document would say any value will do. The `FeatureValue` schema added here says what is
refused: object keys with control characters (at any depth). What JSON Schema cannot say its
description does, with the numbers from `GET /api/v1/limits`: string length in UTF-8 bytes, nesting
depth, unpaired surrogates, and integers past 64 bits (JSON Schema counts `1e300` as an integer too,
while the service takes it as the float it is and keeps it).

The configured maxima that fit a schema are set on the fields they bound: `ttl` of a single write
(a bulk write refuses the entity, not the request, so its schema leaves it unbounded), and the
lengths of `feature_list` and `entity_values` in reads (they depend on the settings, so pydantic's
models cannot carry them).
"""

from typing import Any

from components.features.models import FEATURE_VALUE_REF
from components.features.names import CONTROL_FREE_PATTERN
from core.settings import Settings

FEATURE_VALUE: dict[str, Any] = {
    "title": "FeatureValue",
    "description": "Any JSON value, within the service's limits (`GET /api/v1/limits`): integers (written without "
    "a fraction or exponent) from -2^63 to 2^64-1, larger ones as strings; strings of at most `max_string_bytes` UTF-8 bytes without unpaired "
    "surrogates, at most `max_json_depth` levels of nesting, object keys without control characters.",
    "anyOf": [
        {"type": "null"},
        {"type": "boolean"},
        {"type": "string"},
        {"type": "number"},
        {"type": "array", "items": {"$ref": FEATURE_VALUE_REF}},
        {
            "type": "object",
            "propertyNames": {"pattern": CONTROL_FREE_PATTERN},
            "additionalProperties": {"$ref": FEATURE_VALUE_REF},
        },
    ],
}


def _bound(schema: dict[str, Any], kind: str, **bounds: int) -> None:
    """Sets `bounds` on `schema`'s branch of type `kind` (itself, or an option of its `anyOf`)."""
    for option in schema.get("anyOf", [schema]):
        if option.get("type") == kind:
            option.update(bounds)


def document_values(document: dict[str, Any], settings: Settings) -> None:
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["FeatureValue"] = FEATURE_VALUE
    fields = {
        ("GetItemsData", "feature_list"): ("array", {"maxItems": settings.max_feature_list}),
        ("GetBatchData", "feature_list"): ("array", {"maxItems": settings.max_feature_list}),
        ("GetBatchData", "entity_values"): ("array", {"maxItems": settings.max_batch_entities}),
    }
    for (model, field), (kind, bounds) in fields.items():
        properties = schemas.get(model, {}).get("properties", {})
        if field in properties:
            _bound(properties[field], kind, **bounds)
    write = schemas.get("WriteRequest", {}).get("properties", {})
    for spelling in ("meta", "metadata"):
        if "$ref" in write.get(spelling, {}):
            # The single write refuses it as a whole; a bulk write (same WriteMeta) fails the entity only.
            ttl = {"properties": {"ttl": {"maximum": settings.max_ttl_seconds}}}
            meta = write[spelling]
            meta["allOf"] = [{"$ref": meta.pop("$ref")}, ttl]
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "query" and parameter.get("name") == "ttl":
                    _bound(parameter["schema"], "integer", maximum=settings.max_ttl_seconds)

"""Entity types and categories as enums in OpenAPI: the configured ones are the only values the service
accepts, so the document lists them instead of claiming any string will do.

The earlier write's body is keyed by category, so its keys are listed the same way (the earlier read's
are not: a category off the list is reported unavailable there, not refused).

They come from the settings (`ENTITY_TYPES`, `EXTRA_ENTITY_TYPES`) and the feature registry (or
`ALLOWED_CATEGORIES`), so the document is the one of this configuration.
"""

from collections.abc import Iterable
from typing import Any

BODY_FIELDS = {
    "GetItemsData": ("entity_type",),
    "GetBatchData": ("entity_type",),
    "WriteData": ("entity_type", "category"),
    "BatchWriteData": ("entity_type",),
    "CategoryFeatures": ("category",),
    "RollbackRequest": ("entity_type",),
}
"""Request-body properties naming an entity type or a category, by component schema."""
PARAMETERS = ("entity_type", "category")


def _with_enum(schema: dict[str, Any], values: list[str]) -> dict[str, Any]:
    """The string branch of `schema` (itself, the string option of an `anyOf` with null, or an array's items)
    limited to `values`."""
    if "anyOf" in schema:
        return {**schema, "anyOf": [_with_enum(option, values) for option in schema["anyOf"]]}
    if schema.get("type") == "string":
        return {**schema, "enum": values}
    if schema.get("type") == "array" and "items" in schema:
        return {**schema, "items": _with_enum(schema["items"], values)}
    return schema


def document_names(document: dict[str, Any], entity_types: Iterable[str], categories: Iterable[str]) -> None:
    values = {"entity_type": sorted(entity_types), "category": sorted(categories)}
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            for parameter in operation.get("parameters", []):
                if parameter.get("in") in ("path", "query") and parameter.get("name") in PARAMETERS:
                    parameter["schema"] = _with_enum(parameter["schema"], values[parameter["name"]])
    schemas = document.get("components", {}).get("schemas", {})
    earlier_write = schemas.get("EarlierWriteBody")
    if earlier_write is not None and "patternProperties" in earlier_write:
        features = next(iter(earlier_write.pop("patternProperties").values()))
        earlier_write["properties"] = dict.fromkeys(values["category"], features)
    for model, fields in BODY_FIELDS.items():
        properties = schemas.get(model, {}).get("properties", {})
        for field in fields:
            if field in properties:
                properties[field] = _with_enum(properties[field], values[field])

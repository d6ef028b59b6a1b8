"""The document's security as the service applies it: with API keys off, no operation asks for a key and a
write names its writer; with keys on, a key is accepted as `X-API-Key` or as a Bearer token
(`api.auth.presented_key`)."""

from typing import Any

WRITER_NAMED: dict[str, Any] = {
    "anyOf": [
        {
            "required": [spelling],
            "properties": {spelling: {"required": ["source"], "properties": {"source": {"type": "string"}}}},
        }
        for spelling in ("meta", "metadata")
    ]
}
"""Without keys a write names its writer: `meta.source` (or `metadata.source`) is a string, not absent nor null."""

BEARER_SCHEME: dict[str, Any] = {
    "type": "http",
    "scheme": "bearer",
    "description": "The same API key as `X-API-Key`, sent as `Authorization: Bearer <key>`.",
}


def document_without_keys(document: dict[str, Any]) -> None:
    """With AUTH_ENABLED=false no route asks for a key, so the document must not say it does; and the
    writer is the write's own `meta.source`, so the document requires it (a write without it is a 422)."""
    components = document.get("components", {})
    components.pop("securitySchemes", None)
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            operation.pop("security", None)
    write = components.get("schemas", {}).get("WriteRequest")
    if write is not None:
        write.update(WRITER_NAMED)


def document_bearer(document: dict[str, Any]) -> None:
    """With AUTH_ENABLED=true the document declares both schemes, and every operation that needs a key
    accepts either."""
    schemes = document.get("components", {}).get("securitySchemes", {})
    if "ApiKey" in schemes:
        schemes.setdefault("Bearer", BEARER_SCHEME)
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            security = operation.get("security", [])
            if {"ApiKey": []} in security and {"Bearer": []} not in security:
                security.append({"Bearer": []})

"""The OpenAPI document: FastAPI's, made to say what this configuration accepts, and the pages that show it.

`install_openapi` gives the app one `openapi()`: on its first call it builds FastAPI's document from the
routes, applies each transform once, in this order, and caches the result in `app.openapi_schema`:

1. security (security.py): the schemes the service takes keys by, or none with API keys off;
2. names (names.py): entity types and categories as the configured enums;
3. values (values.py): feature values and the configured maxima.

Each transform edits its own parts of the document, so the order is fixed for a stable document rather
than needed by one of them. The document is built after every route is added (`main.create_app`); a
route added later is not in it.
"""

from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from api.openapi.docs import add_offline_docs
from api.openapi.names import document_names
from api.openapi.security import document_bearer, document_without_keys
from api.openapi.values import document_values
from core.settings import Settings


def build_document(app: FastAPI) -> dict[str, Any]:
    """FastAPI's own document of the app, built as `FastAPI.openapi` builds it."""
    return get_openapi(
        title=app.title,
        version=app.version,
        openapi_version=app.openapi_version,
        summary=app.summary,
        description=app.description,
        terms_of_service=app.terms_of_service,
        contact=app.contact,
        license_info=app.license_info,
        routes=app.routes,
        webhooks=app.webhooks.routes,
        tags=app.openapi_tags,
        servers=app.servers,
        separate_input_output_schemas=app.separate_input_output_schemas,
        external_docs=app.openapi_external_docs,
    )


def install_openapi(app: FastAPI, settings: Settings, categories: Iterable[str]) -> None:
    """The app's `openapi()`, and with DOCS_ENABLED the offline Swagger UI and ReDoc pages. Called after
    the API's routes are added, so matching an API request never tries the pages."""
    accepted_categories = tuple(categories)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = build_document(app)
            if settings.auth_enabled:
                document_bearer(document)
            else:
                document_without_keys(document)
            document_names(document, settings.entity_types, accepted_categories)
            document_values(document, settings)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    if settings.docs_enabled:
        add_offline_docs(app)

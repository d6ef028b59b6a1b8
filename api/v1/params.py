"""Query parameters shared by the current and the earlier API: the entity type and its alias `table_type`."""

from typing import Annotated

from fastapi import Query

from core.exceptions import InvalidRequest

DEFAULT_ENTITY_TYPE = "bright_uid"

EntityTypeQuery = Annotated[
    str | None,
    Query(
        max_length=128,
        description=f"The entity type; `{DEFAULT_ENTITY_TYPE}` when neither it nor `table_type` is given.",
    ),
]
TableTypeQuery = Annotated[
    str | None,
    Query(max_length=128, description="The earlier API's name for `entity_type`; if both are given they must agree."),
]


def entity_type_of(entity_type: str | None, table_type: str | None) -> str:
    """The entity type a request names, by either name; naming two different ones is a 422."""
    if table_type is None:
        return DEFAULT_ENTITY_TYPE if entity_type is None else entity_type
    if entity_type is not None and entity_type != table_type:
        raise InvalidRequest(
            f"entity_type {entity_type!r} and its alias table_type {table_type!r} disagree; give one of them",
            ("query", "table_type"),
        )
    return table_type

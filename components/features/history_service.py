"""The rules of history's requests (docs/history.md): reads `as_of` a time, the kept versions listed, rollbacks.
They are checked as `FeatureService` checks the reads and writes they resemble (entity types, categories,
feature lists, limits), then handed to `history.HistoryFlows`."""

from collections.abc import Sequence
from datetime import datetime

from components.features.history import HistoryFlows
from components.features.records import EntityFeatures, FeatureSelection, HistoryPage, Rollback
from components.features.services import FeatureService
from components.features.store.base import StoredCategory
from core.exceptions import InvalidRequest, NotFound
from core.request_context import annotate_request
from core.timeutils import isoformat


class HistoryService:
    def __init__(self, service: FeatureService, past: HistoryFlows) -> None:
        self.service = service
        self.past = past

    def _check_category(self, category: str, loc: Sequence[str | int]) -> None:
        allowed = self.service.allowed_categories
        if category not in allowed:
            raise InvalidRequest(f"category {category!r} is not allowed; allowed: {sorted(allowed)}", loc)

    async def read_category(
        self, entity_type_name: str, entity_value: str, category: str, max_age: float | None, as_of: datetime
    ) -> StoredCategory:
        """`FeatureService.read_category` as of a time: 404 naming the reason when the category has no value then."""
        entity_type = self.service.entity_type(entity_type_name, ("query", "entity_type"))
        self._check_category(category, ("path", "category"))
        annotate_request(entity_type=entity_type.name, categories=[category], as_of=isoformat(as_of))
        if self.service.settings.audit_reads:
            annotate_request(entity_id=entity_value)
        selection = FeatureSelection({category: None})
        (result,) = await self.past.read(entity_type, [entity_value], selection, max_age, as_of)
        found = result.items.get(category)
        if found is None:
            reason = (result.unavailable_reasons or {}).get(category)
            why = f" ({reason})" if reason is not None else ""
            raise NotFound(
                f"no features in category {category!r} for {entity_type.name} {entity_value!r} "
                f"as of {isoformat(as_of)}{why}"
            )
        return found

    async def read_features(
        self,
        entity_type_name: str,
        entity_value: str,
        feature_list: Sequence[str],
        max_age: float | None,
        as_of: datetime,
    ) -> EntityFeatures:
        entity_type = self.service.entity_type(entity_type_name, ("body", "data", "entity_type"))
        selection = self.service.parse_feature_list(feature_list)
        annotate_request(entity_type=entity_type.name, categories=sorted(selection.wanted), as_of=isoformat(as_of))
        if self.service.settings.audit_reads:
            annotate_request(entity_id=entity_value)
        (result,) = await self.past.read(entity_type, [entity_value], selection, max_age, as_of)
        return result

    async def read_batch(
        self,
        entity_type_name: str,
        entity_values: Sequence[str],
        feature_list: Sequence[str],
        max_age: float | None,
        as_of: datetime,
    ) -> list[EntityFeatures]:
        entity_type = self.service.entity_type(entity_type_name, ("body", "data", "entity_type"))
        limit = self.service.settings.max_batch_entities
        if len(entity_values) > limit:
            raise InvalidRequest(
                f"entity_values holds {len(entity_values)} entities; the limit is {limit}",
                ("body", "data", "entity_values"),
            )
        selection = self.service.parse_feature_list(feature_list)
        annotate_request(
            entity_type=entity_type.name,
            categories=sorted(selection.wanted),
            entities=len(entity_values),
            as_of=isoformat(as_of),
        )
        if self.service.settings.audit_reads:
            annotate_request(entity_ids=list(entity_values))
        return await self.past.read(entity_type, entity_values, selection, max_age, as_of)

    async def versions(
        self, entity_type_name: str, entity_value: str, category: str, limit: int, cursor: int | None
    ) -> HistoryPage:
        entity_type = self.service.entity_type(entity_type_name, ("query", "entity_type"))
        self._check_category(category, ("path", "category"))
        annotate_request(entity_type=entity_type.name, categories=[category])
        if self.service.settings.audit_reads:
            annotate_request(entity_id=entity_value)
        return await self.past.versions(entity_type, entity_value, category, limit, cursor)

    async def rollback(
        self, entity_type_name: str, entity_values: Sequence[str], compute_id: str, actor: str | None
    ) -> list[Rollback]:
        """At most `MAX_BATCH_WRITE_ENTITIES` entities, each named once; every category the registry holds for
        the entity type is looked at."""
        entity_type = self.service.entity_type(entity_type_name, ("body", "entity_type"))
        limit = self.service.settings.max_batch_write_entities
        if len(entity_values) > limit:
            raise InvalidRequest(
                f"entity_values holds {len(entity_values)} entities; the limit is {limit}: split the rollback",
                ("body", "entity_values"),
            )
        registry = self.service.registry
        categories = sorted(
            name
            for name, category in registry.categories.items()
            if category.entity_types is None or entity_type.name in category.entity_types
        )
        annotate_request(entity_type=entity_type.name, entities=len(entity_values), compute_id=compute_id)
        return await self.past.rollback(entity_type, entity_values, compute_id, categories, actor)

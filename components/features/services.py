"""Rules beyond pydantic's types: entity types, the category whitelist, writers, feature lists, limits."""

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache
from types import MappingProxyType

from components.features.flows import FeatureFlows
from components.features.names import FEATURE_ENTRY, WILDCARD
from components.features.records import (
    CategoryInput,
    DeleteOutcome,
    EntityFeatures,
    EntityInput,
    FeatureSelection,
    InspectedCategory,
    Provenance,
    WriteOutcome,
)
from components.features.registry import Registry
from components.features.store.base import StoredCategory
from components.features.values import ValueChecker
from core.auth import Principal
from core.exceptions import FeatureStoreError, Forbidden, InvalidRequest, NotFound, SourceRequired
from core.request_context import annotate_request
from core.settings import EntityType, Settings
from core.timeutils import utcnow

PARSED_FEATURE_LISTS = 1024
"""Feature lists kept parsed: a model sends the same list with every request."""


class FeatureService:
    def __init__(
        self, settings: Settings, flows: FeatureFlows, registry: Registry, *, store_max_categories_per_write: int
    ) -> None:
        """`store_max_categories_per_write`: the most categories the store can commit atomically; a write
        may hold no more than that, nor more than the setting allows."""
        self.settings = settings
        self.flows = flows
        self.registry = registry
        self.max_categories_per_write = min(settings.max_categories_per_write, store_max_categories_per_write)
        self.entity_types = settings.entity_types
        self.allowed_categories = registry.names
        self.allowed_writers = frozenset(settings.write_allowed_sources)
        self.values = ValueChecker(settings.max_string_bytes, settings.max_json_depth)
        self._parsed_feature_list = lru_cache(maxsize=PARSED_FEATURE_LISTS)(self._parse_feature_list)

    def use_registry(self, registry: Registry) -> None:
        """A reloaded registry: later requests are judged by it (a request's checks run before its first
        await, so each request sees one registry or the other, never a mix)."""
        self.registry = registry
        self.allowed_categories = registry.names
        self._parsed_feature_list.cache_clear()  # its selections depend on the categories allowed

    def entity_type(self, name: str, loc: Sequence[str]) -> EntityType:
        entity_type = self.entity_types.get(name)
        if entity_type is None:
            raise InvalidRequest(f"unknown entity_type {name!r}; expected one of {sorted(self.entity_types)}", loc)
        return entity_type

    def _check_category(self, category: str, loc: Sequence[str | int]) -> None:
        if category not in self.allowed_categories:
            raise InvalidRequest(
                f"category {category!r} is not allowed; allowed: {sorted(self.allowed_categories)}", loc
            )

    async def read_category(
        self, entity_type_name: str, entity_value: str, category: str, max_age: float | None = None
    ) -> StoredCategory:
        entity_type = self.entity_type(entity_type_name, ("query", "entity_type"))
        self._check_category(category, ("path", "category"))
        annotate_request(entity_type=entity_type.name, categories=[category])
        if self.settings.audit_reads:
            annotate_request(entity_id=entity_value)
        found = await self.flows.read_category(entity_type, entity_value, category, max_age)
        if found is None:
            raise NotFound(f"no features in category {category!r} for {entity_type.name} {entity_value!r}")
        return found

    def parse_feature_list(self, feature_list: Sequence[str]) -> FeatureSelection:
        """Turn `category:feature` / `category:*` entries into the categories and names to read.

        Categories off the whitelist are not an error: they are kept to be reported unavailable.
        """
        if len(feature_list) > self.settings.max_feature_list:
            raise InvalidRequest(
                f"feature_list holds {len(feature_list)} entries; the limit is {self.settings.max_feature_list}",
                ("body", "data", "feature_list"),
            )
        return self._parsed_feature_list(tuple(feature_list))

    def _parse_feature_list(self, feature_list: tuple[str, ...]) -> FeatureSelection:
        """Cached, so the result is shared between requests and read-only."""
        wanted: dict[str, set[str] | None] = {}
        not_whitelisted: set[str] = set()
        for index, entry in enumerate(feature_list):
            match = FEATURE_ENTRY.match(entry)
            if match is None:
                raise InvalidRequest(
                    f"{entry[:200]!r} is not 'category:feature' or 'category:*' "
                    "(names use letters, digits, '_', '.', '-', at most 128 characters)",
                    ("body", "data", "feature_list", index),
                )
            category, name = match.groups()
            if category not in self.allowed_categories:
                not_whitelisted.add(category)
            elif name == WILDCARD:
                wanted[category] = None
            elif category not in wanted:
                wanted[category] = {name}
            elif (names := wanted[category]) is not None:
                names.add(name)
        frozen = {category: (frozenset(names) if names is not None else None) for category, names in wanted.items()}
        return FeatureSelection(MappingProxyType(frozen), tuple(sorted(not_whitelisted)))

    async def read_features(
        self, entity_type_name: str, entity_value: str, feature_list: Sequence[str], max_age: float | None = None
    ) -> EntityFeatures:
        entity_type = self.entity_type(entity_type_name, ("body", "data", "entity_type"))
        selection = self.parse_feature_list(feature_list)
        annotate_request(entity_type=entity_type.name, categories=sorted(selection.wanted))
        if self.settings.audit_reads:
            annotate_request(entity_id=entity_value)
        return await self.flows.read_features(entity_type, entity_value, selection, max_age)

    async def inspect(self, entity_type_name: str, entity_value: str) -> dict[str, InspectedCategory]:
        """Every category the registry holds for the entity type, whatever its state; with an open registry,
        which declares none per entity type, every category the store holds for the entity."""
        entity_type = self.entity_type(entity_type_name, ("query", "entity_type"))
        if self.registry.is_open:
            annotate_request(entity_type=entity_type.name)
            return await self.flows.inspect(entity_type, entity_value, None)
        max_ages: dict[str, int | None] = {
            name: self.registry.max_age.get(name)
            for name, category in sorted(self.registry.categories.items())
            if category.entity_types is None or entity_type.name in category.entity_types
        }
        annotate_request(entity_type=entity_type.name, categories=sorted(max_ages))
        return await self.flows.inspect(entity_type, entity_value, max_ages)

    async def read_batch(
        self,
        entity_type_name: str,
        entity_values: Sequence[str],
        feature_list: Sequence[str],
        max_age: float | None = None,
    ) -> list[EntityFeatures]:
        entity_type = self.entity_type(entity_type_name, ("body", "data", "entity_type"))
        if len(entity_values) > self.settings.max_batch_entities:
            raise InvalidRequest(
                f"entity_values holds {len(entity_values)} entities; the limit is {self.settings.max_batch_entities}",
                ("body", "data", "entity_values"),
            )
        selection = self.parse_feature_list(feature_list)
        annotate_request(entity_type=entity_type.name, categories=sorted(selection.wanted), entities=len(entity_values))
        if self.settings.audit_reads:
            annotate_request(entity_ids=list(entity_values))
        return await self.flows.read_batch(entity_type, entity_values, selection, max_age)

    def _check_write(self, entity_type: EntityType, entity: EntityInput) -> None:
        """The rules of one entity's write beyond pydantic (422)."""
        categories, loc = entity.categories, entity.loc
        limit = self.max_categories_per_write
        if len(categories) > limit:
            raise InvalidRequest(
                f"a write may hold at most {limit} categories; this one holds {len(categories)}",
                (*loc, "feature_list"),
            )
        seen: set[str] = set()
        for item in categories:
            self._check_category(item.category, (*item.loc, "category"))
            if item.category in seen:
                raise InvalidRequest(f"category {item.category!r} appears more than once", (*item.loc, "category"))
            seen.add(item.category)
            if len(item.features) > self.settings.max_features_per_category:
                raise InvalidRequest(
                    f"category {item.category!r} has {len(item.features)} features; "
                    f"the limit is {self.settings.max_features_per_category}",
                    (*item.loc, "features"),
                )
        total = sum(len(item.features) for item in categories)
        if total > self.settings.max_features_per_write:
            raise InvalidRequest(
                f"a write may hold at most {self.settings.max_features_per_write} features; this one holds {total}",
                loc,
            )
        for item in categories:
            self.values.check_features(item.features, item.loc)
            self.registry.check_features(item.category, item.features, item.loc, entity_type=entity_type.name)
        ttl = entity.provenance.ttl
        if ttl is not None and ttl > self.settings.max_ttl_seconds:
            raise InvalidRequest(f"ttl may be at most {self.settings.max_ttl_seconds} seconds", entity.ttl_loc)
        self._check_event_time(entity.provenance.event_time, entity.event_time_loc)

    def _check_event_time(self, event_time: datetime | None, loc: tuple[str | int, ...]) -> None:
        """An event_time far ahead would have every later write of its categories skipped (a deletion's, for
        as long as its tombstone lives): at most MAX_EVENT_TIME_AHEAD_SECONDS ahead of this server's clock."""
        if event_time is None:
            return
        limit = self.settings.max_event_time_ahead_seconds
        aware = event_time if event_time.tzinfo is not None else event_time.replace(tzinfo=UTC)  # naive = UTC
        ahead = (aware - utcnow()).total_seconds()
        if ahead > limit:
            raise InvalidRequest(
                f"event_time is {ahead:.0f} seconds ahead of the server's clock; the limit is {limit} seconds "
                "(MAX_EVENT_TIME_AHEAD_SECONDS)",
                loc,
            )

    async def write(self, entity_type_name: str, entity: EntityInput, writer: Principal | None) -> WriteOutcome:
        """Validate the whole request first (422), then the writer (403), then commit.

        `writer` is the API key's principal, None when keys are off.
        """
        entity_type = self.entity_type(entity_type_name, ("body", "data", "entity_type"))
        self._check_write(entity_type, entity)
        annotate_request(entity_type=entity_type.name, categories=[item.category for item in entity.categories])
        settled = self._authorise_writer(entity, writer)
        return await self.flows.write(entity_type, settled)

    async def write_batch(
        self, entity_type_name: str, entities: Sequence[EntityInput], writer: Principal | None
    ) -> list[WriteOutcome | FeatureStoreError]:
        """The request as a whole first (422: entity type, size, duplicates); then each entity judged on its
        own as `write` judges one, its refusal (422, 403) or its store's failure kept in its place."""
        entity_type = self.entity_type(entity_type_name, ("body", "data", "entity_type"))
        limit = self.settings.max_batch_write_entities
        if len(entities) > limit:
            raise InvalidRequest(
                f"entities holds {len(entities)} entities; the limit is {limit}: split the write",
                ("body", "data", "entities"),
            )
        seen: set[str] = set()
        for index, entity in enumerate(entities):
            if entity.entity_value in seen:
                raise InvalidRequest(
                    f"entity_value {entity.entity_value[:200]!r} appears more than once: send each entity once",
                    ("body", "data", "entities", index, "entity_value"),
                )
            seen.add(entity.entity_value)
        annotate_request(entity_type=entity_type.name, entities=len(entities))
        refused: list[FeatureStoreError | None] = []
        accepted: list[EntityInput] = []
        for entity in entities:
            try:
                self._check_write(entity_type, entity)
                accepted.append(self._authorise_writer(entity, writer))
            except FeatureStoreError as exc:
                refused.append(exc)
                continue
            refused.append(None)
        written = iter(await self.flows.write_many(entity_type, accepted))
        return [next(written) if error is None else error for error in refused]

    async def delete(
        self,
        entity_type_name: str,
        entity_value: str,
        categories: Sequence[str],
        writer: Principal | None,
        event_time: datetime | None,
    ) -> DeleteOutcome:
        """Each category named must be allowed (422) and, with API keys, one the key may write (403);
        none named means every category, which only a key that may write every category may delete."""
        entity_type = self.entity_type(entity_type_name, ("query", "entity_type"))
        self._check_event_time(event_time, ("query", "event_time"))
        wanted = list(dict.fromkeys(categories))
        for category in wanted:
            self._check_category(category, ("query", "category"))
        if writer is not None:
            if not wanted and writer.categories is not None:
                raise Forbidden(
                    f"key {writer.name!r} may delete only the categories it may write: name them with `category=`"
                )
            denied = [category for category in wanted if not writer.may_write(category)]
            if denied:
                raise Forbidden(f"key {writer.name!r} may not delete categories {denied}")
        annotate_request(entity_type=entity_type.name, categories=wanted)
        source, actor = (writer.sources[0], writer.actor) if writer is not None else (None, None)
        return await self.flows.delete(
            entity_type, entity_value, wanted or None, source=source, event_time=event_time, actor=actor
        )

    def _authorise_writer(self, entity: EntityInput, writer: Principal | None) -> EntityInput:
        """The entity to store, its source settled. Without keys, the self-declared source must be an
        allowed writer; with keys, the key decides (its first source when none is declared): a source it
        does not own or a category it may not write is a 403. The caller is recorded as the write's actor."""
        source, categories = entity.provenance.source, entity.categories
        if writer is None:
            if source is None:
                raise SourceRequired(
                    "meta.source is required: it names the writer", ("body", "meta", "source"), "missing"
                )
            if source not in self.allowed_writers:
                raise Forbidden(f"source {source!r} may not write features")
            self._check_registry_writers(source, categories)
            return entity
        if source is None:
            source = writer.sources[0]
        elif source not in writer.sources:
            raise Forbidden(f"key {writer.name!r} may not write as source {source!r}")
        denied = [item.category for item in categories if not writer.may_write(item.category)]
        if denied:
            raise Forbidden(f"key {writer.name!r} may not write categories {denied}")
        self._check_registry_writers(source, categories)
        provenance = entity.provenance
        settled = Provenance(source, provenance.compute_id, provenance.ttl, provenance.event_time, writer.actor)
        return EntityInput(entity.entity_value, categories, settled, entity.loc, entity.ttl_loc)

    def _check_registry_writers(self, source: str, categories: Sequence[CategoryInput]) -> None:
        """The registry may narrow who writes a category (its `writers`); it never widens."""
        denied = [item.category for item in categories if not self.registry.may_write(item.category, source)]
        if denied:
            raise Forbidden(f"source {source!r} is not among the registry's writers of categories {denied}")

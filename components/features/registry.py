"""The feature registry: the categories the service accepts, and for each its features and their types,
owner, entity types, default TTL, writers, mode and history.

Declared in a YAML file (`FEATURE_REGISTRY_FILE`, format in docs/registry.md) and checked at start-up
(a bad file stops the service with a message naming the category, feature or field at fault) and on each
reload (components/config_reload.py: a bad file is refused and the registry in force stays).
Without a file, `ALLOWED_CATEGORIES`, `CATEGORY_DEFAULT_TTL_SECONDS` and `CATEGORY_HISTORY` build an open
registry with no declared features, which accepts exactly what the service accepted before.

Every write is checked against it before anything is stored (`Registry.check_features`): a value of
another type than declared, a null for a feature that is not nullable, or an undeclared feature in a
`strict` category is refused, naming the category, feature, expected and received type. An `int` is
accepted for a `float`. The discovery documents (`GET /api/v1/registry`) are rendered once, with their ETags.
"""

import difflib
import hashlib
import io
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    ValidationError,
    field_validator,
)

from components.features.names import NAME_PATTERN
from core.exceptions import ConfigurationError, InvalidRequest
from core.file_lines import at_line
from core.metrics import metrics
from core.serialization import dumps
from core.settings import CategoryHistory, Settings

SCALAR_TYPES = ("int", "float", "bool", "string", "map", "json")
"""Feature types besides `list<T>`; `map` is a JSON object, `json` any JSON value."""
MAX_TYPE_CHARS = 128
MAX_TEXT = 1024

Checker = Callable[[Any], bool]
"""True when a value (never None: nulls are judged by `nullable`) has the declared type."""

_SCALAR_CHECKERS: dict[str, Checker] = {
    # `type(...) is`: JSON parsing gives exact types, and bool (a subclass of int) is no number here.
    "int": lambda value: type(value) is int,
    "float": lambda value: type(value) is float or type(value) is int,
    "bool": lambda value: type(value) is bool,
    "string": lambda value: type(value) is str,
    "map": lambda value: type(value) is dict,
    "json": lambda value: True,
}


def type_checker(declared: str) -> Checker:
    """The checker of a type as written in the registry; ValueError naming the valid forms otherwise."""
    if declared in _SCALAR_CHECKERS:
        return _SCALAR_CHECKERS[declared]
    if declared.startswith("list<") and declared.endswith(">"):
        element = type_checker(declared[5:-1])
        return lambda value: type(value) is list and all(item is not None and element(item) for item in value)
    raise ValueError(f"unknown type {declared[:MAX_TYPE_CHARS]!r}; use one of {', '.join(SCALAR_TYPES)} or list<T>")


def type_of(value: Any) -> str:
    """A JSON value's type in the registry's words: `list<int|string>` for a list holding both."""
    if value is None:
        return "null"
    if isinstance(value, list):
        elements = dict.fromkeys(type_of(item) for item in value)
        return f"list<{'|'.join(elements)}>" if elements else "list"
    for name, kind in (("bool", bool), ("int", int), ("float", float), ("string", str), ("map", dict)):
        if isinstance(value, kind):
            return name
    return type(value).__name__


# --- The file -------------------------------------------------------------------------------------------------

Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
Text = Annotated[str, StringConstraints(max_length=MAX_TEXT)]
Writer = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class FeatureSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Annotated[str, StringConstraints(max_length=MAX_TYPE_CHARS)]
    nullable: StrictBool = False
    description: Text | None = None

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        type_checker(value)
        return value


class CategorySpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    description: Text | None = None
    owner: Text | None = None
    entity_types: list[Name] | None = Field(None, min_length=1)
    """None: every configured entity type."""
    default_ttl_seconds: StrictInt | None = Field(None, gt=0)
    max_age_seconds: StrictInt | None = Field(None, gt=0)
    """How old served features may be before they count as stale: the freshness alert's threshold, exported
    as a metric; reads are not refused for it (a read's own `max_age_seconds` does that)."""
    writers: list[Writer] | None = Field(None, min_length=1)
    """None: every writer the service otherwise allows."""
    mode: Literal["strict", "open"] = "open"
    history: CategoryHistory | None = None
    """None: a write replaces the category's value and keeps nothing of the old one (docs/history.md)."""
    features: dict[Name, FeatureSpec] = {}

    @field_validator("features", mode="before")
    @classmethod
    def _empty_features(cls, value: object) -> object:
        return {} if value is None else value


class RegistryFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    categories: dict[Name, CategorySpec] = Field(min_length=1)

    @field_validator("categories", mode="before")
    @classmethod
    def _empty_categories(cls, value: object) -> object:
        """`trans_features:` with nothing after it is a category with every field at its default."""
        if isinstance(value, dict):
            return {name: {} if spec is None else spec for name, spec in value.items()}
        return value


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML keeps the last of two equal keys; a category or feature declared twice must be an error instead."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"{str(key)[:MAX_TYPE_CHARS]!r} is declared twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _where(loc: Sequence[int | str]) -> str:
    """A pydantic error location in the file's words: `category 'x', feature 'y', field 'type'`."""
    parts: list[str] = []
    rest = list(loc)
    if rest[:1] == ["categories"] and len(rest) >= 2:
        parts.append(f"category {rest[1]!r}")
        rest = rest[2:]
        if rest[:1] == ["features"] and len(rest) >= 2:
            parts.append(f"feature {rest[1]!r}")
            rest = rest[2:]
    rest = ["name" if item == "[key]" else item for item in rest]
    if rest:
        parts.append(f"field {'.'.join(map(str, rest))!r}")
    return ", ".join(parts) or "the file"


def _describe(exc: ValidationError, text: str) -> str:
    return "; ".join(
        f"{at_line(text, error['loc'])}{_where(error['loc'])}: {error['msg']}"
        for error in exc.errors(include_input=False)
    )


class FieldProblem(ConfigurationError):
    """A value of the file that its shape allows but the service refuses; `loc` points at it (for the line)."""

    def __init__(self, message: str, loc: Sequence[str]) -> None:
        super().__init__(message)
        self.loc = tuple(loc)


def parse_registry_file(path: str | Path) -> tuple[RegistryFile, str]:
    """Read and check the file's shape; ConfigurationError naming the file, the line and what is wrong.
    Returns the text too, so that later checks name their line."""
    path = Path(path)
    text = ""
    try:
        text = path.read_text(encoding="utf-8")
        stream = io.StringIO(text)
        stream.name = str(path)  # YAML's own errors name the file and line
        raw = yaml.load(stream, Loader=_UniqueKeyLoader)
        if raw is None:
            raise ValueError("the file is empty; it needs `categories:`")
        return RegistryFile.model_validate(raw), text
    except ValidationError as exc:
        raise ConfigurationError(f"FEATURE_REGISTRY_FILE {path}: {_describe(exc, text)}") from None
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"FEATURE_REGISTRY_FILE {path}: {exc}") from None


# --- The registry the service uses ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeclaredFeature:
    type: str
    nullable: bool
    check: Checker


@dataclass(frozen=True, slots=True)
class Category:
    name: str
    spec: CategorySpec
    entity_types: frozenset[str] | None
    writers: frozenset[str] | None
    strict: bool
    features: Mapping[str, DeclaredFeature]


@dataclass(frozen=True, slots=True)
class Document:
    """A discovery answer, rendered once: its JSON bytes and their strong ETag."""

    body: bytes
    etag: str

    @classmethod
    def of(cls, content: Any) -> "Document":
        body = dumps(content)
        return cls(body, f'"{hashlib.sha256(body).hexdigest()[:32]}"')


@dataclass(frozen=True, slots=True)
class Violation:
    reason: Literal["type_mismatch", "undeclared", "null"]
    feature: str
    expected: str | None
    received: str
    msg: str


class RegistryViolation(InvalidRequest):
    """A write that disagrees with the registry: one field error per feature at fault, each naming the
    category, feature, expected and received type."""

    def __init__(self, category: str, violations: Sequence[Violation], loc: Sequence[str | int]) -> None:
        super().__init__("; ".join(violation.msg for violation in violations), loc, violations[0].reason)
        self.category = category
        self.violations = violations

    @property
    def detail(self) -> Any:
        return [
            {
                "type": violation.reason,
                "loc": [*self.loc, violation.feature],
                "msg": violation.msg,
                "category": self.category,
                "feature": violation.feature,
                "expected": violation.expected,
                "received": violation.received,
            }
            for violation in self.violations
        ]


class Registry:
    def __init__(self, specs: Mapping[str, CategorySpec], entity_types: Iterable[str], is_open: bool = False) -> None:
        """`is_open`: built from `ALLOWED_CATEGORIES`, without a file: no category is declared per entity type."""
        self.is_open = is_open
        self.entity_types = tuple(sorted(entity_types))
        self.categories = {name: self._category(name, spec) for name, spec in specs.items()}
        self.names = frozenset(self.categories)
        self.default_ttl = {
            name: spec.default_ttl_seconds for name, spec in specs.items() if spec.default_ttl_seconds is not None
        }
        self.max_age = {name: spec.max_age_seconds for name, spec in specs.items() if spec.max_age_seconds is not None}
        self.history = {name: spec.history for name, spec in specs.items() if spec.history is not None}
        categories = {name: self._describe(category) for name, category in self.categories.items()}
        self.document = Document.of({"entity_types": list(self.entity_types), "categories": categories})
        self.category_documents = {name: Document.of(content) for name, content in categories.items()}

    def _category(self, name: str, spec: CategorySpec) -> Category:
        unknown = sorted(set(spec.entity_types or ()) - set(self.entity_types))
        if unknown:
            raise FieldProblem(
                f"category {name!r}, field 'entity_types': unknown entity types {unknown}; "
                f"configured: {list(self.entity_types)}",
                ("categories", name, "entity_types"),
            )
        features = {
            feature: DeclaredFeature(declared.type, declared.nullable, type_checker(declared.type))
            for feature, declared in spec.features.items()
        }
        return Category(
            name=name,
            spec=spec,
            entity_types=frozenset(spec.entity_types) if spec.entity_types is not None else None,
            writers=frozenset(spec.writers) if spec.writers is not None else None,
            strict=spec.mode == "strict",
            features=features,
        )

    def _describe(self, category: Category) -> dict[str, Any]:
        """A category as discovery serves it: the file's fields, defaults filled in."""
        spec = category.spec
        return {
            "description": spec.description,
            "owner": spec.owner,
            "entity_types": list(dict.fromkeys(spec.entity_types)) if spec.entity_types else list(self.entity_types),
            "default_ttl_seconds": spec.default_ttl_seconds,
            "max_age_seconds": spec.max_age_seconds,
            "writers": list(dict.fromkeys(spec.writers)) if spec.writers is not None else None,
            "mode": spec.mode,
            "history": spec.history.model_dump() if spec.history is not None else None,
            "features": {
                name: {"type": feature.type, "nullable": feature.nullable, "description": feature.description}
                for name, feature in spec.features.items()
            },
        }

    @classmethod
    def from_settings(cls, settings: Settings) -> "Registry":
        """The file's registry when `FEATURE_REGISTRY_FILE` is set, else the open one of `ALLOWED_CATEGORIES`."""
        if settings.feature_registry_file:
            parsed, text = parse_registry_file(settings.feature_registry_file)
            specs: Mapping[str, CategorySpec] = parsed.categories
            try:
                for name, spec in specs.items():
                    if spec.default_ttl_seconds is not None and spec.default_ttl_seconds > settings.max_ttl_seconds:
                        raise FieldProblem(
                            f"category {name!r}, field 'default_ttl_seconds': at most MAX_TTL_SECONDS "
                            f"({settings.max_ttl_seconds})",
                            ("categories", name, "default_ttl_seconds"),
                        )
                return cls(specs, settings.entity_types)
            except FieldProblem as exc:
                where = at_line(text, exc.loc)
                raise ConfigurationError(
                    f"FEATURE_REGISTRY_FILE {settings.feature_registry_file}: {where}{exc}"
                ) from None
        ttl, history = settings.category_default_ttl_seconds, settings.category_history
        specs = {
            name: CategorySpec(default_ttl_seconds=ttl.get(name), history=history.get(name))
            for name in settings.allowed_categories
        }
        return cls(specs, settings.entity_types, is_open=True)

    def report_max_ages(self) -> None:
        """Export each declared `max_age_seconds`, so an alert rule compares served ages with it without
        reading this file."""
        for category, seconds in self.max_age.items():
            metrics.gauge("registry.max_age_seconds", seconds, category=category)

    def may_write(self, category: str, source: str) -> bool:
        writers = self.categories[category].writers
        return writers is None or source in writers

    def check_features(
        self, category: str, features: Mapping[str, Any], loc: Sequence[str | int], *, entity_type: str
    ) -> None:
        """Refuse a category's features that disagree with its declaration (422), counting `write.rejected`.

        `loc` is where the category sits in the request; the category must be in the registry."""
        declared = self.categories[category]
        if declared.entity_types is not None and entity_type not in declared.entity_types:
            raise InvalidRequest(
                f"category {category!r} is not declared for entity type {entity_type!r}; "
                f"declared: {sorted(declared.entity_types)}",
                (*loc, "category"),
            )
        if not declared.features and not declared.strict:
            return
        violations = [
            violation
            for name, value in features.items()
            if (violation := self._check(declared, name, value)) is not None
        ]
        if violations:
            for reason in dict.fromkeys(violation.reason for violation in violations):
                metrics.incr("write.rejected", category=category, reason=reason)
            raise RegistryViolation(category, violations, (*loc, "features"))

    @staticmethod
    def _check(category: Category, name: str, value: Any) -> Violation | None:
        feature = category.features.get(name)
        where = f"category {category.name!r}, feature {name!r}"
        if feature is None:
            if not category.strict:
                return None
            close = difflib.get_close_matches(name, category.features, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; declared: {sorted(category.features)[:20]}"
            received = type_of(value)
            return Violation("undeclared", name, None, received, f"{where}: not declared in this strict category{hint}")
        if value is None:
            if feature.nullable:
                return None
            return Violation("null", name, feature.type, "null", f"{where}: expected {feature.type}, received null")
        if feature.check(value):
            return None
        received = type_of(value)
        return Violation(
            "type_mismatch", name, feature.type, received, f"{where}: expected {feature.type}, received {received}"
        )

"""The registry on its own: each type's checker, nullable, strict and open categories, the refusals'
wording, the open registry built from the old settings, the discovery documents, and bad files
refused with a message naming the category, feature or field at fault."""

from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from components.features.registry import Registry, RegistryViolation, type_checker, type_of
from core.exceptions import ConfigurationError, InvalidRequest
from core.settings import CategoryHistory, Settings

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "deploy" / "registry.example.yaml"
LOC = ("body", "data", "feature_list", 0)

EVERY_TYPE = """
categories:
  typed:
    mode: strict
    features:
      an_int: {type: int}
      a_float: {type: float}
      a_bool: {type: bool}
      a_string: {type: string}
      a_list: {type: "list<float>"}
      nested: {type: "list<list<int>>"}
      a_map: {type: map}
      anything: {type: json}
      maybe: {type: string, nullable: true}
      maybe_json: {type: json, nullable: true}
  loose:
    features:
      credit_score: {type: int}
  bare: {}
  empty:
"""


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


def registry_of(tmp_path: Path, text: str, **values: Any) -> Registry:
    path = tmp_path / "registry.yaml"
    path.write_text(text)
    return Registry.from_settings(settings(feature_registry_file=str(path), **values))


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return registry_of(tmp_path, EVERY_TYPE)


def refusal(registry: Registry, category: str, features: dict[str, Any], entity_type: str = "bright_uid") -> Any:
    with pytest.raises(InvalidRequest) as raised:
        registry.check_features(category, features, LOC, entity_type=entity_type)
    return raised.value


ACCEPTED = [
    ("an_int", 30),
    ("an_int", -(2**63)),
    ("a_float", 150.5),
    ("a_float", 60000),  # an int is accepted for a float
    ("a_bool", False),
    ("a_string", ""),
    ("a_list", []),
    ("a_list", [1, 2.5, -3]),
    ("nested", [[1, 2], [], [3]]),
    ("a_map", {}),
    ("a_map", {"k": [1, {"x": None}]}),
    ("anything", "text"),
    ("anything", [None, 1, {"a": True}]),
    ("anything", {"nested": {"deep": 1.5}}),
    ("maybe", None),
    ("maybe", "SF"),
    ("maybe_json", None),
]
REFUSED = [
    ("an_int", 30.5, "int", "float"),
    ("an_int", 30.0, "int", "float"),
    ("an_int", True, "int", "bool"),
    ("an_int", "30", "int", "string"),
    ("a_float", "1.5", "float", "string"),
    ("a_float", False, "float", "bool"),
    ("a_bool", 1, "bool", "int"),
    ("a_string", 5, "string", "int"),
    ("a_string", ["a"], "string", "list<string>"),
    ("a_list", [1.5, "x"], "list<float>", "list<float|string>"),
    ("a_list", [1.5, None], "list<float>", "list<float|null>"),
    ("a_list", {"0": 1.5}, "list<float>", "map"),
    ("a_list", 1.5, "list<float>", "float"),
    ("nested", [1, 2], "list<list<int>>", "list<int>"),
    ("nested", [[1], [2.5]], "list<list<int>>", "list<list<int>|list<float>>"),
    ("a_map", [], "map", "list"),
    ("a_map", "{}", "map", "string"),
    ("maybe", 3, "string", "int"),
]


@pytest.mark.parametrize(("feature", "value"), ACCEPTED)
def test_values_of_the_declared_type_are_accepted(registry: Registry, feature: str, value: Any) -> None:
    registry.check_features("typed", {feature: value}, LOC, entity_type="bright_uid")


@pytest.mark.parametrize(("feature", "value", "expected", "received"), REFUSED)
def test_values_of_another_type_are_refused(
    registry: Registry, feature: str, value: Any, expected: str, received: str
) -> None:
    error = refusal(registry, "typed", {feature: value})
    assert isinstance(error, RegistryViolation)
    assert error.detail == [
        {
            "type": "type_mismatch",
            "loc": [*LOC, "features", feature],
            "msg": f"category 'typed', feature {feature!r}: expected {expected}, received {received}",
            "category": "typed",
            "feature": feature,
            "expected": expected,
            "received": received,
        }
    ]


@pytest.mark.parametrize("feature", ["an_int", "a_string", "a_list", "a_map", "anything"])
def test_null_is_refused_unless_nullable(registry: Registry, feature: str) -> None:
    (entry,) = refusal(registry, "typed", {feature: None}).detail
    assert (entry["type"], entry["feature"], entry["received"]) == ("null", feature, "null")
    assert entry["expected"] == registry.categories["typed"].features[feature].type


def test_every_feature_at_fault_is_reported_in_request_order(registry: Registry) -> None:
    features = {"an_int": "x", "a_bool": True, "credit_scroe": 1, "a_string": None}
    detail = refusal(registry, "typed", features).detail
    assert [(entry["feature"], entry["type"]) for entry in detail] == [
        ("an_int", "type_mismatch"),
        ("credit_scroe", "undeclared"),
        ("a_string", "null"),
    ]


def test_a_strict_category_refuses_undeclared_features_suggesting_the_closest(registry: Registry) -> None:
    (entry,) = refusal(registry, "typed", {"an_itn": 1}).detail
    assert entry == {
        "type": "undeclared",
        "loc": [*LOC, "features", "an_itn"],
        "msg": "category 'typed', feature 'an_itn': not declared in this strict category; did you mean 'an_int'?",
        "category": "typed",
        "feature": "an_itn",
        "expected": None,
        "received": "int",
    }
    (entry,) = refusal(registry, "typed", {"zzz": "x"}).detail
    assert "declared: ['a_bool', 'a_float'" in entry["msg"]


def test_an_open_category_types_what_it_declares_and_accepts_the_rest(registry: Registry) -> None:
    registry.check_features("loose", {"credit_score": 750, "anything_else": [1, "x"]}, LOC, entity_type="bright_uid")
    (entry,) = refusal(registry, "loose", {"credit_score": "750", "other": None}).detail
    assert (entry["feature"], entry["expected"], entry["received"]) == ("credit_score", "int", "string")
    for bare in ("bare", "empty"):
        registry.check_features(bare, {"x": None, "y": {"z": 1}}, LOC, entity_type="account_id")


def test_entity_types_restrict_where_a_category_is_written(tmp_path: Path) -> None:
    registry = registry_of(tmp_path, "categories:\n  users: {entity_types: [bright_uid]}\n")
    registry.check_features("users", {"a": 1}, LOC, entity_type="bright_uid")
    error = refusal(registry, "users", {"a": 1}, entity_type="account_id")
    assert error.loc == (*LOC, "category")
    assert error.message == "category 'users' is not declared for entity type 'account_id'; declared: ['bright_uid']"


def test_type_of_names_values_in_the_registry_words() -> None:
    values: list[Any] = [None, True, 1, 1.5, "s", {}, [], [1, "a", 2], [[1], []]]
    assert [type_of(value) for value in values] == [
        "null",
        "bool",
        "int",
        "float",
        "string",
        "map",
        "list",
        "list<int|string>",
        "list<list<int>|list>",
    ]


@pytest.mark.parametrize("declared", ["integer", "list", "list<>", "list<foo>", "List<int>", "map<int>", " int"])
def test_unknown_types_are_refused(declared: str) -> None:
    with pytest.raises(ValueError, match="unknown type"):
        type_checker(declared)


def test_without_a_file_the_old_settings_build_an_open_untyped_registry() -> None:
    registry = Registry.from_settings(
        settings(allowed_categories="a_features,b_features", category_default_ttl_seconds={"b_features": 60})
    )
    assert registry.names == {"a_features", "b_features"}
    assert registry.default_ttl == {"b_features": 60}
    registry.check_features("a_features", {"anything": [1, None, "x"], "n": None}, LOC, entity_type="account_id")
    assert registry.may_write("a_features", "whoever")
    document = orjson.loads(registry.document.body)
    assert document == {
        "entity_types": ["account_id", "bright_uid"],
        "categories": {
            name: {
                "description": None,
                "owner": None,
                "entity_types": ["account_id", "bright_uid"],
                "default_ttl_seconds": ttl,
                "max_age_seconds": None,
                "writers": None,
                "mode": "open",
                "history": None,
                "features": {},
            }
            for name, ttl in (("a_features", None), ("b_features", 60))
        },
    }


def test_without_a_file_category_history_gives_the_open_categories_their_history() -> None:
    kept = {"versions": 5, "retention_seconds": 3600}
    registry = Registry.from_settings(
        settings(allowed_categories="a_features,b_features", category_history={"b_features": kept})
    )
    assert registry.history == {"b_features": CategoryHistory(versions=5, retention_seconds=3600)}
    assert orjson.loads(registry.category_documents["b_features"].body)["history"] == kept
    assert orjson.loads(registry.category_documents["a_features"].body)["history"] is None


@pytest.mark.parametrize(
    ("history", "problem"),
    [
        ("{versions: 0, retention_seconds: 60}", "field 'history.versions': Input should be greater than 0"),
        ("{versions: 51, retention_seconds: 60}", "field 'history.versions': Input should be less than or equal to 50"),
        ("{versions: 3}", "field 'history.retention_seconds': Field required"),
        ("{versions: 3, retention_seconds: -1}", "field 'history.retention_seconds': Input should be greater than 0"),
        ("{versions: 3, retention_seconds: 60, keep: all}", "field 'history.keep': Extra inputs are not permitted"),
        ('{versions: "3", retention_seconds: 60}', "field 'history.versions': Input should be a valid integer"),
    ],
)
def test_a_bad_history_is_refused_naming_its_field(tmp_path: Path, history: str, problem: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        registry_of(tmp_path, f"categories:\n  users:\n    history: {history}\n")
    assert problem in str(caught.value)
    assert "line 3, category 'users'" in str(caught.value)


def test_a_history_is_kept_as_declared(tmp_path: Path) -> None:
    registry = registry_of(
        tmp_path, "categories:\n  users:\n    history: {versions: 3, retention_seconds: 60}\n  other: {}\n"
    )
    assert registry.history == {"users": CategoryHistory(versions=3, retention_seconds=60)}


def test_the_documents_fill_in_defaults_and_carry_stable_etags(tmp_path: Path) -> None:
    text = """
categories:
  users:
    description: People
    owner: team-a
    writers: [job_a, job_b]
    default_ttl_seconds: 3600
    mode: strict
    features:
      age: {type: int, description: Years}
      city: {type: string, nullable: true}
  other: {}
"""
    registry = registry_of(tmp_path, text)
    users = orjson.loads(registry.category_documents["users"].body)
    assert users == {
        "description": "People",
        "owner": "team-a",
        "entity_types": ["account_id", "bright_uid"],
        "default_ttl_seconds": 3600,
        "max_age_seconds": None,
        "writers": ["job_a", "job_b"],
        "mode": "strict",
        "history": None,
        "features": {
            "age": {"type": "int", "nullable": False, "description": "Years"},
            "city": {"type": "string", "nullable": True, "description": None},
        },
    }
    whole = orjson.loads(registry.document.body)
    assert whole["categories"] == {"users": users, "other": orjson.loads(registry.category_documents["other"].body)}
    assert registry.may_write("users", "job_b") and not registry.may_write("users", "job_c")
    assert registry.may_write("other", "job_c")

    etags = {registry.document.etag, *(document.etag for document in registry.category_documents.values())}
    assert len(etags) == 3 and all(etag.startswith('"') and etag.endswith('"') for etag in etags)
    assert registry_of(tmp_path, text).document.etag == registry.document.etag
    changed = registry_of(tmp_path, text.replace("nullable: true", "nullable: false"))
    assert changed.document.etag != registry.document.etag
    assert changed.category_documents["other"].etag == registry.category_documents["other"].etag


def test_the_example_file_is_valid_and_uses_every_field(tmp_path: Path) -> None:
    registry = Registry.from_settings(settings(feature_registry_file=str(EXAMPLE)))
    document = orjson.loads(registry.document.body)
    categories = document["categories"]
    types = {feature["type"] for category in categories.values() for feature in category["features"].values()}
    assert types >= {"int", "float", "bool", "string", "map", "json"} and any(t.startswith("list<") for t in types)
    assert {category["mode"] for category in categories.values()} == {"strict", "open"}
    raw = EXAMPLE.read_text()
    fields = ("description", "owner", "entity_types", "default_ttl_seconds", "max_age_seconds", "writers", "nullable")
    for field in fields:
        assert f"{field}:" in raw, field
    # The service's default categories are all declared, so adopting the example changes no writer's category.
    assert registry.names >= set(settings().allowed_categories)


BAD_FILES = [
    ("", "the file is empty; it needs `categories:`"),
    ("categories: [a, b]\n", "field 'categories': Input should be a valid dictionary"),
    ("categories: {}\n", "field 'categories': Dictionary should have at least 1 item"),
    ("kategories: {a: {}}\n", "field 'kategories': Extra inputs are not permitted"),
    ("- a\n", "the file: Input should be a valid dictionary"),
    ("categories:\n  a: {mode: closed}\n", "category 'a', field 'mode': Input should be 'strict' or 'open'"),
    ("categories:\n  a: {owners: x}\n", "category 'a', field 'owners': Extra inputs are not permitted"),
    ("categories:\n  a: {default_ttl_seconds: 0}\n", "category 'a', field 'default_ttl_seconds': Input should be"),
    ("categories:\n  a: {default_ttl_seconds: '60'}\n", "category 'a', field 'default_ttl_seconds'"),
    ("categories:\n  a: {max_age_seconds: -5}\n", "category 'a', field 'max_age_seconds': Input should be"),
    ("categories:\n  a: {writers: []}\n", "category 'a', field 'writers': List should have at least 1 item"),
    ("categories:\n  a: {entity_types: []}\n", "category 'a', field 'entity_types'"),
    (
        "categories:\n  a: {entity_types: [bright_uid, merchant]}\n",
        "category 'a', field 'entity_types': unknown entity types ['merchant']; configured: ['account_id', 'bright_uid']",
    ),
    ("categories:\n  'bad name': {}\n", "category 'bad name', field 'name': String should match pattern"),
    (
        "categories:\n  a:\n    features:\n      age: {type: integer}\n",
        "category 'a', feature 'age', field 'type': Value error, unknown type 'integer'; "
        "use one of int, float, bool, string, map, json or list<T>",
    ),
    ("categories:\n  a:\n    features:\n      age: {}\n", "category 'a', feature 'age', field 'type': Field required"),
    (
        "categories:\n  a:\n    features:\n      age: {type: int, nulable: true}\n",
        "category 'a', feature 'age', field 'nulable': Extra inputs are not permitted",
    ),
    (
        "categories:\n  a:\n    features:\n      age: {type: int, nullable: maybe}\n",
        "category 'a', feature 'age', field 'nullable': Input should be a valid boolean",
    ),
    (
        "categories:\n  a:\n    features:\n      age: {type: int, description: Years, rounded down}\n",
        "category 'a', feature 'age', field 'rounded down': Extra inputs are not permitted",
    ),
    ("categories:\n  a:\n    features:\n      'x y': {type: int}\n", "category 'a', feature 'x y', field 'name'"),
    ("categories:\n  a: {}\n  a: {}\n", "'a' is declared twice\n  in \"{path}\", line 3"),
    ("categories:\n  a:\n    features:\n      age: {type: int}\n      age: {type: float}\n", "'age' is declared twice"),
    ("categories:\n  a: {mode: [\n", "while parsing"),
]


@pytest.mark.parametrize(("text", "message"), BAD_FILES)
def test_a_bad_file_refuses_to_start_naming_the_fault(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        registry_of(tmp_path, text)
    assert raised.value.message.startswith(f"FEATURE_REGISTRY_FILE {tmp_path / 'registry.yaml'}: ")
    assert message.replace("{path}", str(tmp_path / "registry.yaml")) in raised.value.message


def test_a_default_ttl_over_the_limit_is_refused(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigurationError, match="line 3, category 'a', field 'default_ttl_seconds': at most MAX_TTL_SECONDS"
    ):
        registry_of(tmp_path, "categories:\n  b: {}\n  a: {default_ttl_seconds: 100}\n", max_ttl_seconds=99)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("categories:\n  a: {}\n  b:\n    features:\n      age: {type: integer}\n", 5),
        ("categories:\n  a: {}\n  b:\n    owner: x\n    entity_types: [merchant]\n", 5),
        ("categories:\n  a: {}\n  b: {mode: loose}\n", 3),
    ],
)
def test_a_refusal_names_the_line(tmp_path: Path, text: str, line: int) -> None:
    with pytest.raises(ConfigurationError, match=f"registry.yaml: line {line}, category 'b', "):
        registry_of(tmp_path, text)


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="FEATURE_REGISTRY_FILE .*nowhere.yaml: .*No such file"):
        Registry.from_settings(settings(feature_registry_file=str(tmp_path / "nowhere.yaml")))


def test_extra_entity_types_may_be_declared(tmp_path: Path) -> None:
    registry = registry_of(
        tmp_path,
        "categories:\n  shops: {entity_types: [merchant_id]}\n",
        extra_entity_types={"merchant_id": {"table": "merchants", "key_attribute": "mid"}},
    )
    assert orjson.loads(registry.document.body)["entity_types"] == ["account_id", "bright_uid", "merchant_id"]
    registry.check_features("shops", {"a": 1}, LOC, entity_type="merchant_id")


@pytest.mark.parametrize(
    "env", [{"ALLOWED_CATEGORIES": "a,b"}, {"CATEGORY_DEFAULT_TTL_SECONDS": "{}"}, {"ALLOWED_CATEGORIES": ""}]
)
def test_a_file_and_the_settings_it_replaces_refuse_to_start(monkeypatch, env: dict[str, str]) -> None:
    monkeypatch.setenv("FEATURE_REGISTRY_FILE", str(EXAMPLE))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=f"FEATURE_REGISTRY_FILE declares the categories .*{next(iter(env))}"):
        Settings(_env_file=None)


def test_a_file_alone_or_the_old_settings_alone_start(monkeypatch) -> None:
    monkeypatch.setenv("FEATURE_REGISTRY_FILE", str(EXAMPLE))
    assert Settings(_env_file=None).feature_registry_file == str(EXAMPLE)
    monkeypatch.delenv("FEATURE_REGISTRY_FILE")
    monkeypatch.setenv("ALLOWED_CATEGORIES", "a,b")
    assert Settings(_env_file=None).allowed_categories == ("a", "b")

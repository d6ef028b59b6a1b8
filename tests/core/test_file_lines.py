"""`line_of`: the line a pydantic location points at in a YAML or JSON file."""

import json

import pytest

from core.file_lines import at_line, line_of

REGISTRY = """categories:
  user_features:
    features:
      age: {type: integer}
  credit_features: {owner: risk}
"""


@pytest.mark.parametrize(
    ("loc", "line"),
    [
        (("categories", "user_features", "features", "age", "type"), 4),
        (("categories", "user_features", "owner"), 2),  # absent: the line of the category that lacks it
        (("categories", "credit_features", "owner"), 5),
        (("categories", "bad name", "[key]"), 1),
        ((), 1),
    ],
)
def test_a_yaml_location(loc: tuple, line: int) -> None:
    assert line_of(REGISTRY, loc) == line


def test_a_json_location() -> None:
    text = json.dumps([{"name": "a"}, {"name": "b", "scopes": ["x", "y"]}], indent=2)
    assert line_of(text, (1, "scopes", 1)) == 9
    assert line_of(text, (1,)) == 5


def test_no_line_for_what_is_not_yaml() -> None:
    assert line_of("[{", (0,)) is None
    assert line_of("", (0,)) is None
    assert at_line("[{", (0,)) == ""
    assert at_line("a: 1", ("a",)) == "line 1, "

"""The grants file: what claims match, how grants combine, and which files are refused."""

from pathlib import Path

import pytest

from core.grants import Grants

CATEGORIES = ["user_features", "credit_features"]


def grants(tmp_path: Path, text: str) -> Grants:
    path = tmp_path / "grants.yaml"
    path.write_text(text)
    return Grants.load(path, CATEGORIES)


GRANTS = """
- name: readers
  match: {groups: analysts}
  scopes: [features:read]
- name: writer
  match: {sub: job-7, azp: airflow}
  scopes: [features:write]
  sources: [pipeline]
  categories: [user_features]
- name: everything
  match: {admin: true}
  scopes: [features:write, admin]
  sources: [ops]
  categories: ["*"]
"""


def test_every_claim_of_an_entry_must_match(tmp_path: Path) -> None:
    loaded = grants(tmp_path, GRANTS)
    assert loaded.principal({"sub": "job-7"}, "sub:job-7") is None
    principal = loaded.principal({"sub": "job-7", "azp": "airflow"}, "sub:job-7 client:airflow")
    assert principal is not None and principal.name == "writer" and principal.actor == "sub:job-7 client:airflow"


def test_list_claims_match_by_membership_and_grants_combine(tmp_path: Path) -> None:
    principal = grants(tmp_path, GRANTS).principal({"sub": "job-7", "azp": "airflow", "groups": ["analysts"]}, "a")
    assert principal is not None
    assert principal.name == "readers,writer"
    assert principal.scopes == {"features:read", "features:write"}
    assert principal.sources == ("pipeline",) and principal.categories == {"user_features"}


def test_a_wildcard_grant_opens_every_category(tmp_path: Path) -> None:
    principal = grants(tmp_path, GRANTS).principal({"sub": "x", "azp": "airflow", "admin": True}, "a")
    assert principal is not None and principal.categories is None and principal.sources == ("ops",)


def test_values_match_by_type_too(tmp_path: Path) -> None:
    assert grants(tmp_path, GRANTS).principal({"admin": "true"}, "a") is None


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("- {name: a, match: {sub: x}, scopes: [features:read], extra: 1}", "extra"),
        ("- {name: a, match: {}, scopes: [features:read]}", "match"),
        ("- {name: a, match: {sub: x}, scopes: [features:write]}", "no sources"),
        ("- {name: a, match: {sub: x}, scopes: [root]}", "scopes"),
        ("- {name: a, match: {sub: x}, scopes: [features:write], sources: [s], categories: [nope]}", "nope"),
        ("- {name: a, match: {sub: x}, scopes: [admin]}\n- {name: a, match: {sub: y}, scopes: [admin]}", "share"),
        ("[oops", "grants.yaml"),
    ],
)
def test_invalid_files_are_refused_with_the_reason(tmp_path: Path, text: str, named: str) -> None:
    with pytest.raises(ValueError, match="AUTH_JWT_GRANTS_FILE") as refused:
        grants(tmp_path, text)
    assert named in str(refused.value)


def test_a_refusal_names_the_line_of_its_entry(tmp_path: Path) -> None:
    text = (
        "- {name: a, match: {sub: x}, scopes: [admin]}\n# a comment\n- name: b\n  match: {sub: y}\n  scopes: [root]\n"
    )
    with pytest.raises(ValueError, match=r"line 3, entry 1.scopes.0"):
        grants(tmp_path, text)

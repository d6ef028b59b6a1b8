"""What an OIDC caller may do: `AUTH_JWT_GRANTS_FILE` maps token claims to the grants an API key carries.

The file is a YAML list of `{name, match: {claim: value, ...}, scopes, sources, categories}`. An entry applies
when every claim in `match` equals its value (a list-valued claim such as `groups` when it contains the
value); the grants of every entry that applies combine, and their names are what logs and 403s show.
"""

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError, model_validator

from core.auth import ANY_CATEGORY, SCOPE_WRITE, KeyName, Principal, Scope

ClaimValue = str | int | bool


class GrantEntry(BaseModel):
    """One entry of the grants file: the claims it matches and what it grants (as a key's entry would)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: KeyName
    match: dict[Annotated[str, StringConstraints(min_length=1, max_length=256)], ClaimValue] = Field(min_length=1)
    scopes: list[Scope] = Field(min_length=1)
    sources: list[Annotated[str, StringConstraints(min_length=1, max_length=256)]] = []
    categories: list[str] = []

    @model_validator(mode="after")
    def _writers_name_what_they_write(self) -> "GrantEntry":
        if SCOPE_WRITE in self.scopes and not (self.sources and self.categories):
            raise ValueError(f"grant {self.name!r} has {SCOPE_WRITE} but no sources or no categories")
        return self

    def applies_to(self, claims: Mapping[str, Any]) -> bool:
        for claim, expected in self.match.items():
            found = claims.get(claim)
            if isinstance(found, list):
                if expected not in found:
                    return False
            elif found != expected or type(found) is not type(expected):
                return False
        return True


_ENTRIES = TypeAdapter(list[GrantEntry])


def _entry_lines(text: str) -> list[int]:
    """The line each top-level entry starts on, so a refusal points at it; empty when it is no YAML list."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return []
    return [item.start_mark.line + 1 for item in node.value] if isinstance(node, yaml.SequenceNode) else []


def _describe(exc: ValidationError, lines: list[int]) -> str:
    """Each field at fault, with the line of its entry; never the input (it may hold what was misplaced)."""
    described = []
    for error in exc.errors(include_input=False):
        loc = error["loc"]
        where = f"line {lines[loc[0]]}, " if loc and isinstance(loc[0], int) and loc[0] < len(lines) else ""
        described.append(f"{where}entry {'.'.join(map(str, loc))}: {error['msg']}")
    return "; ".join(described)


class Grants:
    """The grants file, checked whole: unknown categories and duplicate names are refused like a keys file's."""

    def __init__(self, entries: Sequence[GrantEntry], allowed_categories: Iterable[str]) -> None:
        allowed = frozenset(allowed_categories)
        names = [entry.name for entry in entries]
        if len(set(names)) != len(names):
            raise ValueError("two grants share a name")
        for entry in entries:
            unknown = set(entry.categories) - allowed - {ANY_CATEGORY}
            if unknown:
                raise ValueError(f"grant {entry.name!r} names categories not allowed: {sorted(unknown)}")
        self.entries = tuple(entries)

    @classmethod
    def load(cls, path: str | Path, allowed_categories: Iterable[str]) -> "Grants":
        """Read and check the file; any problem is a ValueError naming the file and what is wrong."""
        path = Path(path)
        text = ""
        try:
            text = path.read_text(encoding="utf-8")
            return cls(_ENTRIES.validate_python(yaml.safe_load(text)), allowed_categories)
        except (OSError, ValueError, yaml.YAMLError) as exc:
            reason = _describe(exc, _entry_lines(text)) if isinstance(exc, ValidationError) else exc
            raise ValueError(f"AUTH_JWT_GRANTS_FILE {path}: {reason}") from None

    @property
    def names(self) -> list[str]:
        return [entry.name for entry in self.entries]

    def principal(self, claims: Mapping[str, Any], actor: str) -> Principal | None:
        """The combined grants of every entry that applies; None when none does."""
        matching = [entry for entry in self.entries if entry.applies_to(claims)]
        if not matching:
            return None
        scopes: set[str] = set()
        sources: dict[str, None] = {}
        categories: set[str] | None = set()
        for entry in matching:
            scopes.update(entry.scopes)
            sources.update(dict.fromkeys(entry.sources))
            if categories is not None:
                categories = None if ANY_CATEGORY in entry.categories else categories | set(entry.categories)
        name = ",".join(entry.name for entry in matching)
        return Principal(
            name,
            frozenset(scopes),
            tuple(sources),
            None if categories is None else frozenset(categories),
            actor,
            kind="jwt",
        )

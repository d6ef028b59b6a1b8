"""The documentation stays true to the repository: every relative link and anchor in README.md and
docs/*.md resolves, and docs/configuration.md has exactly one row for every setting and none for
anything else, with the default the service really uses."""

import re
from collections import Counter
from pathlib import Path

import pytest
from pydantic import AliasChoices

from core.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = [README, *sorted((ROOT / "docs").glob("*.md"))]
CONFIGURATION = ROOT / "docs" / "configuration.md"
API = ROOT / "docs" / "api.md"
SETTINGS_HEADER = ["variable", "meaning", "default"]
ENDPOINTS_HEADER = ["method and path", "what it does"]

FENCE = re.compile(r"^\s*(```|~~~)")
CODE_SPAN = re.compile(r"`[^`]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def prose_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, line) for every line outside fenced code blocks."""
    lines: list[tuple[int, str]] = []
    fence: str | None = None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        opened = FENCE.match(line)
        if fence is None and opened:
            fence = opened.group(1)
        elif fence is not None and line.strip().startswith(fence):
            fence = None
        elif fence is None:
            lines.append((number, line))
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: the rendered text, lower-cased, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: Counter[str] = Counter()
    found: set[str] = set()
    for _, line in prose_lines(path):
        if match := HEADING.match(line):
            base = slug(match.group(2))
            found.add(f"{base}-{seen[base]}" if seen[base] else base)
            seen[base] += 1
    return found


def links(path: Path) -> list[tuple[int, str]]:
    """(line number, target) of every inline link and image outside code."""
    return [(number, target) for number, line in prose_lines(path) for target in LINK.findall(CODE_SPAN.sub("", line))]


def broken_links(path: Path) -> list[str]:
    problems = []
    for number, target in links(path):
        if SCHEME.match(target):
            continue  # http(s), mailto: not ours to check offline
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        where = f"{path.relative_to(ROOT)}:{number}: {target}"
        if not linked.is_relative_to(ROOT) or not linked.exists():
            problems.append(f"{where}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            problems.append(f"{where}: no heading with that anchor in {linked.relative_to(ROOT)}")
    return problems


def split_row(line: str) -> list[str]:
    """Cells of a table row; like GitHub, only an escaped pipe stays inside a cell."""
    inner = line.strip().removeprefix("|").removesuffix("|")
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", inner)]


def tables(path: Path) -> list[tuple[list[str], list[tuple[int, list[str]]]]]:
    """(header cells, [(line number, cells)]) of every table outside code blocks."""
    found: list[tuple[list[str], list[tuple[int, list[str]]]]] = []
    block: list[tuple[int, str]] = []
    for number, line in [*prose_lines(path), (0, "")]:
        if line.lstrip().startswith("|"):
            block.append((number, line))
            continue
        if len(block) >= 2 and re.fullmatch(r"[\s|:-]+", block[1][1]):
            found.append(
                ([cell.lower() for cell in split_row(block[0][1])], [(n, split_row(row)) for n, row in block[2:]])
            )
        block = []
    return found


def env_names() -> dict[str, str]:
    """Setting field -> the environment variable pydantic-settings reads it from."""
    config = Settings.model_config
    names = {}
    for field_name, field in Settings.model_fields.items():
        alias = field.validation_alias or field.alias
        if isinstance(alias, AliasChoices):
            alias = alias.choices[0]
        if alias is None:
            name = f"{config.get('env_prefix', '')}{field_name}"
        elif isinstance(alias, str):
            name = alias
        else:
            raise AssertionError(f"{field_name}: an alias path has no environment variable of its own")
        names[field_name] = name if config.get("case_sensitive") else name.upper()
    return names


SETTING_CELL = re.compile(r"`([A-Za-z0-9_]+)`")


def settings_rows() -> list[tuple[int, list[str]]]:
    found = [rows for header, rows in tables(CONFIGURATION) if header == SETTINGS_HEADER]
    assert len(found) == 1, f"docs/configuration.md needs exactly one | {' | '.join(SETTINGS_HEADER)} | table"
    return found[0]


def setting_of(number: int, cells: list[str]) -> str:
    """The variable a configuration row documents: its first cell is exactly one `VARIABLE`."""
    name = SETTING_CELL.fullmatch(cells[0])
    assert name, f"configuration.md:{number}: the first cell must be one `VARIABLE`, got {cells[0]!r}"
    return name.group(1)


@pytest.mark.parametrize("path", DOCS, ids=lambda path: str(path.relative_to(ROOT)))
def test_relative_links_and_anchors_resolve(path: Path) -> None:
    assert broken_links(path) == []


def test_every_doc_is_linked_from_the_readme() -> None:
    linked = {(README.parent / target.partition("#")[0]).resolve() for _, target in links(README)}
    assert [str(doc.relative_to(ROOT)) for doc in DOCS[1:] if doc not in linked] == []


def test_the_readme_endpoint_table_is_the_reference_one() -> None:
    def endpoints(path: Path) -> list[list[str]]:
        found = [[cells for _, cells in rows] for header, rows in tables(path) if header == ENDPOINTS_HEADER]
        assert len(found) == 1, f"{path.name}: one endpoint table expected"
        return found[0]

    assert endpoints(README) == endpoints(API)


def test_every_setting_has_exactly_one_row_in_the_configuration_table() -> None:
    documented = []
    for number, cells in settings_rows():
        assert len(cells) == 3 and cells[1] and cells[2], f"configuration.md:{number}: meaning and default needed"
        documented.append(setting_of(number, cells))
    expected = set(env_names().values())
    assert sorted(name for name, count in Counter(documented).items() if count > 1) == [], "documented twice"
    assert sorted(expected - set(documented)) == [], "settings missing from docs/configuration.md"
    assert sorted(set(documented) - expected) == [], "rows naming no setting"


def test_no_other_table_defines_a_setting() -> None:
    """Settings are mentioned anywhere, but only the configuration table has rows for them: a row whose
    first cell is nothing but setting names (`A`, `B` and `C`) would be a second, drifting definition."""
    names = set(env_names().values())
    settings_table = [cells for _, cells in settings_rows()]
    definitions = []
    for path in DOCS:
        for _header, rows in tables(path):
            for number, cells in rows:
                if path == CONFIGURATION and cells in settings_table:
                    continue
                spans = CODE_SPAN.findall(cells[0])
                rest = re.sub(r"\b(and|or)\b|[\s,]", "", CODE_SPAN.sub("", cells[0]))
                if spans and not rest and any(span.strip("`") in names for span in spans):
                    definitions.append(f"{path.relative_to(ROOT)}:{number}: {cells[0]}")
    assert definitions == []


def test_documented_defaults_are_the_real_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each row's default (its first code span, or `empty`), read from the environment as the service
    would read it, gives the setting's default."""
    names = env_names()
    for name in names.values():
        monkeypatch.delenv(name, raising=False)
    documented = {setting_of(number, cells): cells[2] for number, cells in settings_rows()}
    wrong = []
    for field_name, name in names.items():
        cell = documented.get(name)
        if cell is None:
            wrong.append(f"{name}: no row")
            continue
        spans = CODE_SPAN.findall(cell)
        text = spans[0].strip("`") if spans else ("" if cell == "empty" else None)
        assert text is not None, f"{name}: default {cell!r} is neither a code span nor `empty`"
        with monkeypatch.context() as patch:
            patch.setenv(name, text)
            value = getattr(Settings(_env_file=None), field_name)
        default = Settings.model_fields[field_name].default
        if value != default:
            wrong.append(f"{name}: documented {text!r} reads as {value!r}, the default is {default!r}")
    assert wrong == []

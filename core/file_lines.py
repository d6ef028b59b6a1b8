"""Where in a YAML or JSON configuration file a problem lies, so that a refusal names the line to fix."""

from collections.abc import Sequence

import yaml


def line_of(text: str, loc: Sequence[int | str]) -> int | None:
    """The 1-based line of the value at `loc` (list indexes and mapping keys, as pydantic reports them), or of
    the deepest part of it the file holds (a missing field: its entry's line); None when `text` is no YAML
    (JSON is YAML here)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    if node is None:
        return None
    line = node.start_mark.line
    for part in loc:
        if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line
        elif isinstance(node, yaml.MappingNode):
            found = [
                (key, value) for key, value in node.value if isinstance(key, yaml.ScalarNode) and key.value == str(part)
            ]
            if not found:
                break
            key, node = found[-1]
            line = key.start_mark.line  # `name:` itself, not the first line of a block under it
        else:
            break
    return line + 1


def at_line(text: str, loc: Sequence[int | str]) -> str:
    """`line N, ` to put before a problem's description; empty when the line is unknown."""
    line = line_of(text, loc)
    return f"line {line}, " if line is not None else ""

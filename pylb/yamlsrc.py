"""YAML loading that remembers where each key came from, for error messages."""

from __future__ import annotations

from dataclasses import dataclass, field
import re
from typing import Any

import yaml


@dataclass
class Located:
    """A parsed document plus the source line of every key path ('ports[0].vdev')."""

    path: str
    data: Any
    lines: dict[str, int] = field(default_factory=dict)

    def line(self, key: str) -> int | None:
        # Fall back to the nearest enclosing key that has a line.
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key.rsplit(".", 1)[0] if "." in key else (key.rsplit("[", 1)[0] if "[" in key else "")
        return None


def _convert(node: yaml.Node, key: str, lines: dict[str, int]) -> Any:
    lines.setdefault(key, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for k_node, v_node in node.value:
            k = yaml.constructor.SafeConstructor().construct_object(k_node)
            sub = f"{key}.{k}" if key else str(k)
            lines[sub] = k_node.start_mark.line + 1
            out[k] = _convert(v_node, sub, lines)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(v, f"{key}[{i}]", lines) for i, v in enumerate(node.value)]
    return yaml.constructor.SafeConstructor().construct_object(node)


def load(path: str, text: str | None = None) -> Located:
    """Parse YAML at `path`; raises ValueError with file:line for syntax errors."""
    if text is None:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else path
        raise ValueError(f"{where}: not valid YAML: {getattr(e, 'problem', e)}") from None
    lines: dict[str, int] = {}
    data = _convert(node, "", lines) if node is not None else None
    return Located(path, data, lines)


class Checker:
    """Validation helpers that raise `error(path, key, expected, line)`."""

    def __init__(self, src: Located, error: type):
        self.src = src
        self.error = error

    def fail(self, key: str, expected: str) -> Exception:
        return self.error(self.src.path, key, expected, self.src.line(key))

    def mapping(self, value: Any, key: str, allowed: set[str]) -> dict:
        if not isinstance(value, dict):
            raise self.fail(key or "(top level)", "expected a mapping of keys to values")
        for k in value:
            if k not in allowed:
                sub = f"{key}.{k}" if key else str(k)
                raise self.fail(sub, f"unknown key; expected one of: {', '.join(sorted(allowed))}")
        return value

    def integer(self, value: Any, key: str, lo: int, hi: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise self.fail(key, f"expected an integer from {lo} to {hi}, got {value!r}")
        return value

    def string(self, value: Any, key: str, what: str, pattern: re.Pattern | None = None) -> str:
        if not isinstance(value, str) or (pattern and not pattern.match(value)):
            raise self.fail(key, f"expected {what}, got {value!r}")
        return value

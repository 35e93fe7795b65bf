"""YAML loading that remembers where each key came from, for error messages."""

from __future__ import annotations

from dataclasses import dataclass, field
import errno
import re
from typing import Any

import yaml

from pylb import files


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


# Limits on what a file may hold, checked before and while it is read, so a
# hostile or mistaken file fails with one line instead of exhausting memory:
# the size of the text, how deep it nests, and how many values aliases may
# repeat (a "billion laughs" alias bomb expands exponentially).
MAX_BYTES = 8 << 20
MAX_DEPTH = 64
MAX_ALIASED = 10_000

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YamlError(ValueError):
    """A file that cannot be read as YAML within the limits: where and why."""

    def __init__(self, line: int | None, key: str, problem: str):
        super().__init__(f"{line or ''}: {key}: {problem}")
        self.line, self.key, self.problem = line, key, problem


class _Reader:
    """Turns composed nodes into Python values, with a line per key path."""

    def __init__(self, lines: dict[str, int]):
        self.lines = lines
        self.seen: set[int] = set()
        self.aliased = 0
        self.scalars = yaml.constructor.SafeConstructor()

    def convert(self, node: yaml.Node, key: str, depth: int) -> Any:
        line = node.start_mark.line + 1
        if id(node) in self.seen:       # reached again through an alias
            self.aliased += 1
            if self.aliased > MAX_ALIASED:
                raise YamlError(line, "(file)", f"more than {MAX_ALIASED:,} values reached "
                                                "through aliases (aliases of aliases?)")
        self.seen.add(id(node))
        if depth > MAX_DEPTH:
            raise YamlError(line, "(file)", f"nested more than {MAX_DEPTH} levels deep")
        self.lines.setdefault(key, line)
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            first: dict[Any, int] = {}          # key -> its line (1 and true are one key)
            for k_node, v_node in node.value:
                if not isinstance(k_node, yaml.ScalarNode):
                    raise YamlError(k_node.start_mark.line + 1, key or "(top level)",
                                    "a key must be a plain value")
                k = self.scalar(k_node, key)
                sub = f"{key}.{name(k)}" if key else name(k)
                if k in out:
                    raise YamlError(k_node.start_mark.line + 1, sub,
                                    f"duplicate key (also on line {first[k]})")
                first[k] = self.lines[sub] = k_node.start_mark.line + 1
                out[k] = self.convert(v_node, sub, depth + 1)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.convert(v, f"{key}[{i}]", depth + 1) for i, v in enumerate(node.value)]
        return self.scalar(node, key)

    def scalar(self, node: yaml.Node, key: str) -> Any:
        try:
            return self.scalars.construct_object(node)
        except (ValueError, TypeError, OverflowError):
            # PyYAML resolves some text it cannot convert (`0x_` as an integer).
            raise YamlError(node.start_mark.line + 1, key or "(file)",
                            f"cannot read the value {show(node.value)}") from None


def load(path: str, text: str | None = None) -> Located:
    """Parse YAML at `path` (or `text`); raises YamlError for syntax errors
    and for files beyond the limits above, OSError if it cannot be read."""
    if text is None:
        try:
            raw = files.read(path, MAX_BYTES)
        except OSError as e:
            if e.errno != errno.EFBIG:
                raise
            raise YamlError(None, "(file)", f"larger than the limit of {MAX_BYTES >> 20} MiB") \
                from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise YamlError(None, "(file)", f"not UTF-8 text (byte {e.start})") from None
    if len(text) > MAX_BYTES:
        raise YamlError(None, "(file)", f"larger than the limit of {MAX_BYTES >> 20} MiB")
    lines: dict[str, int] = {}
    try:
        node = yaml.compose(text, Loader=_Loader)
        data = _Reader(lines).convert(node, "", 0) if node is not None else None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        problem = " ".join(str(x) for x in (e.context, e.problem) if x)
        raise YamlError(mark.line + 1 if mark else None, "(file)",
                        f"not valid YAML: {problem}") from None
    except yaml.YAMLError as e:
        raise YamlError(None, "(file)", f"not valid YAML: {str(e).splitlines()[0]}") from None
    except RecursionError:
        raise YamlError(None, "(file)", f"nested more than {MAX_DEPTH} levels deep") from None
    return Located(path, data, lines)


def read(path: str, text: str | None, error: type) -> Located:
    """load(), with every failure as `error` (a FileError): file, line, key."""
    try:
        return load(path, text)
    except YamlError as e:
        raise error(path, e.key, e.problem, e.line) from None
    except OSError as e:
        raise error(path, "(file)", f"cannot read: {e.strerror}") from None


def cut(text: str, limit: int = 60) -> str:
    """text, cut to `limit` characters: errors name what was given without
    echoing a huge field."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def show(value: Any, limit: int = 60) -> str:
    return cut(repr(value), limit)


def name(key: Any) -> str:
    """A mapping key as it reads in a key path: as written if it is plain
    printable text, else quoted and escaped; never more than 40 characters."""
    return cut(key, 40) if isinstance(key, str) and key.isprintable() else show(key, 40)


class Checker:
    """Validation helpers that raise `error(path, key, expected, line)`."""

    def __init__(self, src: Located, error: type):
        self.src = src
        self.error = error

    def fail(self, key: str, expected: str) -> Exception:
        key = key.lstrip(".")       # the fields of an API request have no parent key
        return self.error(self.src.path, key or "(request)", expected, self.src.line(key))

    def mapping(self, value: Any, key: str, allowed: set[str]) -> dict:
        if not isinstance(value, dict):
            raise self.fail(key or "(top level)", "expected a mapping of keys to values")
        for k in value:
            if k not in allowed:
                sub = f"{key}.{name(k)}" if key else name(k)
                raise self.fail(sub, f"unknown key; expected one of: {', '.join(sorted(allowed))}")
        return value

    def integer(self, value: Any, key: str, lo: int, hi: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise self.fail(key, f"expected an integer from {lo} to {hi}, got {show(value)}")
        return value

    def string(self, value: Any, key: str, what: str, pattern: re.Pattern | None = None) -> str:
        if not isinstance(value, str) or (pattern and not pattern.match(value)):
            raise self.fail(key, f"expected {what}, got {show(value)}")
        return value

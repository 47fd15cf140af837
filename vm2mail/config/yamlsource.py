"""Read YAML into plain values while remembering each key path's line, so errors can name both."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

_SCALARS = yaml.constructor.SafeConstructor()
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


MAX_NODES = 1_000_000


class _TooLarge(Exception):
    """The document expands (through aliases, or recursively) beyond MAX_NODES values."""


@dataclass
class Source:
    """Parsed YAML plus ``lines[path] = line`` for every node, and the problems found so far."""

    file: Path
    data: Any
    lines: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    nodes: int = 0  # values converted so far: aliases can make a small file expand without end

    def line(self, path: str) -> int:
        # Fall back to the nearest ancestor that has a line (a missing key is reported at its parent).
        while path and path not in self.lines:
            path = path.rsplit(".", 1)[0] if "." in path else ""
        return self.lines.get(path, 1)

    def error(self, path: str, message: str) -> None:
        where = f"{self.file.name}:{self.line(path)}"
        self.problems.append(f"{where}: {path}: {message}" if path else f"{where}: {message}")


def _convert(node: yaml.Node, path: str, source: Source) -> Any:
    lines = source.lines
    lines.setdefault(path, node.start_mark.line + 1)
    source.nodes += 1
    if source.nodes > MAX_NODES:
        raise _TooLarge(node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            child = f"{path}.{key}" if path else key
            if key in result:
                # PyYAML keeps the last of two equal keys: a mailbox given twice would vanish unseen.
                first = lines[child]
                lines[child] = key_node.start_mark.line + 1
                source.error(child, f"given twice (first at line {first}); keys must be unique")
                continue
            lines[child] = key_node.start_mark.line + 1
            result[key] = _convert(value_node, child, source)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, f"{path}[{i}]", source) for i, item in enumerate(node.value)]
    # Scalars: let PyYAML's SafeConstructor resolve ints, bools, nulls the usual way. An unknown tag
    # (``!secret x``) or a value its tag cannot hold (``!!int ten``) is a problem at this key.
    try:
        return _SCALARS.construct_object(node, deep=True)
    except yaml.MarkedYAMLError as exc:
        lines[path] = (exc.problem_mark or node.start_mark).line + 1
        source.error(path, f"{exc.problem or exc}")
    except (ValueError, TypeError) as exc:
        lines[path] = node.start_mark.line + 1
        source.error(path, f"{node.value!r} cannot be read as {node.tag}: {exc}")
    return None


def read(file: Path) -> Source:
    """Parse ``file``; syntax errors become one problem with the YAML's own line."""
    raw = file.read_bytes()
    source = Source(file=file, data=None)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        source.problems.append(
            f"{file.name}:{line}: not valid UTF-8 (byte {raw[exc.start]:#04x}); save as UTF-8"
        )
        return source
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 1
        source.problems.append(f"{file.name}:{line}: YAML syntax error: {exc.problem}")
        return source
    except yaml.YAMLError as exc:  # ReaderError: a control character YAML does not allow
        line = text.count("\n", 0, getattr(exc, "position", 0)) + 1
        source.problems.append(f"{file.name}:{line}: YAML syntax error: {exc}")
        return source
    try:
        source.data = {} if root is None else _convert(root, "", source)
    except (_TooLarge, RecursionError) as exc:
        line = exc.args[0] if isinstance(exc, _TooLarge) else 1
        source.problems.append(f"{file.name}:{line}: aliases expand without end (recursive or too many)")
        source.data = None
    return source


def resolve_secret(source: Source, path: str, value: Any) -> Any:
    """Expand ``${VAR}`` references from the environment; a missing variable is an error."""
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            source.error(path, f"environment variable {name} is not set")
            return ""
        return os.environ[name]

    return _ENV_REF.sub(substitute, value)


def read_secret_file(source: Source, path: str, file_name: Any) -> str | None:
    """``<key>_file: /path`` reads a secret from a file (trailing newline stripped)."""
    if not isinstance(file_name, str):
        source.error(path, "must be a file path")
        return None
    secret_path = Path(file_name)
    if not secret_path.is_absolute():
        secret_path = source.file.parent / secret_path
    try:
        return secret_path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        source.error(path, f"cannot read secret file {secret_path}: {exc.strerror}")
        return None

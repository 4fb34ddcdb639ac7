"""Reading configuration files: YAML or JSON, with line numbers kept for errors."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from langchain_runtime.config._errors import ConfigFileError, ConfigIssue, Loc, format_loc

__all__ = ["Document", "read_document"]

_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class Document:
    """A parsed configuration document.

    Attributes:
        data: The parsed content.
        source: The file name as given, used in every error message.
        nodes: The YAML node tree, to find the line of a field (None for JSON).
    """

    data: Any
    source: str
    nodes: Node | None = None

    def line_of(self, loc: Loc) -> int | None:
        """1-based line of the deepest part of ``loc`` present in the file, if known."""
        node = self.nodes
        if node is None:
            return None
        line = node.start_mark.line + 1
        for part in loc:
            if isinstance(node, MappingNode):
                for key, value in node.value:
                    if isinstance(key, ScalarNode) and key.value == str(part):
                        line, node = key.start_mark.line + 1, value
                        break
                else:
                    return line
            elif isinstance(node, SequenceNode) and isinstance(part, int):
                if not 0 <= part < len(node.value):
                    return line
                node = node.value[part]
                line = node.start_mark.line + 1
            else:
                return line
        return line


def read_document(path: str | os.PathLike[str]) -> Document:
    """Read and parse a ``.json`` file as JSON, anything else as YAML.

    Raises:
        ConfigFileError: The file cannot be read, is not valid YAML/JSON (the message
            gives the line), or repeats a key.
    """
    source = os.fspath(path)
    try:
        text = Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigFileError(source, [ConfigIssue("", f"cannot read the file: {reason}")]) from exc
    if source.lower().endswith(".json"):
        return Document(_parse_json(text, source), source)
    data, nodes = _parse_yaml(text, source)
    return Document(data, source, nodes)


def _parse_json(text: str, source: str) -> Any:
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, value in items:
            if key in seen:
                duplicates.append(key)
            seen[key] = value
        return seen

    try:
        data = json.loads(text, object_pairs_hook=pairs)
    except json.JSONDecodeError as exc:
        issue = ConfigIssue("", f"invalid JSON at column {exc.colno}: {exc.msg}", exc.lineno)
        raise ConfigFileError(source, [issue]) from exc
    if duplicates:
        raise ConfigFileError(
            source,
            [
                ConfigIssue("", f"duplicate key {key!r}; each key may appear once in a mapping")
                for key in dict.fromkeys(duplicates)
            ],
        )
    return data


def _parse_yaml(text: str, source: str) -> tuple[Any, Node | None]:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        # Before construction: merge keys (<<) are flattened into the nodes by it.
        duplicates = list(_duplicate_keys(node, (), set()))
        if duplicates:
            raise ConfigFileError(source, duplicates)
        return loader.construct_document(node), node
    except yaml.MarkedYAMLError as exc:
        raise ConfigFileError(source, [_yaml_issue(exc)]) from exc
    except yaml.YAMLError as exc:
        raise ConfigFileError(source, [ConfigIssue("", f"invalid YAML: {exc}")]) from exc
    finally:
        loader.dispose()


def _yaml_issue(exc: yaml.MarkedYAMLError) -> ConfigIssue:
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or exc.context or "cannot parse"
    if mark is None:
        return ConfigIssue("", f"invalid YAML: {problem}")
    context = ""
    if exc.context and exc.context_mark is not None and exc.context != problem:
        context = f" ({exc.context} at line {exc.context_mark.line + 1})"
    return ConfigIssue(
        "", f"invalid YAML at column {mark.column + 1}: {problem}{context}", mark.line + 1
    )


def _duplicate_keys(node: Node, loc: Loc, seen_nodes: set[int]) -> list[ConfigIssue]:
    if id(node) in seen_nodes:
        return []
    seen_nodes.add(id(node))
    issues: list[ConfigIssue] = []
    if isinstance(node, MappingNode):
        first_line: dict[str, int] = {}
        for key, value in node.value:
            if not isinstance(key, ScalarNode) or key.tag == _MERGE_TAG:
                continue
            line = key.start_mark.line + 1
            if key.value in first_line:
                issues.append(
                    ConfigIssue(
                        format_loc((*loc, key.value)),
                        f"duplicate key {key.value!r} (first given at line "
                        f"{first_line[key.value]}); each key may appear once in a mapping",
                        line,
                    )
                )
            else:
                first_line[key.value] = line
            issues += _duplicate_keys(value, (*loc, key.value), seen_nodes)
    elif isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            issues += _duplicate_keys(item, (*loc, index), seen_nodes)
    return issues

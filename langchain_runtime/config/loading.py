"""``load_config`` and ``load_workflow``: from a file or a mapping to a runnable workflow."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from langchain_runtime.config._errors import ConfigFileError, ConfigIssue, issues_from_validation
from langchain_runtime.config._loader import Document, read_document
from langchain_runtime.config.runtime import MAPPING_SOURCE, PolicyOverride, RuntimeConfig
from langchain_runtime.config.schema import ConfigSpec, WorkflowFileSpec
from langchain_runtime.orchestration import Orchestrator

__all__ = ["load_config", "load_workflow"]


def load_config(
    path_or_dict: str | os.PathLike[str] | Mapping[str, Any], *, source: str | None = None
) -> RuntimeConfig:
    """Load and validate a configuration from a YAML/JSON file or a mapping.

    The document holds ``models``, ``prices``, ``policies`` and ``workflows``; or a
    single workflow at top level (``tasks:`` with optional ``name``, ``models``,
    ``policy``...), whose name is then ``name`` or the file's stem.

    Args:
        path_or_dict: A ``.yaml``/``.yml``/``.json`` file (other suffixes are read as
            YAML), or the document itself.
        source: Label for a mapping in error messages (default ``<config>``).

    Raises:
        ConfigFileError: (a ``ConfigurationError``) the file cannot be read or parsed,
            or the document is invalid. The message gives the file, line, field path
            and what was expected, one line per problem.
    """
    if isinstance(path_or_dict, Mapping):
        document = Document(dict(path_or_dict), source or MAPPING_SOURCE)
        default_name = "workflow"
    else:
        document = read_document(path_or_dict)
        default_name = Path(document.source).stem or "workflow"
    data = document.data
    if not isinstance(data, Mapping):
        got = "an empty document" if data is None else f"a {type(data).__name__}"
        raise ConfigFileError(
            document.source,
            [
                ConfigIssue(
                    "",
                    "expected a mapping with models, prices, policies and workflows "
                    f"(or a single workflow's tasks) at the top level; got {got}",
                )
            ],
        )
    single = "tasks" in data
    if single and "workflows" in data:
        raise ConfigFileError(
            document.source,
            [
                ConfigIssue(
                    "workflows",
                    "a file holds either `workflows:` or a single "
                    "workflow's `tasks:` at the top level, not both",
                    document.line_of(("workflows",)),
                )
            ],
        )
    root: type[ConfigSpec] | type[WorkflowFileSpec] = WorkflowFileSpec if single else ConfigSpec
    try:
        parsed = root.model_validate(data)
    except ValidationError as exc:
        issues = issues_from_validation(exc, root, lines=document.line_of)
        raise ConfigFileError(document.source, issues) from exc
    name: str | None = None
    if isinstance(parsed, WorkflowFileSpec):
        name, spec = parsed.to_config(default_name)
    else:
        spec = parsed
    return RuntimeConfig._create(spec, document.source, document.line_of, name)


def load_workflow(
    path: str | os.PathLike[str] | Mapping[str, Any],
    name: str | None = None,
    *,
    policy_override: PolicyOverride = None,
) -> Orchestrator:
    """Load a file and build one of its workflows as an :class:`Orchestrator`.

    Args:
        path: A single-workflow file, or a file with several ``workflows``.
        name: The workflow to build; required when the file has several.
        policy_override: Run under this policy instead of the workflow's.

    Example:
        >>> orch = load_workflow("examples/research.yaml")  # doctest: +SKIP
        >>> orch.invoke({"topic": "owls"}).state.value  # doctest: +SKIP
        'completed'
    """
    return load_config(path).build_workflow(name, policy_override=policy_override)

"""``RuntimeConfig``: a loaded configuration, and the workflows it builds."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from langchain_core.language_models import BaseChatModel
from pydantic import ValidationError

from langchain_runtime.config._checks import check_config
from langchain_runtime.config._errors import (
    ConfigFileError,
    ConfigIssue,
    Loc,
    format_loc,
    issues_from_validation,
)
from langchain_runtime.config._providers import build_model
from langchain_runtime.config.schema import (
    SIMULATED,
    ApiKeySpec,
    ConfigSpec,
    ModelSpec,
    PolicySpec,
    PriceSpec,
    WorkflowSpec,
)
from langchain_runtime.domain import RunPolicy
from langchain_runtime.errors import ConfigurationError, GraphValidationError, InvalidInputError
from langchain_runtime.orchestration import Orchestrator, Task

if TYPE_CHECKING:
    from langchain_runtime.cost.catalog import ModelCatalog
    from langchain_runtime.cost.ledger import BudgetLedger

__all__ = ["MAPPING_SOURCE", "PolicyOverride", "RuntimeConfig"]

#: Label of a configuration given as a mapping rather than a file.
MAPPING_SOURCE = "<config>"

PolicyOverride = RunPolicy | str | Mapping[str, Any] | None


class RuntimeConfig:
    """A validated configuration: model registry, prices, policies and workflows.

    Load one with :func:`~langchain_runtime.config.load_config`. Models are built
    lazily, when a workflow that uses them is built (or :meth:`model` is called), and
    then reused.

    Args:
        spec: The validated document.
        source: Where it came from (a file name), used in error messages.

    Raises:
        ConfigFileError: A reference does not resolve (an unknown model, policy or
            task id) or a model entry holds a secret.

    Example:
        >>> from langchain_runtime.config import load_config
        >>> config = load_config({
        ...     "models": {"fast": {"provider": "simulated", "response_tokens": 8}},
        ...     "workflows": {"hello": {"tasks": [
        ...         {"id": "greet", "prompt": "Greet {name}", "model": "fast"},
        ...     ]}},
        ... })
        >>> orch = config.build_workflow("hello")
        >>> orch.invoke({"name": "Ada"}).state.value
        'completed'
    """

    def __init__(self, spec: ConfigSpec, *, source: str = MAPPING_SOURCE) -> None:
        self._setup(spec, source, None, None)

    @classmethod
    def _create(
        cls,
        spec: ConfigSpec,
        source: str,
        lines: Callable[[Loc], int | None] | None,
        single: str | None,
    ) -> RuntimeConfig:
        self = cls.__new__(cls)
        self._setup(spec, source, lines, single)
        return self

    def _setup(
        self,
        spec: ConfigSpec,
        source: str,
        lines: Callable[[Loc], int | None] | None,
        single: str | None,
    ) -> None:
        self._spec = spec
        self._source = source
        self._lines = lines
        self._single = single
        self._lock = threading.RLock()
        self._models: dict[str, BaseChatModel] = {}
        self._catalog: ModelCatalog | None = None
        self._ledger: BudgetLedger | None = None
        problems = check_config(spec)
        if problems:
            raise ConfigFileError(source, [self._issue(loc, msg) for loc, msg in problems])
        if spec.prices:
            self.catalog()  # price entries are checked against the bundled table now

    def _issue(self, loc: Loc, message: str) -> ConfigIssue:
        # A single-workflow file has no `workflows.<name>` level: report paths as written.
        if self._single is not None and loc[:2] == ("workflows", self._single):
            loc = loc[2:]
        line = self._lines(loc) if self._lines is not None else None
        return ConfigIssue(format_loc(loc), message, line)

    # -- the document -------------------------------------------------------------

    @property
    def spec(self) -> ConfigSpec:
        """The validated document."""
        return self._spec

    @property
    def source(self) -> str:
        """The file name, or ``<config>`` for a mapping."""
        return self._source

    @property
    def models(self) -> Mapping[str, ModelSpec]:
        """The model registry: id -> entry."""
        return self._spec.models

    @property
    def prices(self) -> Mapping[str, PriceSpec]:
        """Price overrides: catalog model name -> prices per 1M tokens."""
        return self._spec.prices

    @property
    def policies(self) -> Mapping[str, PolicySpec]:
        """Named policies."""
        return self._spec.policies

    @property
    def workflows(self) -> Mapping[str, WorkflowSpec]:
        """Workflows by name."""
        return self._spec.workflows

    def __repr__(self) -> str:
        return (
            f"RuntimeConfig(source={self._source!r}, models={sorted(self.models)}, "
            f"workflows={sorted(self.workflows)})"
        )

    # -- models, policies, prices --------------------------------------------------

    def model(self, model_id: str) -> BaseChatModel:
        """The chat model registered as ``model_id``, built on first use.

        ``simulated`` names an offline :class:`~langchain_runtime.testing.SimulatedChatModel`
        even when the registry does not define it.

        Raises:
            ConfigurationError: ``model_id`` is unknown, or the model cannot be built
                (a missing provider package, a parameter the provider refuses).
        """
        with self._lock:
            if model_id in self._models:
                return self._models[model_id]
            spec = self.models.get(model_id)
            if spec is None:
                if model_id != SIMULATED:
                    known = ", ".join(sorted({*self.models, SIMULATED}))
                    raise ConfigurationError(
                        f"{self._source}: unknown model id {model_id!r}; expected one of: {known}"
                    )
                spec = ModelSpec(provider=SIMULATED)
            try:
                model = build_model(model_id, spec)
            except ConfigurationError as exc:
                loc: Loc = ("models", model_id) if model_id in self.models else ()
                issue = self._issue(loc, str(exc))
                raise ConfigurationError(issue.render(self._source)) from exc
            self._models[model_id] = model
            return model

    def policy(self, name: str = "default") -> RunPolicy:
        """The named policy; ``default`` is ``RunPolicy()`` unless the file defines it.

        Raises:
            ConfigurationError: No policy has that name.
        """
        if name in self.policies:
            return self.policies[name].to_policy()
        if name == "default":
            return RunPolicy()
        names = ", ".join(sorted(self.policies)) or "none are defined"
        raise ConfigurationError(f"{self._source}: unknown policy {name!r}; expected: {names}")

    def workflow_policy(self, name: str | None = None) -> RunPolicy:
        """The policy a workflow runs under: its own, named or inline, else ``default``."""
        ref = self.workflow(name).policy
        if ref is None:
            return self.policy()
        return self.policy(ref) if isinstance(ref, str) else ref.to_policy()

    def apply_prices(self, catalog: ModelCatalog) -> ModelCatalog:
        """Apply the ``prices`` overrides to ``catalog`` (in place) and return it.

        Raises:
            ConfigFileError: An entry for a model the catalog does not know lacks
                ``input`` or ``output``.
        """
        for name, price in self.prices.items():
            try:
                catalog.add(name, **price.catalog_fields())
            except ConfigurationError as exc:
                issue = self._issue(("prices", name), str(exc))
                raise ConfigFileError(self._source, [issue]) from exc
        return catalog

    def catalog(self) -> ModelCatalog:
        """The bundled price catalog with this file's ``prices`` applied (built once)."""
        with self._lock:
            if self._catalog is None:
                from langchain_runtime.cost.catalog import ModelCatalog

                self._catalog = self.apply_prices(ModelCatalog.default())
            return self._catalog

    @property
    def api_keys(self) -> tuple[ApiKeySpec, ...]:
        """The sidecar's API keys (``server: {api_keys: [...]}``), hashed; may be empty."""
        server = self._spec.server
        return server.api_keys if server is not None else ()

    # -- workflows -----------------------------------------------------------------

    def ledger(self, **options: Any) -> BudgetLedger | None:
        """The file's shared budget ledger (``ledger:``), opened on first use; or None.

        ``options`` go to the ledger's constructor the first time (e.g. ``timeout``).
        A relative SQLite path is relative to the working directory.
        """
        url = self._spec.ledger
        if url is None:
            return None
        with self._lock:
            if self._ledger is None:
                from langchain_runtime.cost.ledger import open_ledger

                self._ledger = open_ledger(url, **options)
            return self._ledger

    def workflow_scopes(self, name: str | None = None) -> tuple[str, ...]:
        """The shared-budget scopes a workflow's model calls reserve in (``scopes:``)."""
        return self._resolve(name)[1].scopes

    def close(self) -> None:
        """Close the ledger this configuration opened, if any."""
        with self._lock:
            ledger, self._ledger = self._ledger, None
        if ledger is not None:
            ledger.close()

    def workflow(self, name: str | None = None) -> WorkflowSpec:
        """The workflow called ``name``; ``None`` means the only one.

        Raises:
            ConfigurationError: No workflow has that name, or ``name`` is None and
                there is not exactly one workflow.
        """
        return self._resolve(name)[1]

    def _resolve(self, name: str | None) -> tuple[str, WorkflowSpec]:
        names = sorted(self.workflows)
        if name is None:
            if len(names) == 1:
                return names[0], self.workflows[names[0]]
            if not names:
                raise ConfigurationError(f"{self._source}: defines no workflows")
            raise ConfigurationError(
                f"{self._source}: defines several workflows ({', '.join(names)}); "
                "name the one to run"
            )
        if name not in self.workflows:
            raise ConfigurationError(
                f"{self._source}: no workflow {name!r}; expected one of: {', '.join(names)}"
            )
        return name, self.workflows[name]

    def build_workflow(
        self, name: str | None = None, *, policy_override: PolicyOverride = None
    ) -> Orchestrator:
        """Build the workflow ``name`` as an :class:`Orchestrator`, building its models.

        Args:
            name: The workflow; may be omitted when the configuration has only one.
            policy_override: Run under this policy instead of the workflow's: a
                ``RunPolicy``, a policy name, or a mapping of policy fields.

        The workflow's ``scopes:`` are added to the policy's, and the orchestrator
        reserves in them in the file's ``ledger:`` (opened once per configuration).

        Raises:
            ConfigurationError: Unknown workflow or policy, a model cannot be built,
                or scopes without a ``ledger:``.
            GraphValidationError: The tasks do not form a valid graph (a cycle, a
                prompt variable nothing provides); the message starts with the file.
        """
        resolved, workflow = self._resolve(name)
        if policy_override is None:
            policy = self.workflow_policy(resolved)
        else:
            policy = self._override(policy_override)
        policy = self._scoped(resolved, workflow, policy)
        ledger = self.ledger() if policy.scopes else None
        return self._orchestrator(
            resolved, workflow, policy, self.model, self.catalog(), ledger=ledger
        )

    def _scoped(self, resolved: str, workflow: WorkflowSpec, policy: RunPolicy) -> RunPolicy:
        """``policy`` with the workflow's ``scopes:`` added to its own.

        Raises:
            ConfigFileError: There are scopes and the file names no ``ledger:``.
        """
        if workflow.scopes:  # the workflow's shared budgets, on top of the policy's own
            scopes = tuple(dict.fromkeys((*policy.scopes, *workflow.scopes)))
            policy = policy.model_copy(update={"scopes": scopes})
        if policy.scopes and self._spec.ledger is None:
            where = "scopes" if workflow.scopes else "policy"  # where the scopes are written
            issue = self._issue(
                ("workflows", resolved, where),
                f"the scopes {list(policy.scopes)} need a shared budget ledger: set "
                "`ledger: sqlite:///budgets.db` (or postgresql://...) at the top level",
            )
            raise ConfigFileError(self._source, [issue])
        return policy

    def check(self, name: str | None = None) -> None:
        """Validate one workflow's graph (or every workflow's) offline.

        No model is built and no provider package is needed: each task gets a
        stand-in simulated model, so this is what a ``validate`` command runs.

        Raises:
            GraphValidationError: A graph is invalid; the message names the file.
        """
        from langchain_runtime.testing import SimulatedChatModel

        stand_in = SimulatedChatModel()
        if name is not None or len(self.workflows) == 1:
            names = [self._resolve(name)[0]]
        else:
            names = sorted(self.workflows)
        for each in names:
            workflow = self.workflows[each]
            policy = self._scoped(each, workflow, self.workflow_policy(each))
            # the ledger is not opened to check a file: the graph is checked without scopes
            policy = policy.model_copy(update={"scopes": ()})
            self._orchestrator(each, workflow, policy, lambda _: stand_in, None)

    def _override(self, override: PolicyOverride) -> RunPolicy:
        if isinstance(override, RunPolicy):
            return override
        if isinstance(override, str):
            return self.policy(override)
        try:
            return PolicySpec.model_validate(dict(override or {})).to_policy()
        except ValidationError as exc:
            issues = issues_from_validation(exc, PolicySpec, prefix=("policy_override",))
            raise ConfigFileError(self._source, issues) from exc

    def _orchestrator(
        self,
        name: str,
        workflow: WorkflowSpec,
        policy: RunPolicy,
        model: Callable[[str], BaseChatModel],
        catalog: ModelCatalog | None,
        *,
        ledger: BudgetLedger | None = None,
    ) -> Orchestrator:
        try:
            tasks = [
                Task(
                    t.id,
                    prompt=t.prompt,
                    # check_config guarantees the task or its workflow names a model.
                    model=model(t.model or workflow.model or SIMULATED),
                    deps=t.deps,
                    inputs=t.inputs,
                    context=t.context.to_policy() if t.context is not None else None,
                    timeout=t.timeout,
                    max_retries=t.max_retries,
                    metadata=t.metadata,
                    memory_key=t.memory_key,
                )
                for t in workflow.tasks
            ]
            return Orchestrator(
                tasks,
                policy=policy,
                catalog=catalog,
                output=workflow.output,
                input_keys=workflow.input_keys,
                name=name,
                ledger=ledger,
            )
        except GraphValidationError as exc:
            where = self._task_issue(name, workflow, exc.task_ids, str(exc))
            raise GraphValidationError(
                where.render(self._source), task_ids=exc.task_ids, code=exc.code
            ) from exc
        except InvalidInputError as exc:
            where = self._task_issue(name, workflow, (), str(exc))
            raise InvalidInputError(where.render(self._source)) from exc
        except ConfigurationError:
            raise  # already names what is wrong (a missing package, a price, a key)
        except (ValueError, TypeError) as exc:  # e.g. a prompt template LangChain rejects
            where = self._task_issue(name, workflow, (), f"invalid task: {exc}")
            raise ConfigurationError(where.render(self._source)) from exc

    def _task_issue(
        self, name: str, workflow: WorkflowSpec, task_ids: tuple[str, ...], message: str
    ) -> ConfigIssue:
        """An issue at the first task named in ``task_ids``, else at the workflow."""
        loc: Loc = ("workflows", name)
        ids = [t.id for t in workflow.tasks]
        if task_ids and task_ids[0] in ids:
            loc = (*loc, "tasks", ids.index(task_ids[0]))
        issue = self._issue(loc, message)
        # A single-workflow file's root has no path: say which workflow it is instead.
        return issue if issue.path else ConfigIssue(f"workflow {name!r}", message, issue.line)

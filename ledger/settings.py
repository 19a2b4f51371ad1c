"""Every setting of the service, read from the environment once.

``Settings.from_env()`` is called by the edges (the app factory, the Celery app, the CLI,
`ledger up`) and the object is handed down; no other module reads ``os.environ``. Importing
this module reads nothing and starts nothing.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

DEFAULT_QUEUE_PREFIX = "ledger.post"
DEFAULT_PARTITIONS = 16
DEFAULT_BATCH = 1000
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_MAX_JSON_DEPTH = 64
DEFAULT_TOKEN_TTL_SECONDS = 3600
DEFAULT_STRIPE_LINK_ID = "stripe"
DEFAULT_WORKSPACE_NAME = "ledger"
# Connections the API processes leave to everyone else on the server: PostgreSQL's
# superuser reserve (3), `ledger up`'s worker (2 children of up to 4, its main process)
# and beat, migrations, an operator's psql.
DEFAULT_DB_RESERVED_CONNECTIONS = 20


def cpu_count() -> int:
    return os.cpu_count() or 1
DEFAULT_GROUP_COMMIT_MAX_BATCH = 500


class SettingsError(ValueError):
    """A setting the environment gives that cannot be used; the message names the variable."""


class Secret:
    """A credential that never shows itself: ``reveal()`` is the only way to read it."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Settings:
    # Servers. None: the embedded ones under data_dir (see ledger.embedded). Left out of
    # repr: a URL may carry a password.
    database_url: str | None = field(default=None, repr=False)
    redis_url: str | None = field(default=None, repr=False)
    data_dir: Path = Path(".ledger")
    # API
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    # How deep a request's JSON may nest: the standard library's decoder recurses once
    # per level, and 100,000 nested brackets fit in a small body.
    max_json_depth: int = DEFAULT_MAX_JSON_DEPTH
    token_ttl_seconds: int = DEFAULT_TOKEN_TTL_SECONDS
    # Run the migrations at API startup. None: only for the embedded database, which nobody
    # else would migrate; a shared server is migrated by `ledger migrate`, once.
    migrate_on_start: bool | None = None
    # Requests that could stall the API (README, "Limits"): GraphQL depth, cost and
    # mutations a request, refused before running; the wall clock of one request; how many
    # GraphQL requests run at once (the others wait their turn, within the timeout).
    graphql_max_depth: int = 15
    graphql_max_cost: int = 50_000
    graphql_max_mutations: int = 25
    # Posts spend most of their turn waiting for their group-commit batch, so the gate is
    # wider than the cores: bench/api.py measured 32 at +12% (32 clients) and +33% (128)
    # deposits/s over 8; the cost limit still bounds what each turn may do.
    graphql_concurrency: int = 32
    request_timeout_seconds: float = 30.0
    # PostgreSQL statement_timeout of the API's sessions (the workers' have none).
    statement_timeout_seconds: float = 15.0
    # API processes (`ledger up`, compose, Procfile): one per core. Each sizes its
    # connection pool so that all of them, plus the reserve, fit under the server's
    # max_connections (ledger.db.pool_for).
    api_processes: int = field(default_factory=cpu_count)
    db_reserved_connections: int = DEFAULT_DB_RESERVED_CONNECTIONS
    # How long an API process trusts its last look at a token's client (active, scope):
    # a revocation is honoured within this time, without a database read per request.
    client_cache_seconds: float = 1.0
    # How long `ledger up` gives its processes to stop (the API draining its requests, a
    # worker finishing its batch); what still runs then is killed, so that it always ends.
    stop_timeout_seconds: float = 30.0
    # Group commit of synchronous posts (ledger.posting.group_commit): at most this many
    # entries a shared transaction, and how long a batch's leader waits for company first
    # (0: never; the posts that arrive while a batch is in flight form the next one).
    group_commit_max_batch: int = DEFAULT_GROUP_COMMIT_MAX_BATCH
    group_commit_window_ms: int = 0
    # /oauth2/token: failed attempts allowed per client id and per source address within
    # the window, then 429; how many secret hashes are checked at once.
    token_max_failures: int = 10
    token_max_failures_per_address: int = 100
    token_failure_window_seconds: float = 300.0
    hash_concurrency: int = 2
    # Async posting. Change `partitions` only while no job is pending: a job keeps the
    # partition it was accepted into.
    partitions: int = DEFAULT_PARTITIONS
    queue_prefix: str = DEFAULT_QUEUE_PREFIX
    batch: int = DEFAULT_BATCH
    relay_after_seconds: float = 30.0
    relay_every_seconds: float = 10.0
    rollup_every_seconds: float = 2.0
    # How often the beat expires holds past their expiresAt (ledger/holds/).
    hold_expiry_every_seconds: float = 1.0
    job_retention_days: float = 7.0
    worker_max_memory_kb: int = 200_000
    # The partitions a worker consumes (None: every one) and whether it also consumes the
    # maintenance queue; each partition should have exactly one worker (README, "Deploying").
    worker_partitions: tuple[int, ...] | None = None
    worker_maintenance: bool = True
    # Whether that worker also consumes the webhooks queue (deliveries, on their own queue
    # so a hanging receiver never waits in front of relay, rollup or expiry).
    worker_webhooks: bool = True
    # Stripe. The environment's key and secret win over the ones stored by
    # `ledger stripe configure`.
    stripe_link_id: str = DEFAULT_STRIPE_LINK_ID
    stripe_api_key: Secret | None = None
    stripe_webhook_secret: Secret | None = None
    stripe_api_base: str | None = None
    stripe_backfill_every_seconds: float = 900.0
    stripe_inbox_every_seconds: float = 60.0
    # Secrets at rest (ledger.secrets): the key that encrypts the stored Stripe credentials
    # and token signing key, and the keys they may still be encrypted with (rotation).
    secret_key: Secret | None = None
    old_secret_keys: tuple[Secret, ...] = ()
    # CLI: where `ledger login` keeps its API connection. None: the platform's app folder.
    config_path: Path | None = None
    # The deployment's name, as GraphQL `workspace { name }` and the SDK's get_workspace()
    # show it (seed 001): tells a caller which deployment its credentials reach.
    workspace_name: str = DEFAULT_WORKSPACE_NAME
    # Observability (README, "Observability"). The folder prometheus_client's multiprocess
    # mode keeps its counters in, under the variable that library reads itself: set, /metrics
    # adds up every process using it (uvicorn --workers, a worker's pool children).
    metrics_dir: Path | None = None
    # The port a Celery worker serves its own /metrics on; None: it serves none.
    worker_metrics_port: int | None = None
    # Log lines: "text" (for people, `ledger up`) or "json" (one object a line).
    log_format: str = "text"
    # OpenTelemetry tracing: "off", "otlp" (exporter configured by the standard
    # OTEL_EXPORTER_OTLP_* variables) or "console".
    otel: str = "off"
    # Where `ledger up` records what it runs (data folder, URLs, pids) for `ledger status`,
    # `ledger down` and the admin commands started in any folder. None: the home folder's
    # ~/.local/state/ledger (XDG_STATE_HOME/ledger when that is set).
    state_dir: Path | None = None
    # Events and outbound webhooks (ledger/events/). ``events``: whether posting raises
    # entry.posted (off only to measure what events cost: bench/post.py).
    events: bool = True
    # A synced tx still unreconciled this long after it was synced raises
    # tx.unreconciled_for, once; beat looks this often.
    unreconciled_alert_seconds: float = 86400.0
    unreconciled_every_seconds: float = 60.0
    # How often beat looks for webhook endpoints with events to deliver; the first retry
    # waits this many seconds, each next one four times as long (capped at 12 hours), and
    # an endpoint is disabled after this many failures in a row (12: about three days).
    webhook_every_seconds: float = 1.0
    webhook_backoff_seconds: float = 5.0
    webhook_disable_after: int = 12
    # Whether webhook URLs may name private, loopback or link-local addresses (tests,
    # a receiver on the same machine). False in production: no SSRF into the network.
    webhook_allow_private: bool = False
    # The whole environment, for what must see variables by name: `${VAR}` substitution
    # in schema files, and the environment handed to child processes.
    environ: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        env = dict(os.environ if environ is None else environ)
        read = _Reader(env)
        partitions = read.integer("LEDGER_PARTITIONS", DEFAULT_PARTITIONS, 1)
        settings = cls(
            database_url=read.text("DATABASE_URL"),
            redis_url=read.text("REDIS_URL"),
            data_dir=Path(read.text("LEDGER_DATA_DIR") or ".ledger"),
            max_body_bytes=read.integer("LEDGER_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, 1),
            max_json_depth=read.integer("LEDGER_MAX_JSON_DEPTH", DEFAULT_MAX_JSON_DEPTH, 1),
            token_ttl_seconds=read.integer("LEDGER_TOKEN_TTL_SECONDS",
                                           DEFAULT_TOKEN_TTL_SECONDS, 1),
            migrate_on_start=read.flag("LEDGER_MIGRATE_ON_START"),
            graphql_max_depth=read.integer("LEDGER_GRAPHQL_MAX_DEPTH", 15, 1),
            graphql_max_cost=read.integer("LEDGER_GRAPHQL_MAX_COST", 50_000, 1),
            graphql_max_mutations=read.integer("LEDGER_GRAPHQL_MAX_MUTATIONS", 25, 1),
            graphql_concurrency=read.integer("LEDGER_GRAPHQL_CONCURRENCY", 32, 1),
            request_timeout_seconds=read.number("LEDGER_REQUEST_TIMEOUT_SECONDS", 30.0),
            statement_timeout_seconds=read.number("LEDGER_STATEMENT_TIMEOUT_SECONDS", 15.0),
            api_processes=read.integer("LEDGER_API_PROCESSES", cpu_count(), 1),
            db_reserved_connections=read.integer("LEDGER_DB_RESERVED_CONNECTIONS",
                                                 DEFAULT_DB_RESERVED_CONNECTIONS, 0),
            client_cache_seconds=read.number("LEDGER_CLIENT_CACHE_SECONDS", 1.0),
            stop_timeout_seconds=read.number("LEDGER_STOP_TIMEOUT_SECONDS", 30.0),
            group_commit_max_batch=read.integer("LEDGER_GROUP_COMMIT_MAX_BATCH",
                                                DEFAULT_GROUP_COMMIT_MAX_BATCH, 1),
            group_commit_window_ms=read.integer("LEDGER_GROUP_COMMIT_WINDOW_MS", 0, 0),
            token_max_failures=read.integer("LEDGER_TOKEN_MAX_FAILURES", 10, 1),
            token_max_failures_per_address=read.integer(
                "LEDGER_TOKEN_MAX_FAILURES_PER_ADDRESS", 100, 1),
            token_failure_window_seconds=read.number("LEDGER_TOKEN_FAILURE_WINDOW_SECONDS",
                                                     300.0),
            hash_concurrency=read.integer("LEDGER_HASH_CONCURRENCY", 2, 1),
            partitions=partitions,
            queue_prefix=read.text("LEDGER_QUEUE_PREFIX") or DEFAULT_QUEUE_PREFIX,
            batch=read.integer("LEDGER_BATCH", DEFAULT_BATCH, 1),
            relay_after_seconds=read.number("LEDGER_RELAY_AFTER_SECONDS", 30.0),
            relay_every_seconds=read.number("LEDGER_RELAY_EVERY_SECONDS", 10.0),
            rollup_every_seconds=read.number("LEDGER_ROLLUP_EVERY_SECONDS", 2.0),
            hold_expiry_every_seconds=read.number("LEDGER_HOLD_EXPIRY_EVERY_SECONDS", 1.0),
            job_retention_days=read.number("LEDGER_JOB_RETENTION_DAYS", 7.0),
            worker_max_memory_kb=read.integer("LEDGER_WORKER_MAX_MEMORY_KB", 200_000, 1),
            worker_partitions=read.partitions("LEDGER_WORKER_PARTITIONS", partitions),
            worker_maintenance=read.flag("LEDGER_WORKER_MAINTENANCE") is not False,
            worker_webhooks=read.flag("LEDGER_WORKER_WEBHOOKS") is not False,
            stripe_link_id=read.text("STRIPE_LINK_ID") or DEFAULT_STRIPE_LINK_ID,
            stripe_api_key=read.secret("STRIPE_API_KEY"),
            stripe_webhook_secret=read.secret("STRIPE_WEBHOOK_SECRET"),
            stripe_api_base=read.text("STRIPE_API_BASE"),
            stripe_backfill_every_seconds=read.number("LEDGER_STRIPE_BACKFILL_EVERY_SECONDS",
                                                      900.0),
            stripe_inbox_every_seconds=read.number("LEDGER_STRIPE_INBOX_EVERY_SECONDS", 60.0),
            secret_key=read.secret("LEDGER_SECRET_KEY"),
            old_secret_keys=tuple(Secret(k.strip()) for k in (
                read.text("LEDGER_OLD_SECRET_KEYS") or "").split(",") if k.strip()),
            config_path=Path(p) if (p := read.text("LEDGER_CONFIG")) else None,
            workspace_name=read.text("LEDGER_WORKSPACE_NAME") or DEFAULT_WORKSPACE_NAME,
            metrics_dir=Path(m) if (m := read.text("PROMETHEUS_MULTIPROC_DIR")) else None,
            worker_metrics_port=read.port("LEDGER_WORKER_METRICS_PORT"),
            log_format=read.choice("LEDGER_LOG_FORMAT", ("text", "json")),
            otel=read.choice("LEDGER_OTEL", ("off", "otlp", "console")),
            state_dir=_state_dir(read),
            events=read.flag("LEDGER_EVENTS") is not False,
            unreconciled_alert_seconds=read.number("LEDGER_UNRECONCILED_ALERT_SECONDS",
                                                   86400.0),
            unreconciled_every_seconds=read.number("LEDGER_UNRECONCILED_EVERY_SECONDS", 60.0),
            webhook_every_seconds=read.number("LEDGER_WEBHOOK_EVERY_SECONDS", 1.0),
            webhook_backoff_seconds=read.number("LEDGER_WEBHOOK_BACKOFF_SECONDS", 5.0),
            webhook_disable_after=read.integer("LEDGER_WEBHOOK_DISABLE_AFTER", 12, 1),
            webhook_allow_private=read.flag("LEDGER_WEBHOOK_ALLOW_PRIVATE") is True,
            environ=env,
        )
        return settings

    def with_servers(self, database_url: str, redis_url: str) -> "Settings":
        """The same settings on resolved servers (the embedded ones, once started)."""
        return replace(self, database_url=database_url, redis_url=redis_url)

    @property
    def maintenance_queue(self) -> str:
        return f"{self.queue_prefix}.maintenance"

    @property
    def webhook_queue(self) -> str:
        return f"{self.queue_prefix}.webhooks"

    def queue_name(self, partition: int) -> str:
        """The broker queue whose consumer posts ``partition``. The prefix lets two
        deployments (or test runs) share one Redis without taking each other's work."""
        return f"{self.queue_prefix}.{partition}"

    def partition_queues(self) -> list[str]:
        return [self.queue_name(p) for p in range(self.partitions)]

    def worker_queues(self) -> list[str]:
        """The queues a worker started with these settings consumes: its partitions'
        (``LEDGER_WORKER_PARTITIONS``, else all), then the maintenance queue unless
        ``LEDGER_WORKER_MAINTENANCE`` is false, with the webhooks queue unless
        ``LEDGER_WORKER_WEBHOOKS`` is false."""
        partitions = range(self.partitions) if self.worker_partitions is None \
            else self.worker_partitions
        queues = [self.queue_name(p) for p in partitions]
        if not self.worker_maintenance:
            return queues
        return queues + [self.maintenance_queue] + (
            [self.webhook_queue] if self.worker_webhooks else [])

    def child_environ(self, **overrides: str) -> dict[str, str]:
        """The environment of a child process (`ledger up`'s API, worker and beat): ours,
        with the resolved servers and ``overrides``."""
        env = dict(self.environ)
        if self.database_url:
            env["DATABASE_URL"] = self.database_url
        if self.redis_url:
            env["REDIS_URL"] = self.redis_url
        env["LEDGER_DATA_DIR"] = str(self.data_dir)
        env.update(overrides)
        return env


def _state_dir(read: "_Reader") -> Path | None:
    if own := read.text("LEDGER_STATE_DIR"):
        return Path(own)
    if xdg := read.text("XDG_STATE_HOME"):
        return Path(xdg) / "ledger"
    return None


class _Reader:
    def __init__(self, env: Mapping[str, str]):
        self.env = env

    def text(self, name: str) -> str | None:
        value = (self.env.get(name) or "").strip()
        return value or None

    def secret(self, name: str) -> Secret | None:
        value = self.text(name)
        return Secret(value) if value else None

    def integer(self, name: str, default: int, minimum: int | None = None) -> int:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = int(raw.strip())
        except ValueError:
            raise SettingsError(f"{name}={raw!r} is not a whole number") from None
        if minimum is not None and value < minimum:
            raise SettingsError(f"{name} must be at least {minimum} (got {value})")
        return value

    def number(self, name: str, default: float) -> float:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = float(raw.strip())
        except ValueError:
            raise SettingsError(f"{name}={raw!r} is not a number") from None
        if not value > 0 or value == float("inf"):
            raise SettingsError(f"{name} must be a positive number of seconds or days "
                                f"(got {raw!r})")
        return value

    def port(self, name: str) -> int | None:
        raw = self.text(name)
        if raw is None:
            return None
        value = self.integer(name, 0, 1)
        if value > 65535:
            raise SettingsError(f"{name} must be a TCP port, 1 to 65535 (got {value})")
        return value

    def choice(self, name: str, choices: tuple[str, ...]) -> str:
        """One of ``choices`` (the first is the default), case-insensitive."""
        raw = self.text(name)
        if raw is None:
            return choices[0]
        if raw.lower() not in choices:
            raise SettingsError(f"{name}={raw!r}: use one of {', '.join(choices)}")
        return raw.lower()
    def partitions(self, name: str, count: int) -> tuple[int, ...] | None:
        """A set of partitions written as numbers and ranges (``0-3,8,10-11``), each below
        ``count``; sorted, without repeats. None when the variable is unset."""
        raw = self.text(name)
        if raw is None:
            return None
        chosen: set[int] = set()
        for part in (p.strip() for p in raw.split(",")):
            first, dash, last = part.partition("-")
            try:
                low, high = int(first), int(last if dash else first)
            except ValueError:
                raise SettingsError(f"{name}={raw!r}: {part!r} is not a partition number "
                                    "or a range such as 0-3") from None
            if low > high:
                raise SettingsError(f"{name}={raw!r}: the range {part!r} is empty")
            if not 0 <= low <= high < count:
                raise SettingsError(f"{name}={raw!r}: {part!r} is not within the "
                                    f"{count} partitions 0-{count - 1} (LEDGER_PARTITIONS)")
            chosen.update(range(low, high + 1))
        return tuple(sorted(chosen))

    def flag(self, name: str) -> bool | None:
        raw = self.text(name)
        if raw is None:
            return None
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"{name}={raw!r}: use true or false")

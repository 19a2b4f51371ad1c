"""`ledger.settings`: every variable read once, into one frozen object; bad values refused
with the variable's name; secrets kept out of reprs and logs."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from ledger.settings import (DEFAULT_BATCH, DEFAULT_MAX_BODY_BYTES, DEFAULT_PARTITIONS,
                             DEFAULT_QUEUE_PREFIX, DEFAULT_STRIPE_LINK_ID,
                             DEFAULT_TOKEN_TTL_SECONDS, Secret, Settings, SettingsError)


def test_defaults_with_an_empty_environment(monkeypatch):
    # The process environment of the test run must not leak in when one is given.
    monkeypatch.setenv("LEDGER_PARTITIONS", "3")
    monkeypatch.setenv("DATABASE_URL", "postgresql://elsewhere/db")
    settings = Settings.from_env({})

    assert settings == Settings()
    assert settings.database_url is None and settings.redis_url is None
    assert settings.data_dir == Path(".ledger")
    assert settings.max_body_bytes == DEFAULT_MAX_BODY_BYTES == 1024 * 1024
    assert settings.token_ttl_seconds == DEFAULT_TOKEN_TTL_SECONDS == 3600
    assert settings.migrate_on_start is None
    assert settings.partitions == DEFAULT_PARTITIONS == 16
    assert settings.queue_prefix == DEFAULT_QUEUE_PREFIX == "ledger.post"
    assert settings.batch == DEFAULT_BATCH == 1000
    assert (settings.group_commit_max_batch, settings.group_commit_window_ms) == (500, 0)
    assert (settings.relay_after_seconds, settings.relay_every_seconds,
            settings.rollup_every_seconds, settings.job_retention_days) == (30.0, 10.0, 2.0, 7.0)
    assert settings.worker_max_memory_kb == 200_000
    assert settings.stripe_link_id == DEFAULT_STRIPE_LINK_ID == "stripe"
    assert settings.stripe_api_key is None and settings.stripe_webhook_secret is None
    assert settings.stripe_api_base is None
    assert settings.stripe_backfill_every_seconds == 900.0
    assert settings.stripe_inbox_every_seconds == 60.0
    assert settings.config_path is None and settings.state_dir is None
    assert settings.api_processes == (os.cpu_count() or 1)
    assert (settings.db_reserved_connections, settings.client_cache_seconds) == (20, 1.0)
    assert settings.environ == {}


def test_without_an_argument_it_reads_the_process_environment(monkeypatch):
    monkeypatch.setenv("LEDGER_PARTITIONS", "3")
    monkeypatch.setenv("LEDGER_QUEUE_PREFIX", "proc.post")

    settings = Settings.from_env()
    assert (settings.partitions, settings.queue_prefix) == (3, "proc.post")
    assert settings.environ["LEDGER_PARTITIONS"] == "3"


# The limits of requests that could stall the API (issue 12).
STALLS_VARIABLES = {
    "LEDGER_GRAPHQL_MAX_DEPTH": ("9", "graphql_max_depth", 9),
    "LEDGER_GRAPHQL_MAX_COST": ("1000", "graphql_max_cost", 1000),
    "LEDGER_GRAPHQL_MAX_MUTATIONS": ("5", "graphql_max_mutations", 5),
    "LEDGER_GRAPHQL_CONCURRENCY": ("3", "graphql_concurrency", 3),
    "LEDGER_REQUEST_TIMEOUT_SECONDS": ("4.5", "request_timeout_seconds", 4.5),
    "LEDGER_STATEMENT_TIMEOUT_SECONDS": ("2", "statement_timeout_seconds", 2.0),
    "LEDGER_TOKEN_MAX_FAILURES": ("3", "token_max_failures", 3),
    "LEDGER_TOKEN_MAX_FAILURES_PER_ADDRESS": ("30", "token_max_failures_per_address", 30),
    "LEDGER_TOKEN_FAILURE_WINDOW_SECONDS": ("60", "token_failure_window_seconds", 60.0),
    "LEDGER_HASH_CONCURRENCY": ("4", "hash_concurrency", 4),
    # Group commit of synchronous posts (issue 11).
    "LEDGER_GROUP_COMMIT_MAX_BATCH": ("50", "group_commit_max_batch", 50),
    "LEDGER_GROUP_COMMIT_WINDOW_MS": ("2", "group_commit_window_ms", 2),
}

# Metrics, logs and tracing (issue 14).
OBSERVABILITY_VARIABLES = {
    "PROMETHEUS_MULTIPROC_DIR": ("/run/ledger-metrics", "metrics_dir",
                                 Path("/run/ledger-metrics")),
    "LEDGER_WORKER_METRICS_PORT": ("9101", "worker_metrics_port", 9101),
    "LEDGER_LOG_FORMAT": ("json", "log_format", "json"),
    "LEDGER_OTEL": ("otlp", "otel", "otlp"),
}

# An API that uses every core, and its lean request path (issue 11). The processes' default
# is the machine's core count, so the value read is one no machine has.
CORES_VARIABLES = {
    "LEDGER_API_PROCESSES": ("977", "api_processes", 977),
    "LEDGER_DB_RESERVED_CONNECTIONS": ("7", "db_reserved_connections", 7),
    "LEDGER_CLIENT_CACHE_SECONDS": ("0.25", "client_cache_seconds", 0.25),
    "LEDGER_STOP_TIMEOUT_SECONDS": ("7.5", "stop_timeout_seconds", 7.5),
}

# Which partitions a worker consumes (issue 14, "Scale-out").
WORKER_QUEUES_VARIABLES = {
    "LEDGER_WORKER_PARTITIONS": ("0-3,7", "worker_partitions", (0, 1, 2, 3, 7)),
    "LEDGER_WORKER_MAINTENANCE": ("no", "worker_maintenance", False),
    "LEDGER_WORKER_WEBHOOKS": ("no", "worker_webhooks", False),
}

# Events and outbound webhooks (issue 15).
EVENTS_VARIABLES = {
    "LEDGER_EVENTS": ("off", "events", False),
    "LEDGER_UNRECONCILED_ALERT_SECONDS": ("3600", "unreconciled_alert_seconds", 3600.0),
    "LEDGER_UNRECONCILED_EVERY_SECONDS": ("5", "unreconciled_every_seconds", 5.0),
    "LEDGER_WEBHOOK_EVERY_SECONDS": ("0.5", "webhook_every_seconds", 0.5),
    "LEDGER_WEBHOOK_BACKOFF_SECONDS": ("0.1", "webhook_backoff_seconds", 0.1),
    "LEDGER_WEBHOOK_DISABLE_AFTER": ("3", "webhook_disable_after", 3),
    "LEDGER_WEBHOOK_ALLOW_PRIVATE": ("true", "webhook_allow_private", True),
}


@pytest.mark.parametrize("variable, raw, field, value", [
    ("DATABASE_URL", "postgresql://db/ledger", "database_url", "postgresql://db/ledger"),
    ("REDIS_URL", "redis://cache:6379/2", "redis_url", "redis://cache:6379/2"),
    ("LEDGER_DATA_DIR", "/var/lib/ledger", "data_dir", Path("/var/lib/ledger")),
    ("LEDGER_MAX_BODY_BYTES", "2048", "max_body_bytes", 2048),
    ("LEDGER_MAX_JSON_DEPTH", "32", "max_json_depth", 32),
    ("LEDGER_TOKEN_TTL_SECONDS", " 60 ", "token_ttl_seconds", 60),
    ("LEDGER_MIGRATE_ON_START", "true", "migrate_on_start", True),
    ("LEDGER_MIGRATE_ON_START", "1", "migrate_on_start", True),
    ("LEDGER_MIGRATE_ON_START", "Yes", "migrate_on_start", True),
    ("LEDGER_MIGRATE_ON_START", "ON", "migrate_on_start", True),
    ("LEDGER_MIGRATE_ON_START", "false", "migrate_on_start", False),
    ("LEDGER_MIGRATE_ON_START", "0", "migrate_on_start", False),
    ("LEDGER_MIGRATE_ON_START", " no ", "migrate_on_start", False),
    ("LEDGER_MIGRATE_ON_START", "off", "migrate_on_start", False),
    ("LEDGER_PARTITIONS", "4", "partitions", 4),
    ("LEDGER_QUEUE_PREFIX", "ci-7.post", "queue_prefix", "ci-7.post"),
    ("LEDGER_BATCH", "50", "batch", 50),
    ("LEDGER_RELAY_AFTER_SECONDS", "2.5", "relay_after_seconds", 2.5),
    ("LEDGER_RELAY_EVERY_SECONDS", "1", "relay_every_seconds", 1.0),
    ("LEDGER_ROLLUP_EVERY_SECONDS", "0.5", "rollup_every_seconds", 0.5),
    ("LEDGER_HOLD_EXPIRY_EVERY_SECONDS", "0.25", "hold_expiry_every_seconds", 0.25),
    ("LEDGER_JOB_RETENTION_DAYS", "30", "job_retention_days", 30.0),
    ("LEDGER_WORKER_MAX_MEMORY_KB", "500000", "worker_max_memory_kb", 500_000),
    ("STRIPE_LINK_ID", "stripe-eu", "stripe_link_id", "stripe-eu"),
    ("STRIPE_API_KEY", "sk_test_123", "stripe_api_key", Secret("sk_test_123")),
    ("STRIPE_WEBHOOK_SECRET", "whsec_456", "stripe_webhook_secret", Secret("whsec_456")),
    ("STRIPE_API_BASE", "http://127.0.0.1:12111", "stripe_api_base", "http://127.0.0.1:12111"),
    ("LEDGER_STRIPE_BACKFILL_EVERY_SECONDS", "120", "stripe_backfill_every_seconds", 120.0),
    ("LEDGER_STRIPE_INBOX_EVERY_SECONDS", "15", "stripe_inbox_every_seconds", 15.0),
    ("LEDGER_CONFIG", "/home/u/ledger.json", "config_path", Path("/home/u/ledger.json")),
    ("LEDGER_STATE_DIR", "/run/ledger", "state_dir", Path("/run/ledger")),
    ("XDG_STATE_HOME", "/home/u/.state", "state_dir", Path("/home/u/.state/ledger")),
    *[(variable, raw, field, value) for variable, (raw, field, value) in STALLS_VARIABLES.items()],
    *[(variable, raw, field, value) for variable, (raw, field, value) in CORES_VARIABLES.items()],
    *[(variable, raw, field, value)
      for variable, (raw, field, value) in WORKER_QUEUES_VARIABLES.items()],
    ("LEDGER_SECRET_KEY", " k1 ", "secret_key", Secret("k1")),
    ("LEDGER_OLD_SECRET_KEYS", "k0, k-1,", "old_secret_keys", (Secret("k0"), Secret("k-1"))),
    ("LEDGER_WORKSPACE_NAME", " Acme wallet ", "workspace_name", "Acme wallet"),
    *[(variable, raw, field, value)
      for variable, (raw, field, value) in OBSERVABILITY_VARIABLES.items()],
    ("LEDGER_LOG_FORMAT", "JSON", "log_format", "json"),
    ("LEDGER_OTEL", "console", "otel", "console"),
    *[(variable, raw, field, value)
      for variable, (raw, field, value) in EVENTS_VARIABLES.items()],
])
def test_each_variable_is_parsed(variable, raw, field, value):
    settings = Settings.from_env({variable: raw})

    assert getattr(settings, field) == value
    # Nothing else moved.
    others = {f.name for f in dataclasses.fields(Settings)} - {field, "environ"}
    assert {n: getattr(settings, n) for n in others} == {n: getattr(Settings(), n) for n in others}


def test_every_field_is_read_from_some_variable():
    # A field added without a variable would silently keep its default in production.
    env = {"DATABASE_URL": "postgresql://db/x", "REDIS_URL": "redis://r/1",
           "LEDGER_DATA_DIR": "d", "LEDGER_MAX_BODY_BYTES": "8", "LEDGER_MAX_JSON_DEPTH": "8",
           "LEDGER_TOKEN_TTL_SECONDS": "8",
           "LEDGER_MIGRATE_ON_START": "false", "LEDGER_PARTITIONS": "8",
           "LEDGER_QUEUE_PREFIX": "p", "LEDGER_BATCH": "8", "LEDGER_RELAY_AFTER_SECONDS": "8",
           "LEDGER_RELAY_EVERY_SECONDS": "8", "LEDGER_ROLLUP_EVERY_SECONDS": "8",
           "LEDGER_JOB_RETENTION_DAYS": "8", "LEDGER_WORKER_MAX_MEMORY_KB": "8",
           "STRIPE_LINK_ID": "l", "STRIPE_API_KEY": "k", "STRIPE_WEBHOOK_SECRET": "s",
           "STRIPE_API_BASE": "http://b", "LEDGER_STRIPE_BACKFILL_EVERY_SECONDS": "8",
           "LEDGER_STRIPE_INBOX_EVERY_SECONDS": "8", "LEDGER_CONFIG": "c",
           "LEDGER_SECRET_KEY": "k", "LEDGER_OLD_SECRET_KEYS": "o", "LEDGER_STATE_DIR": "s",
           "LEDGER_WORKSPACE_NAME": "w", "LEDGER_HOLD_EXPIRY_EVERY_SECONDS": "8"}
    env.update({variable: raw for variable, (raw, _, _) in STALLS_VARIABLES.items()})
    env.update({variable: raw for variable, (raw, _, _) in CORES_VARIABLES.items()})
    env.update({variable: raw for variable, (raw, _, _) in OBSERVABILITY_VARIABLES.items()})
    env.update({variable: raw for variable, (raw, _, _) in WORKER_QUEUES_VARIABLES.items()})
    env.update({variable: raw for variable, (raw, _, _) in EVENTS_VARIABLES.items()})
    settings, default = Settings.from_env(env), Settings()

    unchanged = [f.name for f in dataclasses.fields(Settings)
                 if f.name != "environ" and getattr(settings, f.name) == getattr(default, f.name)]
    assert unchanged == []


def test_empty_values_mean_unset():
    settings = Settings.from_env({"DATABASE_URL": "", "LEDGER_PARTITIONS": "",
                                  "LEDGER_QUEUE_PREFIX": "", "STRIPE_API_KEY": "",
                                  "LEDGER_MIGRATE_ON_START": "", "LEDGER_DATA_DIR": ""})
    assert settings == Settings()


@pytest.mark.parametrize("variable, raw", [
    ("LEDGER_PARTITIONS", "four"),
    ("LEDGER_PARTITIONS", "2.5"),
    ("LEDGER_PARTITIONS", "0"),
    ("LEDGER_PARTITIONS", "-3"),
    ("LEDGER_BATCH", "0"),
    ("LEDGER_GROUP_COMMIT_MAX_BATCH", "0"),
    ("LEDGER_GROUP_COMMIT_WINDOW_MS", "-1"),
    ("LEDGER_GROUP_COMMIT_WINDOW_MS", "0.5"),
    ("LEDGER_MAX_BODY_BYTES", "1MB"),
    ("LEDGER_TOKEN_TTL_SECONDS", "-60"),
    ("LEDGER_WORKER_MAX_MEMORY_KB", "0"),
    ("LEDGER_MAX_JSON_DEPTH", "0"),
    ("LEDGER_RELAY_AFTER_SECONDS", "-1"),
    ("LEDGER_RELAY_EVERY_SECONDS", "0"),
    ("LEDGER_ROLLUP_EVERY_SECONDS", "soon"),
    ("LEDGER_HOLD_EXPIRY_EVERY_SECONDS", "0"),
    ("LEDGER_JOB_RETENTION_DAYS", "inf"),
    ("LEDGER_STRIPE_BACKFILL_EVERY_SECONDS", "nan"),
    ("LEDGER_STRIPE_INBOX_EVERY_SECONDS", "-0.5"),
    ("LEDGER_MIGRATE_ON_START", "maybe"),
    ("LEDGER_MIGRATE_ON_START", "2"),
    ("LEDGER_WORKER_METRICS_PORT", "http"),
    ("LEDGER_WORKER_METRICS_PORT", "0"),
    ("LEDGER_WORKER_METRICS_PORT", "70000"),
    ("LEDGER_LOG_FORMAT", "yaml"),
    ("LEDGER_OTEL", "jaeger"),
    ("LEDGER_EVENTS", "sometimes"),
    ("LEDGER_WEBHOOK_DISABLE_AFTER", "0"),
    ("LEDGER_WEBHOOK_BACKOFF_SECONDS", "-1"),
    ("LEDGER_WEBHOOK_ALLOW_PRIVATE", "maybe"),
])
def test_bad_values_raise_naming_the_variable(variable, raw):
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env({variable: raw})


def test_settings_error_is_a_value_error():
    assert issubclass(SettingsError, ValueError)


SECRETS = {"STRIPE_API_KEY": "sk_live_TOPSECRET", "STRIPE_WEBHOOK_SECRET": "whsec_TOPSECRET"}


def test_secrets_never_show_in_repr_or_str():
    settings = Settings.from_env(dict(SECRETS, LEDGER_PARTITIONS="2"))

    for text in (repr(settings), str(settings), f"{settings}", repr(settings.stripe_api_key),
                 str(settings.stripe_webhook_secret), f"{settings.stripe_api_key}"):
        assert "TOPSECRET" not in text
    assert "partitions=2" in repr(settings)
    assert settings.stripe_api_key.reveal() == "sk_live_TOPSECRET"
    assert settings.stripe_webhook_secret.reveal() == "whsec_TOPSECRET"


def test_server_passwords_never_show_in_repr():
    settings = Settings.from_env({"DATABASE_URL": "postgresql://app:PGPASSWORD@db/ledger",
                                  "REDIS_URL": "redis://:REDISPASSWORD@cache:6379/0"})
    assert "PGPASSWORD" not in repr(settings)
    assert "REDISPASSWORD" not in repr(settings)


def test_secret_is_falsy_when_empty_and_compares_by_value():
    assert not Secret("")
    assert Secret("a") == Secret("a") and Secret("a") != Secret("b")
    assert Secret("a") != "a"
    assert len({Secret("a"), Secret("a")}) == 1


def test_settings_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().partitions = 2


def test_queue_names():
    settings = Settings.from_env({"LEDGER_QUEUE_PREFIX": "ci-7.post", "LEDGER_PARTITIONS": "3"})

    assert settings.queue_name(0) == "ci-7.post.0"
    assert settings.queue_name(12) == "ci-7.post.12"
    assert settings.maintenance_queue == "ci-7.post.maintenance"
    assert settings.partition_queues() == ["ci-7.post.0", "ci-7.post.1", "ci-7.post.2"]
    assert Settings().maintenance_queue == "ledger.post.maintenance"
    assert len(Settings().partition_queues()) == 16


def test_with_servers_replaces_only_the_servers():
    settings = Settings.from_env({"LEDGER_PARTITIONS": "3", "PATH": "/bin"})
    resolved = settings.with_servers("postgresql://embedded/db", "redis://embedded/0")

    assert (resolved.database_url, resolved.redis_url) == ("postgresql://embedded/db",
                                                           "redis://embedded/0")
    assert resolved.partitions == 3 and resolved.environ == {"LEDGER_PARTITIONS": "3",
                                                             "PATH": "/bin"}
    assert settings.database_url is None


def test_child_environ_carries_the_environment_and_the_resolved_servers():
    env = {"PATH": "/bin", "LEDGER_PARTITIONS": "3", "STRIPE_API_KEY": "sk_x"}
    settings = Settings.from_env(env).with_servers("postgresql://db/x", "redis://r/1")

    child = settings.child_environ(LEDGER_ROLE="worker")
    assert child == {"PATH": "/bin", "LEDGER_PARTITIONS": "3", "STRIPE_API_KEY": "sk_x",
                     "DATABASE_URL": "postgresql://db/x", "REDIS_URL": "redis://r/1",
                     "LEDGER_DATA_DIR": ".ledger", "LEDGER_ROLE": "worker"}
    # A copy: the child's environment never writes back into the settings.
    child["PATH"] = "/usr/bin"
    assert settings.environ["PATH"] == "/bin"


def test_child_environ_without_servers_leaves_them_unset():
    child = Settings.from_env({"LEDGER_DATA_DIR": "/data"}).child_environ()

    assert child == {"LEDGER_DATA_DIR": "/data"}


def test_overrides_win_in_child_environ():
    settings = Settings.from_env({}).with_servers("postgresql://db/x", "redis://r/1")

    assert settings.child_environ(DATABASE_URL="postgresql://other/y")["DATABASE_URL"] == \
        "postgresql://other/y"


def test_the_environment_copy_is_not_compared_or_shown():
    a = Settings.from_env({"PATH": "/bin"})
    b = Settings.from_env({"PATH": "/usr/bin"})

    assert a == b
    assert "PATH" not in repr(a) and "/bin" not in repr(a)


def test_surrounding_spaces_are_not_part_of_a_value():
    settings = Settings.from_env({"LEDGER_QUEUE_PREFIX": "  ", "REDIS_URL": " redis://h:1/0 "})
    assert settings.queue_prefix == "ledger.post"
    assert settings.redis_url == "redis://h:1/0"


def test_the_state_folder_of_ledger_up_prefers_its_own_variable():
    settings = Settings.from_env({"LEDGER_STATE_DIR": "/a", "XDG_STATE_HOME": "/b"})
    assert settings.state_dir == Path("/a")


# Which queues a worker consumes (issue 14, "Scale-out").

def test_a_worker_consumes_every_partition_and_maintenance_by_default():
    settings = Settings.from_env({"LEDGER_QUEUE_PREFIX": "q", "LEDGER_PARTITIONS": "3"})
    assert (settings.worker_partitions, settings.worker_maintenance) == (None, True)
    assert settings.worker_queues() == ["q.0", "q.1", "q.2", "q.maintenance", "q.webhooks"]


def test_webhook_deliveries_have_their_own_queue_that_a_worker_may_leave():
    settings = Settings.from_env({"LEDGER_QUEUE_PREFIX": "q", "LEDGER_PARTITIONS": "2",
                                  "LEDGER_WORKER_WEBHOOKS": "false"})
    assert settings.webhook_queue == "q.webhooks"
    assert settings.worker_queues() == ["q.0", "q.1", "q.maintenance"]
    no_maintenance = Settings.from_env({"LEDGER_QUEUE_PREFIX": "q", "LEDGER_PARTITIONS": "1",
                                        "LEDGER_WORKER_MAINTENANCE": "false"})
    assert no_maintenance.worker_queues() == ["q.0"]


def test_worker_partitions_take_numbers_and_ranges():
    settings = Settings.from_env({"LEDGER_QUEUE_PREFIX": "q",
                                  "LEDGER_WORKER_PARTITIONS": " 12-15, 3 ,0-1,3",
                                  "LEDGER_WORKER_MAINTENANCE": "false"})
    assert settings.worker_partitions == (0, 1, 3, 12, 13, 14, 15)
    assert settings.worker_queues() == ["q.0", "q.1", "q.3", "q.12", "q.13", "q.14", "q.15"]
    with_maintenance = Settings.from_env({"LEDGER_QUEUE_PREFIX": "q",
                                          "LEDGER_WORKER_PARTITIONS": "4-7"})
    assert with_maintenance.worker_queues() == ["q.4", "q.5", "q.6", "q.7", "q.maintenance",
                                                "q.webhooks"]


@pytest.mark.parametrize("value, says", [
    ("16", "not within the 16 partitions 0-15"),
    ("0-16", "not within the 16 partitions 0-15"),
    ("-1", "not a partition number"),
    ("3-1", "the range '3-1' is empty"),
    ("a-b", "not a partition number"),
    ("0-3,", "not a partition number"),
    ("1.5", "not a partition number"),
])
def test_unusable_worker_partitions_are_refused_by_name(value, says):
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({"LEDGER_WORKER_PARTITIONS": value})
    assert "LEDGER_WORKER_PARTITIONS" in str(refused.value) and says in str(refused.value)


def test_worker_partitions_are_checked_against_the_partition_count():
    assert Settings.from_env({"LEDGER_PARTITIONS": "32",
                              "LEDGER_WORKER_PARTITIONS": "16-31"}).worker_partitions \
        == tuple(range(16, 32))
    with pytest.raises(SettingsError, match="0-3"):
        Settings.from_env({"LEDGER_PARTITIONS": "4", "LEDGER_WORKER_PARTITIONS": "4"})
    with pytest.raises(SettingsError, match="LEDGER_WORKER_MAINTENANCE"):
        Settings.from_env({"LEDGER_WORKER_MAINTENANCE": "sometimes"})

"""The API's Prometheus metrics (prometheus-client): what this process counts (requests,
GraphQL outcomes, group-commit batches) and, read from the database at scrape time, the
backlog of every queue (``ledger.service.queue_snapshot``).

With ``PROMETHEUS_MULTIPROC_DIR`` set (settings.metrics_dir), every process writes its
counts to files there and a scrape adds up all of them: uvicorn ``--workers`` processes,
and the workers' pool children when they share the folder (``ledger up`` does). Without it,
a scrape sees the counts of the process that answered it; the queue figures are the same
from any process, since they come from the database."""
from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from ledger import service
from ledger.settings import Settings

log = logging.getLogger("api")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Entries in a group-committed transaction: 1 when requests come one at a time, up to
# LEDGER_GROUP_COMMIT_MAX_BATCH (at most 1000) under load.
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
# Request latencies: a cached read takes about a millisecond, a post waits for its batch.
SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
                   30)

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class Metrics:
    """The metrics of one app. Its own registry, so that several apps in one process
    (tests) don't collide in prometheus-client's global one."""

    def __init__(self, settings: Settings, db_of=lambda: None):
        self.settings = settings
        # The app's database, looked up at scrape time: the app opens it lazily.
        self.db_of = db_of
        self.registry = CollectorRegistry(auto_describe=True)
        # In multiprocess mode the values live in files and are read back by
        # MultiProcessCollector at scrape time; registering them too would count twice.
        own = None if settings.metrics_dir else self.registry
        self.requests = Counter("ledger_http_requests", "HTTP requests answered.",
                                ["method", "route", "status"], registry=own)
        self.durations = Histogram("ledger_http_request_duration_seconds",
                                   "Time spent answering requests.", ["route"],
                                   buckets=SECONDS_BUCKETS, registry=own)
        self.operations = Counter("ledger_graphql_operations",
                                  "GraphQL mutations by result type (queries by ok/error).",
                                  ["field", "result"], registry=own)
        self.group_batch_entries = Histogram(
            "ledger_group_commit_batch_entries",
            "Entries posted per group-committed transaction.", buckets=BATCH_BUCKETS,
            registry=own)
        self.group_batch_seconds = Histogram(
            "ledger_group_commit_batch_duration_seconds",
            "Time to post one group-committed transaction, retries included.",
            buckets=SECONDS_BUCKETS, registry=own)
        # The workers' counters under the same names (workers/metrics.py): a request that
        # waits posts its own partitions (Prefer: wait), and in multiprocess mode a scrape
        # adds both up.
        self.jobs_posted = Counter("ledger_jobs_posted",
                                   "Posting jobs posted (replays included), per partition.",
                                   ["partition"], registry=own)
        self.jobs_failed = Counter("ledger_jobs_failed",
                                   "Posting jobs failed for good, per partition.",
                                   ["partition"], registry=own)
        self.registry.register(QueueCollector(settings, db_of))
        self._children: dict[tuple, object] = {}

    def http_request(self, method: str, route: str, status: int, seconds: float) -> None:
        # A client may send any token as its method: each would be a label set of its own.
        method = method if method in METHODS else "other"
        self._child(self.requests, method, route, str(status)).inc()
        self._child(self.durations, route).observe(seconds)

    def graphql_operation(self, operation: str, outcomes: list[tuple[str, str]], result) -> None:
        if outcomes:
            for name, typename in outcomes:
                self._child(self.operations, name, typename).inc()
        else:
            self._child(self.operations, operation, "error" if result.errors else "ok").inc()

    def _child(self, metric, *labels: str):
        """``metric.labels(*labels)``, kept: prometheus-client checks and locks on every
        call, a cost each request paid on the event loop two or three times. The label sets
        are bounded (route templates, not paths), and so is this."""
        key = (metric, labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def group_commit_batch(self, entries: int, seconds: float) -> None:
        """``GroupCommitter(observe=...)``."""
        self.group_batch_entries.observe(entries)
        self.group_batch_seconds.observe(seconds)

    def jobs_worked(self, result: service.WorkResult) -> None:
        """``service.submit_entries(observe=...)``: jobs a waiting request posted."""
        if result.claimed:
            self.jobs_posted.labels(str(result.partition)).inc(result.posted)
            self.jobs_failed.labels(str(result.partition)).inc(result.failed)

    def render(self) -> bytes:
        """The Prometheus text of every metric, the queue figures read now."""
        if not self.settings.metrics_dir:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(self.settings.metrics_dir))
        registry.register(QueueCollector(self.settings, self.db_of))
        return generate_latest(registry)


class QueueCollector(Collector):
    """The backlog of the queues kept in PostgreSQL, read once per scrape. A database that
    cannot be read is a 0 in ``ledger_metrics_database_up``, not a failed scrape: the
    process's own counters still matter most then."""

    def __init__(self, settings: Settings, db_of):
        self.settings = settings
        self.db_of = db_of

    def describe(self) -> list:
        # Nothing described up front: describing would read the database at registration.
        return []

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("ledger_metrics_database_up",
                               "1 when the queue figures below could be read from the database.")
        db = self.db_of()
        snapshot = None
        if db is not None:
            try:
                snapshot = service.queue_snapshot(db, self.settings.partitions)
            except Exception:
                log.warning("metrics: could not read the queues' backlog", exc_info=True)
        up.add_metric([], 1 if snapshot is not None else 0)
        yield up
        if snapshot is not None:
            yield from queue_families(snapshot)


def queue_families(snapshot: service.Snapshot) -> Iterator[Metric]:
    pending = GaugeMetricFamily("ledger_jobs_pending", "Posting jobs waiting, per partition.",
                                labels=["partition"])
    oldest = GaugeMetricFamily("ledger_jobs_oldest_pending_seconds",
                               "Age of the oldest pending posting job, per partition "
                               "(0: none pending).", labels=["partition"])
    for backlog in snapshot.partitions:
        pending.add_metric([str(backlog.partition)], backlog.pending)
        oldest.add_metric([str(backlog.partition)], backlog.oldest_seconds)
    yield pending
    yield oldest
    yield GaugeMetricFamily("ledger_rollup_pending_deltas",
                            "Balance deltas of eventually consistent accounts not yet folded.",
                            value=snapshot.rollup_pending)
    yield GaugeMetricFamily("ledger_rollup_lag_seconds",
                            "Age of the oldest unfolded balance delta: how stale an eventual "
                            "balance can be (0: none pending).",
                            value=snapshot.rollup_lag_seconds)
    yield GaugeMetricFamily("ledger_stripe_webhook_inbox_pending",
                            "Stripe webhook events stored but not processed yet.",
                            value=snapshot.inbox_pending)
    yield GaugeMetricFamily("ledger_stripe_webhook_inbox_oldest_seconds",
                            "Age of the oldest unprocessed Stripe webhook event (0: none).",
                            value=snapshot.inbox_oldest_seconds)
    cursor = GaugeMetricFamily("ledger_stripe_sync_cursor_age_seconds",
                               "Seconds since the end of the Stripe link's last complete "
                               "sync window.", labels=["link"])
    for link, age in snapshot.stripe_cursor_age_seconds.items():
        if age is not None:
            cursor.add_metric([link], age)
    yield cursor

"""The workers' Prometheus metrics: jobs posted and failed per partition, and the size and
duration of each claimed batch.

Celery runs tasks in pool children, so the counts must outlive and add up across
processes: prometheus-client's multiprocess mode, in the folder ``PROMETHEUS_MULTIPROC_DIR``
(settings.metrics_dir). The worker's main process serves them on
``LEDGER_WORKER_METRICS_PORT``; an API sharing the folder (``ledger up``) shows them too.
The queues' backlog is the API's to show: it comes from the database, the same for all."""
from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector

from ledger import service
from ledger.settings import Settings

log = logging.getLogger(__name__)

# Jobs claimed in one transaction: up to LEDGER_BATCH (1000 by default).
CLAIM_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
BATCH_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

class _Metrics:
    """Made on first use, not at import: in multiprocess mode an unlabelled histogram
    opens its file at once, and the folder is made when the worker starts (serve)."""

    def __init__(self):
        self.posted = Counter("ledger_jobs_posted",
                              "Posting jobs posted (replays included), per partition.",
                              ["partition"])
        self.failed = Counter("ledger_jobs_failed", "Posting jobs failed for good, per "
                              "partition.", ["partition"])
        self.batch_jobs = Histogram("ledger_job_batch_jobs",
                                    "Jobs claimed per worker transaction.",
                                    buckets=CLAIM_BUCKETS)
        self.batch_seconds = Histogram("ledger_job_batch_duration_seconds",
                                       "Time to claim, post and mark one batch of jobs.",
                                       buckets=BATCH_SECONDS)
        self.busy = Counter("ledger_partition_busy", "Doorbells that found their partition "
                            "held by another worker, per partition.", ["partition"])


_made: list[_Metrics] = []


def metrics() -> _Metrics:
    if not _made:
        _made.append(_Metrics())
    return _made[0]


def record_batch(result: service.WorkResult, seconds: float) -> None:
    """One call of ``service.work_partition``: what it claimed and how long it took."""
    m = metrics()
    partition = str(result.partition)
    if result.busy:
        m.busy.labels(partition).inc()
        return
    if result.claimed:
        m.posted.labels(partition).inc(result.posted)
        m.failed.labels(partition).inc(result.failed)
        m.batch_jobs.observe(result.claimed)
        m.batch_seconds.observe(seconds)


def observe_batch(result: service.WorkResult, seconds: float, settings: Settings) -> None:
    """What the posting task reports after each batch: the metrics, and the attributes of
    its trace span when tracing is on."""
    record_batch(result, seconds)
    if settings.otel != "off":
        from workers import telemetry

        telemetry.annotate(result)


def serve(settings: Settings) -> None:
    """Make the folder, and serve every process's metrics of it on the port (in a thread
    of this process); nothing more when no port is set. Without a folder, the pool children's counts
    could not be seen: refused, naming what to set."""
    if settings.metrics_dir is not None:
        settings.metrics_dir.mkdir(parents=True, exist_ok=True)
    if settings.worker_metrics_port is None:
        return
    if settings.metrics_dir is None:
        raise SystemExit("LEDGER_WORKER_METRICS_PORT needs PROMETHEUS_MULTIPROC_DIR: an "
                         "empty folder where the worker's processes keep their counts")
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(settings.metrics_dir))
    start_http_server(settings.worker_metrics_port, registry=registry)
    log.info("worker metrics on port %s", settings.worker_metrics_port)

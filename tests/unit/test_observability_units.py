"""Observability pieces that need no server: the JSON log format and its bound fields, the
request id, the API's metrics page without a database, the workers' batch counts."""
from __future__ import annotations

import io
import json
import logging
import sys
import threading

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from api.metrics import Metrics
from api.middleware import Guard
from ledger import service
from ledger.settings import Settings, SettingsError
from workers import metrics as worker_metrics


@pytest.fixture
def json_lines():
    """A logger whose records land in a buffer as JSON lines; returns (logger, read)."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(service.JsonFormatter())
    logger = logging.getLogger("tests.observability")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]
    logger.removeHandler(handler)


def test_json_lines_carry_bound_and_extra_fields(json_lines):
    logger, read = json_lines
    with service.log_fields(request_id="r-1", ledger_ik=None):
        with service.log_fields(job_id=7):
            logger.info("job %s failed", 7, extra={"entry_ik": "dep-1", "code": "x"})
        logger.warning("after")
    logger.info("outside")

    first, second, third = read()
    assert first["message"] == "job 7 failed" and first["level"] == "info"
    assert first["logger"] == "tests.observability"
    assert (first["request_id"], first["job_id"], first["entry_ik"], first["code"]) == \
        ("r-1", 7, "dep-1", "x")
    assert "ledger_ik" not in first  # None values are left out
    assert second["request_id"] == "r-1" and "job_id" not in second
    assert "request_id" not in third
    assert first["time"].endswith("+00:00")


def test_a_traceback_and_odd_values_stay_on_one_line(json_lines):
    logger, read = json_lines
    try:
        raise ValueError("line one\nline two")
    except ValueError:
        logger.exception("boom", extra={"obj": object(), "text": "é\n"})
    [event] = read()
    assert "ValueError: line one\nline two" in event["exc_info"]
    assert event["text"] == "é\n" and event["obj"].startswith("<object")


def test_fields_of_concurrent_threads_stay_apart(json_lines):
    logger, read = json_lines
    barrier = threading.Barrier(2)

    def work(name):
        with service.log_fields(request_id=name):
            barrier.wait()
            logger.info(name)

    threads = [threading.Thread(target=work, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {(e["message"], e["request_id"]) for e in read()} == {("a", "a"), ("b", "b")}


def test_request_id_is_kept_or_made_and_bound_to_the_log(json_lines):
    logger, read = json_lines
    app = FastAPI()

    @app.get("/hello")
    def hello():
        logger.info("hello")
        return {}

    app.add_middleware(Guard, metrics=Metrics(Settings()), max_bytes=1024, max_depth=8)
    client = TestClient(app)

    given = client.get("/hello", headers={"X-Request-ID": "abc-123"})
    made = client.get("/hello")
    odd = client.get("/hello", headers={"X-Request-ID": "x" * 500})

    assert given.headers["x-request-id"] == "abc-123"
    assert len(made.headers["x-request-id"]) == 32
    assert odd.headers["x-request-id"] != "x" * 500
    ids = [e["request_id"] for e in read()]
    assert ids == ["abc-123", made.headers["x-request-id"], odd.headers["x-request-id"]]


def samples(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_metrics_page_without_a_database():
    metrics = Metrics(Settings())
    metrics.http_request("GET", "/graphql", 200, 0.003)
    metrics.http_request("GET", "/graphql", 200, 0.3)
    metrics.group_commit_batch(7, 0.02)
    page = samples(metrics.render().decode())

    assert page['ledger_http_requests_total{method="GET",route="/graphql",status="200"}'] == 2
    assert page['ledger_http_request_duration_seconds_count{route="/graphql"}'] == 2
    assert page['ledger_http_request_duration_seconds_bucket{le="0.005",route="/graphql"}'] == 1
    assert page["ledger_group_commit_batch_entries_sum"] == 7
    assert page['ledger_group_commit_batch_entries_bucket{le="5.0"}'] == 0
    assert page['ledger_group_commit_batch_entries_bucket{le="10.0"}'] == 1
    # No database to read the queues from: said, not a failed scrape.
    assert page["ledger_metrics_database_up"] == 0
    assert not any(name.startswith("ledger_jobs_pending") for name in page)


def test_methods_no_client_should_name_count_together():
    metrics = Metrics(Settings())
    for method in ("BREW", "X" * 40, "propfind", "POST"):
        metrics.http_request(method, "unmatched", 405, 0.001)
    page = samples(metrics.render().decode())
    assert page['ledger_http_requests_total{method="other",route="unmatched",status="405"}'] == 3
    assert page['ledger_http_requests_total{method="POST",route="unmatched",status="405"}'] == 1
    assert not any("BREW" in name or "propfind" in name for name in page)


def test_two_apps_in_one_process_count_apart():
    one, two = Metrics(Settings()), Metrics(Settings())
    one.http_request("GET", "/a", 200, 0.1)
    assert 'route="/a"' in one.render().decode()
    assert 'route="/a"' not in two.render().decode()


def value(name: str, labels: dict | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def test_worker_batches_are_counted():
    before = (value("ledger_jobs_posted_total", {"partition": "3"}),
              value("ledger_jobs_failed_total", {"partition": "3"}),
              value("ledger_job_batch_jobs_count"), value("ledger_job_batch_jobs_sum"),
              value("ledger_partition_busy_total", {"partition": "3"}))
    worker_metrics.record_batch(service.WorkResult(3, claimed=5, posted=4, failed=1), 0.2)
    worker_metrics.record_batch(service.WorkResult(3), 0.001)  # nothing claimed: no batch
    worker_metrics.record_batch(service.WorkResult(3, busy=True), 0.001)
    after = (value("ledger_jobs_posted_total", {"partition": "3"}),
             value("ledger_jobs_failed_total", {"partition": "3"}),
             value("ledger_job_batch_jobs_count"), value("ledger_job_batch_jobs_sum"),
             value("ledger_partition_busy_total", {"partition": "3"}))
    assert [a - b for a, b in zip(after, before)] == [4, 1, 1, 5, 1]


def test_a_worker_metrics_port_needs_the_multiprocess_folder():
    with pytest.raises(SystemExit, match="PROMETHEUS_MULTIPROC_DIR"):
        worker_metrics.serve(Settings(worker_metrics_port=9999))
    worker_metrics.serve(Settings())  # no port: nothing to serve, nothing refused


def test_tracing_off_needs_no_opentelemetry_and_on_without_it_says_what_to_install(
        monkeypatch):
    assert service.tracer_provider(Settings(), "ledger-test") is None
    # As if the otel extra were not installed.
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    with pytest.raises(SettingsError, match=r"LEDGER_OTEL=otlp needs .*moneyledger\[otel\]"):
        service.tracer_provider(Settings(otel="otlp"), "ledger-test")

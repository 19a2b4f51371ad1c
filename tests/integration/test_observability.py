"""Observability (issue 14): /metrics shows the queues' backlog read from the database, a
real worker serves its own counts on its metrics port (multiprocess mode, pool of two),
its log lines are JSON with the failed job's ids as fields, and a trace runs from the API
request through the outbox to the worker's posting transaction."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import httpx
import sqlalchemy as sa

from ledger import service
from tests.integration.conftest import REPO
from tests.serving import free_port


def scrape(url: str, headers: dict | None = None) -> dict[str, float]:
    """``{'name{labels}': value}`` of a Prometheus text page."""
    r = httpx.get(url, headers=headers or {}, timeout=30)
    assert r.status_code == 200, r.text
    samples = {}
    for line in r.text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def total(samples: dict[str, float], name: str) -> float:
    return sum(v for k, v in samples.items() if re.fullmatch(rf"{name}(\{{.*\}})?", k))


def deposit(ik: str, user: str, amount: int) -> dict:
    return {"ik": ik, "type": "deposit", "parameters": {"user": user, "amount": str(amount)}}


def withdraw(ik: str, user: str, amount: int) -> dict:
    return {"ik": ik, "type": "withdraw", "parameters": {"user": user, "amount": str(amount)}}


ADD_ENTRY = """mutation($ik: SafeString!, $entry: LedgerEntryInput!) {
  addLedgerEntry(ik: $ik, entry: $entry) { __typename } }"""


def test_backlog_then_worker_counts_and_json_logs(pipeline, tmp_path):
    api = pipeline.api
    ledger_ik = pipeline.new_ledger()
    user = pipeline.unique("u")
    # The last one withdraws more than was deposited: refused, so its job fails.
    entries = [deposit(pipeline.unique("d"), user, 10) for _ in range(5)]
    entries.append(withdraw(pipeline.unique("w"), user, 500))
    jobs = pipeline.submit_all(ledger_ik, entries)
    time.sleep(0.05)
    before = scrape(f"{api.url}/metrics", api.headers)
    assert before["ledger_metrics_database_up"] == 1
    assert total(before, "ledger_jobs_pending") >= len(entries)
    busy = [k for k, v in before.items() if k.startswith("ledger_jobs_pending{") and v]
    assert busy, "no partition shows a pending job"
    for key in busy:
        age = before[key.replace("ledger_jobs_pending", "ledger_jobs_oldest_pending_seconds")]
        assert 0 < age < 120

    port = free_port()
    metrics_dir = tmp_path / "worker-metrics"
    worker = pipeline.worker(concurrency=2, LEDGER_WORKER_METRICS_PORT=port,
                             PROMETHEUS_MULTIPROC_DIR=metrics_dir, LEDGER_LOG_FORMAT="json")
    statuses = pipeline.wait_finished(ledger_ik, len(entries))
    assert sorted(statuses.values()) == ["failed"] + ["posted"] * 5

    counts = scrape(f"http://127.0.0.1:{port}/metrics")
    assert total(counts, "ledger_jobs_posted_total") >= 5
    assert total(counts, "ledger_jobs_failed_total") >= 1
    assert counts["ledger_job_batch_jobs_count"] >= 1
    assert counts["ledger_job_batch_jobs_sum"] >= len(entries)
    assert counts["ledger_job_batch_duration_seconds_count"] >= 1

    after = scrape(f"{api.url}/metrics", api.headers)
    for key in busy:
        assert after[key] == 0

    # The bank is eventually consistent: its deltas wait for the rollup.
    lagging = scrape(f"{api.url}/metrics", api.headers)
    assert lagging["ledger_rollup_pending_deltas"] >= 1  # one per account and batch
    assert lagging["ledger_rollup_lag_seconds"] > 0
    while service.rollup(pipeline.db):
        pass
    folded = scrape(f"{api.url}/metrics", api.headers)
    assert folded["ledger_rollup_pending_deltas"] == 0
    assert folded["ledger_rollup_lag_seconds"] == 0

    # A synchronous post goes through the app's group committer, which reports its batch.
    r = httpx.post(f"{api.url}/graphql", headers=api.headers, timeout=30, json={
        "query": ADD_ENTRY, "variables": {"ik": pipeline.unique("sync"), "entry": {
            "ledger": {"ik": ledger_ik}, "type": "deposit",
            "parameters": {"user": user, "amount": "1"}}}})
    assert r.json()["data"]["addLedgerEntry"]["__typename"] == "AddLedgerEntryResult", r.text
    synced = scrape(f"{api.url}/metrics", api.headers)
    assert synced["ledger_group_commit_batch_entries_count"] == \
        folded.get("ledger_group_commit_batch_entries_count", 0) + 1
    assert synced['ledger_graphql_operations_total{field="addLedgerEntry",'
                  'result="AddLedgerEntryResult"}'] >= 1

    failed_job = next(j for j in jobs if j["ik"] == entries[-1]["ik"])
    events = [json.loads(line) for line in worker.log_tail(400).splitlines()
              if line.startswith("{")]
    failures = [e for e in events if e.get("logger") == "ledger.jobs.claims"]
    assert failures, worker.log_tail()
    assert failures[-1]["job_id"] == int(failed_job["id"])
    assert failures[-1]["entry_ik"] == entries[-1]["ik"]
    assert failures[-1]["ledger_ik"] == ledger_ik
    assert failures[-1]["code"] and failures[-1]["partition"] is not None
    assert failures[-1]["task_id"]


def test_inbox_backlog_and_stripe_cursor_age(db, unique):
    link = unique("stripe-link")
    with db.transaction() as conn:
        link_pk = conn.execute(sa.text(
            "INSERT INTO links (public_id, ik, name, kind, created) "
            "VALUES (:p, :p, 'Stripe', 'stripe', now()) RETURNING id"), {"p": link}).scalar()
        conn.execute(sa.text(
            "INSERT INTO stripe_links (link_id, parameters, backfill_done_until, updated) "
            "VALUES (:l, '{}', :done, now())"),
            {"l": link_pk, "done": datetime.now(timezone.utc) - timedelta(hours=1)})
    before = service.queue_snapshot(db, 4)
    service.store_stripe_event(db, {"id": unique("evt"), "type": "charge.succeeded"})
    after = service.queue_snapshot(db, 4)

    assert after.inbox_pending == before.inbox_pending + 1
    assert after.inbox_oldest_seconds >= 0
    assert 3590 < after.stripe_cursor_age_seconds[link] < 3700
    assert [p.partition for p in after.partitions][:4] == [0, 1, 2, 3]


PROBE = r'''
import json, sys
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)

from fastapi.testclient import TestClient
from api.app import create_app
from ledger.settings import Settings

settings = Settings.from_env()
token, ledger_ik, entries = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
with TestClient(create_app(settings)) as client:
    # One request per entry: the first rings the partition's doorbell, the next find it
    # waiting and ring nothing.
    for entry in entries:
        r = client.post(f"/v1/ledgers/{ledger_ik}/entries", json=entry,
                        headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 202, r.text
print(json.dumps([{"name": s.name, "trace_id": format(s.context.trace_id, "032x"),
                   "kind": s.kind.name} for s in exporter.get_finished_spans()]))
'''


def test_trace_from_request_through_outbox_to_worker(pipeline, tmp_path):
    """The request that rang the doorbell is the parent of the worker's task span; a request
    whose jobs rode on that doorbell is linked from it (its traceparent kept on the job)."""
    ledger_ik = pipeline.new_ledger()
    user = pipeline.unique("u")  # one user: one partition, one doorbell
    entries = [deposit(pipeline.unique("t"), user, 7), deposit(pipeline.unique("t"), user, 8)]
    env = {**pipeline.env, "LEDGER_OTEL": "console"}
    probe = subprocess.run([sys.executable, "-c", PROBE, pipeline.api.token, ledger_ik,
                            json.dumps(entries)], cwd=REPO, env=env, capture_output=True,
                           text=True, timeout=120)
    assert probe.returncode == 0, probe.stderr
    spans = json.loads(probe.stdout.strip().splitlines()[-1])
    requests = [s["trace_id"] for s in spans if s["kind"] == "SERVER"]
    assert len(requests) == 2 and len(set(requests)) == 2, spans
    ringing, riding = requests
    first = [s for s in spans if s["trace_id"] == ringing]
    names = " ".join(s["name"] for s in first)
    assert "INSERT" in names or "postgres" in names.lower(), names  # the outbox insert
    assert any(s["kind"] == "PRODUCER" for s in first), names  # the doorbell's publish
    assert not any(s["kind"] == "PRODUCER" for s in spans if s["trace_id"] == riding)

    worker = pipeline.worker(LEDGER_OTEL="console")
    pipeline.wait_finished(ledger_ik, 2)
    # The worker's console exporter prints its spans as JSON objects, in batches.
    task_span = None
    deadline = time.monotonic() + 30
    while task_span is None and time.monotonic() < deadline:
        task_span = next((span for span in console_spans(worker.log_path.read_text())
                          if span["name"].startswith("run/ledger.post")), None)
        time.sleep(0.5)
    assert task_span is not None, worker.log_tail(80)
    assert task_span["context"]["trace_id"] == "0x" + ringing
    linked = {link["context"]["trace_id"] for link in task_span["links"]}
    assert "0x" + riding in linked
    assert task_span["attributes"]["ledger.jobs.posted"] == 2
    statements = [span for span in console_spans(worker.log_path.read_text())
                  if span["context"]["trace_id"] == "0x" + ringing
                  and span["parent_id"] and span is not task_span]
    assert statements, "no database span inside the worker's task"


def console_spans(text: str) -> list[dict]:
    """The spans OpenTelemetry's console exporter printed (indented JSON objects)."""
    decoder, spans, at = json.JSONDecoder(), [], 0
    while (at := text.find('{\n    "name"', at)) != -1:
        span, end = decoder.raw_decode(text, at)
        spans.append(span)
        at = end
    return spans


def test_api_processes_add_up_their_counts_and_log_json(database_url, db, tmp_path):
    """uvicorn --workers 2 with a shared multiprocess folder: any process's /metrics counts
    every process's requests; with LEDGER_LOG_FORMAT=json the processes' lines (uvicorn's
    access log included) are JSON objects carrying the request id."""
    from tests.integration.test_group_commit_http import token, wait_healthy
    from tests.keys import SECRET_KEY

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "DATABASE_URL": database_url, "PYTHONPATH": str(REPO),
           "LEDGER_SECRET_KEY": SECRET_KEY.reveal(), "LEDGER_API_PROCESSES": "2",
           "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"), "LEDGER_LOG_FORMAT": "json"}
    log_path = tmp_path / "api.log"
    with open(log_path, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "api.app:app_from_env", "--factory", "--host",
             "127.0.0.1", "--port", str(port), "--workers", "2"],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_healthy(proc, url, tmp_path)
        headers = {"Authorization": f"Bearer {token(url, db)}"}
        healthz = 'ledger_http_requests_total{method="GET",route="/healthz",status="200"}'
        before = scrape(f"{url}/metrics", headers)[healthz]
        for n in range(40):
            # A new connection each: the processes take turns accepting them.
            assert httpx.get(f"{url}/healthz", headers={"X-Request-ID": f"probe-{n}"}
                             ).status_code == 200
        pages = [scrape(f"{url}/metrics", headers) for _ in range(6)]
        assert {page[healthz] - before for page in pages} == {40}
        assert all(page["ledger_metrics_database_up"] == 1 for page in pages)
    finally:
        proc.terminate()
        proc.wait(30)
    events = [json.loads(line) for line in log_path.read_text().splitlines()
              if line.startswith("{")]
    access = [e for e in events if e["logger"] == "uvicorn.access"]
    assert {e.get("request_id") for e in access} >= {f"probe-{n}" for n in range(40)}
    assert any("Started server process" in e["message"] for e in events)


def test_group_commit_batches_are_measured(db, unique):
    """Each group-committed transaction is one observation: as many as the committer's
    batches, their sizes adding up to the entries posted."""
    from api.metrics import Metrics
    from ledger.settings import Settings
    from tests.integration.helpers import new_ledger, seed000_schema
    from tests.integration.test_group_commit import (Recorder, deposit, race_through)

    ledger_ik = new_ledger(db, unique, seed000_schema(unique("wallet")))
    metrics = Metrics(Settings())
    recorder = Recorder(pause=0.05)
    committer = service.GroupCommitter(db, on_batch=recorder.on_batch,
                                       before_commit=recorder.before_commit,
                                       observe=metrics.group_commit_batch)
    race_through(committer, ledger_ik, [deposit(f"d{i}", f"u{i % 5}", 1) for i in range(60)])

    page = {}
    for line in metrics.render().decode().splitlines():
        if line.startswith("ledger_group_commit"):
            name, value = line.rsplit(" ", 1)
            page[name] = float(value)
    assert committer.stats.largest > 1
    assert page["ledger_group_commit_batch_entries_count"] == committer.stats.batches
    assert page["ledger_group_commit_batch_entries_sum"] == committer.stats.entries == 60
    assert page['ledger_group_commit_batch_entries_bucket{le="1.0"}'] < committer.stats.batches
    assert page["ledger_group_commit_batch_duration_seconds_count"] == committer.stats.batches
    assert page["ledger_group_commit_batch_duration_seconds_sum"] > 0

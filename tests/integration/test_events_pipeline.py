"""Events through the asynchronous pipeline's real Celery workers: the feed has no gaps
after 5,000 posts across 16 partitions, and a worker SIGKILLed in the middle of a webhook
delivery leaves the event to be delivered again, with the same webhook-id."""
from __future__ import annotations

import os
import signal
import threading
import time

import pytest
import sqlalchemy as sa

from ledger import service
from ledger.jobs import model as jobs
from ledger.settings import Settings
from tests.integration.conftest import user_path
from tests.integration.test_pipeline import workload
from tests.integration.webhook_receiver import Receiver, start_receiver
from tests.keys import SECRET_KEY

pytestmark = pytest.mark.slow


def _read_all(db, ledger, after=None):
    out, cursor = [], after
    while True:
        page = service.list_events(db, ledger_ik=ledger, after=cursor, first=500)
        if not page.events:
            return out, cursor
        out += page.events
        cursor = page.end_cursor


def test_the_feed_has_no_gaps_after_5000_posts_across_16_partitions(pipeline):
    ledger = pipeline.new_ledger()
    entries = workload("feed", 5000, 400, seed=15)
    partitions = Settings.from_env().partitions
    assert len({jobs.partition_of(user_path(e["parameters"]["user"]), partitions)
                for e in entries}) == partitions == 16
    polled: list = []
    stop = threading.Event()

    def poll():  # a consumer reading while the workers post
        cursor = None
        while not stop.is_set():
            page = service.list_events(pipeline.db, ledger_ik=ledger, after=cursor, first=500)
            polled.extend(page.events)
            cursor = page.end_cursor
            if not page.events:
                time.sleep(0.05)
        more, _ = _read_all(pipeline.db, ledger, cursor)
        polled.extend(more)

    reader = threading.Thread(target=poll)
    reader.start()
    pipeline.worker(concurrency=2)
    try:
        pipeline.submit_all(ledger, entries, batch=500)
        statuses = pipeline.wait_finished(ledger, 5000, timeout=180)
    finally:
        time.sleep(0.5)
        stop.set()
        reader.join(60)
    with pipeline.db.transaction() as conn:
        rows = conn.execute(sa.text(
            "SELECT ik, status, entry_id, id FROM posting_jobs WHERE ledger_ik = :l "
            "ORDER BY id"), {"l": ledger}).all()
    posted = {r.entry_id: r.ik for r in rows if r.status == jobs.POSTED}
    failed = {str(r.id) for r in rows if r.status == jobs.FAILED}
    assert posted and failed and len(statuses) == 5000

    # Every posted entry once, every failed job once, nothing else, no repeats.
    assert len({e.id for e in polled}) == len(polled)
    assert sorted(e.payload["id"] for e in polled if e.type == "entry.posted") == sorted(posted)
    assert {e.payload["id"] for e in polled if e.type == "job.failed"} == failed
    # Each user's entries in the feed in submission order (a partition's order). A batch's
    # job.failed events follow its entry.posted ones: same transaction, raised at its end.
    order = {e["ik"]: i for i, e in enumerate(entries)}
    user_of = {e["ik"]: e["parameters"]["user"] for e in entries}
    by_user: dict[str, list[int]] = {}
    for e in polled:
        if e.type != "entry.posted":
            continue
        ik = e.payload["ik"]
        by_user.setdefault(user_of[ik], []).append(order[ik])
    assert all(seq == sorted(seq) for seq in by_user.values())
    # A reader starting afterwards reads the very same sequence.
    again, _ = _read_all(pipeline.db, ledger)
    assert [e.id for e in again] == [e.id for e in polled]


def test_a_worker_killed_mid_delivery_redelivers_with_the_same_webhook_id(pipeline, db):
    receiver = Receiver(hold=threading.Event())
    server = start_receiver(receiver)
    config = Settings(database_url=pipeline.env["DATABASE_URL"], secret_key=SECRET_KEY,
                      webhook_allow_private=True)
    ledger = pipeline.new_ledger()
    made = service.create_webhook_endpoint(db, config, url=receiver.url,
                                           events=["entry.posted"], ledger_ik=ledger)
    receiver.secret = made.secret
    for i in range(3):
        service.add_ledger_entry(db, ledger, service.EntryRequest(
            ik=f"k{i}", type="deposit", parameters={"user": "kim", "amount": "5"}))
    env = {"LEDGER_WEBHOOK_ALLOW_PRIVATE": "true", "LEDGER_WEBHOOK_EVERY_SECONDS": "0.2",
           "LEDGER_SECRET_KEY": SECRET_KEY.reveal()}
    try:
        first = pipeline.worker(partitions=[], beat=True, **env)
        assert receiver.arrived.wait(60), first.log_tail()
        held = receiver.requests[0].webhook_id
        # SIGKILL the whole worker (main process and pool child) while the receiver holds
        # the request: it never learns the answer.
        os.killpg(first.pid, signal.SIGKILL)
        first.proc.wait(10)
        receiver.hold.set()
        receiver.hold = None
        pipeline.worker(partitions=[], beat=True, **env)
        # The held request counts as answered on the receiver's side only.
        got = receiver.wait_delivered(4, seconds=60)
        feed = [e.id for e in service.list_events(db, ledger_ik=ledger,
                                                  types=["entry.posted"]).events]
        ids = [r.webhook_id for r in got]
        # The interrupted event came again, same id, then the rest, each verified.
        assert held == feed[0]
        assert ids == [held] + feed
        assert all(r.verified for r in receiver.requests)
    finally:
        server.shutdown()

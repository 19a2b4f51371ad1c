"""A served API process freezes what it built to start (ledger.heap), so that full garbage
collections stop walking it; an app made in a process that goes on to make others does not."""
from __future__ import annotations

import gc
import os
import subprocess
import sys
import weakref
from pathlib import Path

from api.app import create_app
from ledger import heap
from ledger.settings import Settings

REPO = Path(__file__).resolve().parents[2]

# In a process of its own: a freeze would outlive the test in pytest's.
PROBE = r'''
import gc
from fastapi.testclient import TestClient
from api.app import app_from_env

app = app_from_env()
before = gc.get_freeze_count()
with TestClient(app) as client:
    status = client.get("/healthz").status_code
    print(before, gc.get_freeze_count(), status)
'''


def _run(script: str, database_url: str, redis_url: str) -> list[int]:
    """The numbers ``script`` prints last, run in a process of its own on these servers."""
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url,
           "PYTHONPATH": str(REPO)}
    probe = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=120)
    assert probe.returncode == 0, probe.stderr
    return [int(n) for n in probe.stdout.splitlines()[-1].split()]


def test_a_served_app_freezes_its_startup_heap(database_url, redis_url):
    before, during, status = _run(PROBE, database_url, redis_url)
    assert before == 0 and status == 200
    # The schema, the tables and the modules alone are far more than this.
    assert during > 50_000, during


WORKER_PROBE = r'''
import gc
from celery import signals
import workers.app

before = gc.get_freeze_count()
signals.worker_process_init.send(sender=None)  # what a pool process gets once started
print(before, gc.get_freeze_count())
'''


def test_a_worker_pool_process_freezes_its_startup_heap(database_url, redis_url):
    before, after = _run(WORKER_PROBE, database_url, redis_url)
    assert before == 0 and after > 50_000, (before, after)


def test_an_app_made_for_a_test_freezes_nothing():
    assert not getattr(create_app(Settings()).state, "freeze_heap", False)


def test_freeze_startup_collects_the_garbage_then_freezes_the_rest():
    class Cycle:
        pass

    garbage = Cycle()
    garbage.me = garbage
    gone = weakref.ref(garbage)
    del garbage
    kept = Cycle()
    kept.me = kept
    try:
        frozen = heap.freeze_startup()
        assert gone() is None, "garbage was frozen instead of collected"
        # A frozen object that dies leaves the frozen set, and other threads of the test
        # process may free some meanwhile: the count can only have fallen.
        assert 0 < gc.get_freeze_count() <= frozen
        # Out of the collector's generations: no collection walks it any more.
        assert all(o is not kept for o in gc.get_objects())
    finally:
        gc.unfreeze()
    assert any(o is kept for o in gc.get_objects())

"""api.graphql.execution.Workers: the GraphQL requests' threads and their hand-back to the
event loop."""
from __future__ import annotations

import asyncio
import contextvars
import threading
import time

import pytest

from api.graphql.execution import Workers

caller = contextvars.ContextVar("caller", default=None)


def run(coro):
    return asyncio.run(coro)


def test_results_errors_and_context_come_back_to_the_caller():
    workers = Workers(4, "t")

    async def main():
        loop = asyncio.get_running_loop()
        caller.set("request-7")
        ok, bad = loop.create_future(), loop.create_future()
        workers.submit(loop, ok,
                       lambda x: (x * 2, caller.get(), threading.current_thread().name), 21)
        workers.submit(loop, bad, lambda: 1 / 0)
        value, seen, thread = await ok
        assert (value, seen) == (42, "request-7") and thread.startswith("t_")
        with pytest.raises(ZeroDivisionError):
            await bad

    try:
        run(main())
    finally:
        workers.close()


def test_never_more_calls_at_once_than_threads_and_every_call_runs():
    workers = Workers(3, "t")
    lock = threading.Lock()
    running = {"now": 0, "most": 0}

    def call(i):
        with lock:
            running["now"] += 1
            running["most"] = max(running["most"], running["now"])
        time.sleep(0.01)
        with lock:
            running["now"] -= 1
        return i

    async def main():
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in range(30)]
        for i, f in enumerate(futures):
            workers.submit(loop, f, call, i)
        assert await asyncio.gather(*futures) == list(range(30))

    try:
        run(main())
    finally:
        workers.close()
    assert running["most"] == 3


def test_a_call_whose_caller_stopped_waiting_is_skipped():
    workers = Workers(1, "t")
    started = threading.Event()
    release = threading.Event()
    ran = []

    async def main():
        loop = asyncio.get_running_loop()
        first, second = loop.create_future(), loop.create_future()
        workers.submit(loop, first, lambda: (started.set(), release.wait(5)))
        workers.submit(loop, second, ran.append, "second")
        await asyncio.to_thread(started.wait, 5)
        second.cancel()  # timed out or gone while queued behind the first
        release.set()
        await first
        probe = loop.create_future()
        workers.submit(loop, probe, lambda: "after")
        assert await probe == "after"

    try:
        run(main())
    finally:
        workers.close()
    assert ran == []


def test_closed_workers_refuse_work_and_drop_what_waits():
    workers = Workers(1, "t")
    release = threading.Event()
    ran = []

    async def main():
        loop = asyncio.get_running_loop()
        busy, queued = loop.create_future(), loop.create_future()
        workers.submit(loop, busy, release.wait, 5)
        workers.submit(loop, queued, ran.append, "queued")
        await asyncio.sleep(0.05)
        workers.close()
        with pytest.raises(asyncio.CancelledError):
            await queued  # never started: its caller hears so at once
        release.set()
        assert await busy is True  # the running call finishes and answers
        with pytest.raises(RuntimeError):
            workers.submit(loop, loop.create_future(), ran.append, "late")
        await asyncio.sleep(0.05)

    run(main())
    assert ran == []


def test_an_answer_for_a_closed_loop_is_dropped_quietly():
    workers = Workers(1, "t")
    release = threading.Event()
    loop = asyncio.new_event_loop()
    answer = loop.create_future()
    workers.submit(loop, answer, release.wait, 5)
    loop.close()
    release.set()
    probe_loop = asyncio.new_event_loop()
    try:
        probe = probe_loop.create_future()
        workers.submit(probe_loop, probe, lambda: "still working")
        assert probe_loop.run_until_complete(probe) == "still working"
    finally:
        probe_loop.close()
        workers.close()

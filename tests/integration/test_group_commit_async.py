"""Group commit for callers on event loops (``post_async``), against the real PostgreSQL:
they share batches with each other and with callers in threads, each gets the answer posting
one by one in the committer's order gives, transient faults stay unseen, and a caller that
goes away, or a loop that closes, leaves every other caller answered."""
from __future__ import annotations

import asyncio
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import service
from ledger.errors import LedgerError, NotFoundError
from ledger.service import GroupCommitter
from tests.integration.helpers import new_ledger, own, seed000_schema
from tests.integration.test_group_commit import (FAULTS, OPS, USERS, Recorder,
                                                 assert_same_as_one_by_one,
                                                 assert_transient_faults_unseen, committer_with,
                                                 deposit, fund, mixed_requests, ops_requests,
                                                 transfer)
from tests.integration.test_races import race


def on_loops(loops: int, calls: list) -> list:
    """Run the coroutine functions ``calls`` spread over ``loops`` event loops, each in its
    own thread, all at once; their outcomes (an exception as the outcome) in order."""
    outcomes: list = [None] * len(calls)
    start = threading.Barrier(loops)

    def loop_thread(k: int) -> None:
        async def main():
            mine = list(range(k, len(calls), loops))
            start.wait()
            got = await asyncio.gather(*(calls[i]() for i in mine), return_exceptions=True)
            for i, outcome in zip(mine, got):
                outcomes[i] = outcome
        asyncio.run(main())

    threads = [threading.Thread(target=loop_thread, args=(k,)) for k in range(loops)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return outcomes


def loops_and_threads(committer, ledger_ik: str, requests: list, on_loop: list[bool],
                      loops: int = 1) -> list:
    """Post ``requests`` all at once, each from one of ``loops`` event loops where
    ``on_loop`` says so and from its own thread otherwise; the outcomes in order."""
    looped = [i for i in range(len(requests)) if on_loop[i]]
    threaded = [i for i in range(len(requests)) if not on_loop[i]]
    outcomes: list = [None] * len(requests)

    def in_threads():
        if threaded:
            got = race(len(threaded), lambda k: committer.post(ledger_ik, requests[threaded[k]]))
            for i, outcome in zip(threaded, got):
                outcomes[i] = outcome
    beside = threading.Thread(target=in_threads)
    beside.start()
    got = on_loops(loops, [lambda i=i: committer.post_async(ledger_ik, requests[i])
                           for i in looped])
    beside.join(60)
    for i, outcome in zip(looped, got):
        outcomes[i] = outcome
    return outcomes


def test_posts_from_event_loops_and_threads_share_batches_as_one_by_one(db, unique):
    ledger_ik = new_ledger(db, unique, seed000_schema(unique("wallet")))
    fund(db, ledger_ik, hot=100)
    recorder = Recorder(pause=0.05)
    committer = committer_with(db, recorder)
    requests = mixed_requests(200)
    outcomes = loops_and_threads(committer, ledger_ik, requests,
                                 [bool(i % 3) for i in range(len(requests))], loops=2)

    assert all(o is not None for o in outcomes)
    assert committer.stats.shared > 0 and committer.stats.batches < len(requests)
    kinds = {type(o).__name__ for o in outcomes}
    assert {"PostResult", "BadRequestError"} <= kinds, kinds
    assert_same_as_one_by_one(db, unique, ledger_ik, requests, outcomes, recorder.order, USERS)


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_transient_failure_is_retried_unseen_by_callers_on_loops(db, unique, fault):
    assert_transient_faults_unseen(db, unique, fault, lambda committer, ledger_ik, requests:
                                   on_loops(1, [lambda r=r: committer.post_async(ledger_ik, r)
                                                for r in requests]))


def test_atomic_posts_from_a_loop_stay_all_or_none(db, unique):
    ledger_ik = new_ledger(db, unique, seed000_schema(unique("wallet")))
    fund(db, ledger_ik, hot=10)
    committer = GroupCommitter(db)
    units = [[transfer(f"ok-{i}-a", "hot", "q", 1), deposit(f"ok-{i}-b", "q", 1)] if i % 2
             else [deposit(f"bad-{i}-a", "q", 1), transfer(f"bad-{i}-b", "nobody", "q", 1)]
             for i in range(20)]
    outcomes = on_loops(1, [lambda u=u: committer.post_atomic_async(ledger_ik, u)
                            for u in units])
    for unit, outcome in zip(units, outcomes):
        if unit[0].ik.startswith("bad"):
            assert isinstance(outcome, LedgerError) and outcome.code == "condition_failed"
            assert outcome.index == 1
            for request in unit:
                with pytest.raises(NotFoundError):
                    service.get_ledger_entry(db, ledger_ik=ledger_ik, ik=request.ik)
        else:
            assert [r.entry.ik for r in outcome] == [r.ik for r in unit]
    # Ten units went through, each a transfer and a deposit of 1 to q: hot is spent.
    assert own(db, ledger_ik, "liabilities/users:q/available") == 20
    assert own(db, ledger_ik, "liabilities/users:hot/available") == 0
    assert service.audit(db, ledger_ik) == []


def test_a_lone_post_from_a_loop_goes_at_once_and_refusals_are_its_own(db, unique):
    ledger_ik = new_ledger(db, unique, seed000_schema(unique("wallet")))
    committer = GroupCommitter(db)

    async def main():
        first = await committer.post_async(ledger_ik, deposit("a", "a", 5))
        again = await committer.post_async(ledger_ik, deposit("a", "a", 5))
        with pytest.raises(LedgerError) as refused:
            await committer.post_async(ledger_ik, transfer("t", "a", "b", 6))
        with pytest.raises(NotFoundError):
            await committer.post_async("no-such-ledger-" + unique("x"), deposit("a", "a", 1))
        return first, again, refused.value
    first, again, refused = asyncio.run(main())
    assert (first.is_ik_replay, again.is_ik_replay, again.entry.id) == (False, True, first.entry.id)
    assert (refused.code, refused.index) == ("condition_failed", 0)
    assert committer.stats.batches == 4 and committer.stats.shared == 0


def test_a_caller_that_goes_away_leaves_the_others_answered(db, unique):
    """Cancelled while its batch is in flight: its entry is posted once or not at all, a
    retry with the same ik says which, and the callers beside it get their answers."""
    ledger_ik = new_ledger(db, unique, seed000_schema(unique("wallet")))
    recorder = Recorder(pause=0.3, pauses=1)
    committer = committer_with(db, recorder)

    async def main():
        first = asyncio.ensure_future(committer.post_async(ledger_ik, deposit("first", "a", 1)))
        await asyncio.sleep(0.05)  # the first batch is in flight: these queue behind it
        gone = asyncio.ensure_future(committer.post_async(ledger_ik, deposit("gone", "a", 2)))
        stays = asyncio.ensure_future(committer.post_async(ledger_ik, deposit("stays", "a", 3)))
        await asyncio.sleep(0.05)
        gone.cancel()
        return await first, await stays, gone.cancelled()
    first, stays, cancelled = asyncio.run(main())
    assert cancelled
    assert (first.entry.ik, stays.entry.ik) == ("first", "stays")
    retried = committer.post(ledger_ik, deposit("gone", "a", 2))
    assert retried.entry.ik == "gone"
    assert own(db, ledger_ik, "liabilities/users:a/available") == 6
    assert service.audit(db, ledger_ik) == []


def test_a_loop_that_closes_mid_batch_does_not_stop_the_committer(db, unique):
    ledger_ik = new_ledger(db, unique, seed000_schema(unique("wallet")))
    recorder = Recorder(pause=0.3, pauses=1)
    committer = committer_with(db, recorder)

    async def leave_early():
        waiting = asyncio.ensure_future(committer.post_async(ledger_ik, deposit("left", "a", 1)))
        await asyncio.sleep(0.05)
        waiting.cancel()
    asyncio.run(leave_early())  # the loop is closed before the batch commits
    time.sleep(0.5)
    after = committer.post(ledger_ik, deposit("after", "a", 2))
    assert after.entry.ik == "after" and not after.is_ik_replay
    assert committer.post(ledger_ik, deposit("left", "a", 1)).is_ik_replay
    assert own(db, ledger_ik, "liabilities/users:a/available") == 3


def test_the_lead_passes_between_threads_and_loops(db, unique):
    """One entry a batch, callers queued alternately in threads and on a loop behind a
    paused first batch: each batch's leader hands the next to whoever waits first, a
    thread in its own time, a loop's caller through the committer's threads."""
    ledger_ik = new_ledger(db, unique, seed000_schema(unique("wallet")))
    recorder = Recorder(pause=0.3, pauses=1)
    committer = committer_with(db, recorder, max_batch=1)
    loop = asyncio.new_event_loop()
    running = threading.Thread(target=loop.run_forever)
    running.start()
    answers: dict = {}

    def in_thread(ik):
        thread = threading.Thread(target=lambda: answers.__setitem__(
            ik, committer.post(ledger_ik, deposit(ik, "a", 1))))
        thread.start()
        return thread.join

    def on_loop(ik):
        future = asyncio.run_coroutine_threadsafe(
            committer.post_async(ledger_ik, deposit(ik, "a", 1)), loop)
        return lambda: answers.__setitem__(ik, future.result(30))
    try:
        waits = []
        for ik, how in (("t1", in_thread), ("l1", on_loop), ("t2", in_thread), ("l2", on_loop),
                        ("l3", on_loop), ("t3", in_thread)):
            waits.append(how(ik))
            time.sleep(0.05)  # queued in this order behind the paused first batch
        for wait in waits:
            wait()
    finally:
        loop.call_soon_threadsafe(loop.stop)
        running.join()
        loop.close()
    assert [r.ik for r in recorder.order] == ["t1", "l1", "t2", "l2", "l3", "t3"]
    assert {ik: a.entry.ik for ik, a in answers.items()} == {ik: ik for ik in answers}
    assert len(answers) == 6 and committer.stats.batches == 6
    assert own(db, ledger_ik, "liabilities/users:a/available") == 6


@settings(max_examples=10, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ops=OPS, on_loop=st.lists(st.booleans(), min_size=24, max_size=24))
def test_property_callers_on_loops_and_in_threads_answer_as_one_by_one(db, unique, ops,
                                                                       on_loop):
    """Deposits, transfers that a hot sender can afford or not, and repeated iks, each
    posted from a loop or a thread as drawn, all at once: every answer, and the books, are
    what posting them one by one in the committer's order gives."""
    ledger_ik = new_ledger(db, unique, seed000_schema(unique("wallet")))
    fund(db, ledger_ik, hot=100)
    requests = ops_requests(ops)
    recorder = Recorder(pause=0.02, pauses=1)
    committer = committer_with(db, recorder)
    outcomes = loops_and_threads(committer, ledger_ik, requests, on_loop)
    assert_same_as_one_by_one(db, unique, ledger_ik, requests, outcomes, recorder.order,
                              ["hot", *[f"u{i}" for i in range(4)]])

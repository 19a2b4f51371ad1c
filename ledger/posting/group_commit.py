"""Group commit: concurrent synchronous posts to one ledger share one transaction.

A commit costs a WAL flush and a round trip per statement whether it carries one entry or
five hundred, and a hot sender's balance row is locked once per transaction however many
entries debit it (the batch's locking statement takes each key once). So the posts that
arrive while a ledger's batch is in flight wait for it and then go together, in the
engine's per-entry refusal mode: each caller gets its own answer, exactly as if the posts
had run one by one in arrival order (the engine checks conditions in order on running
balances).

Leader/follower, no fixed window: the first caller posts at once (a lone request never
waits); callers arriving meanwhile queue up, and when the batch commits the oldest of them
leads the next batch, up to ``max_batch`` entries. Each caller answers only once its own
batch has committed.

A caller on an event loop (``post_async``) waits on an asyncio future instead of a
thread: no thread is taken per request. Its batches are led by the committer's own
threads, which settle each loop's futures of a batch with one wake-up of that loop. With a
thread per waiting request, the wake-ups (about three a request) were a fifth of the API's
CPU at 32 concurrent posts (README, Benchmarks).

Batches are per ledger (the engine posts to one ledger at a time), and one batch per
ledger is in flight per committer: the database serialises a ledger's hot rows anyway, and
the queue is what turns that wait into batching.

A batch whose accounts and balance rows exist is three round trips: BEGIN, the engine's one
statement that claims, locks and reads (``posting.engine._CLAIM_AND_LOCK``), and the writes
with the COMMIT. The ledger's row and schema head are not read again for each batch: the
committer remembers them, the statement reads the head as it is, and a batch whose
remembered head turns out stale is posted again on a fresh read (``StaleHead``) before
anyone is answered.
"""
from __future__ import annotations

import asyncio
import contextvars
import itertools
import logging
import queue as queues
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

from sqlalchemy.engine import Connection

from ledger.commands import EntryRequest
from ledger.db import Database, Pending
from ledger.errors import InternalError, LedgerError
from ledger.ledgers import Ledger, hand_schema_head, load_ledger
from ledger.posting.engine import MAX_BATCH, StaleHead, post_entries
from ledger.posting.model import PostResult
from ledger.schema.store import head_seen
from ledger.settings import DEFAULT_GROUP_COMMIT_MAX_BATCH, Settings

# Large enough that a batch amortises its commit to nothing, small enough that one batch's
# statements stay well under a second and under the engine's MAX_BATCH.
DEFAULT_MAX_BATCH = DEFAULT_GROUP_COMMIT_MAX_BATCH
# Ledgers whose row and schema head a committer remembers; past it they are forgotten and
# read again once each.
MAX_REMEMBERED = 10_000

log = logging.getLogger("ledger.posting")


@dataclass
class CommitStats:
    """What the committer did, for tests and /metrics: batches posted, entries in them,
    batches that carried more than one request, the largest, transaction attempts (more
    than batches when a transient fault was retried) and batches that fell back to posting
    each entry alone."""

    batches: int = 0
    entries: int = 0
    shared: int = 0
    largest: int = 0
    attempts: int = 0
    fallbacks: int = 0


@dataclass
class _Unit:
    """One caller's request: a single entry, or an atomic list (all or none). A caller in
    a thread waits on ``done``; one on an event loop on ``future`` (``done`` is None)."""

    requests: list[EntryRequest]
    atomic: bool
    seq: int = 0
    done: threading.Event | None = field(default_factory=threading.Event)
    lead: bool = False
    # A list of results (one per request) or the exception this caller must see.
    outcome: Any = None
    future: asyncio.Future | None = None

    def answer(self) -> list[PostResult]:
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome


class GroupCommitter:
    """One per process (per ``Database``), shared by every thread that posts.

    ``on_batch(ledger_ik, requests)`` is called once per batch as it is taken, in arrival
    order; ``before_commit(conn, ledger_ik, requests)`` inside each transaction attempt,
    after the entries are posted and before their last writes go out with the commit. Both are for observation and fault injection (tests).
    ``observe(entries, seconds)`` after each batch is answered: its size and how long it
    took to post (the API's /metrics)."""

    def __init__(self, db: Database, *, max_batch: int = DEFAULT_MAX_BATCH,
                 window_ms: int = 0, on_batch: Callable | None = None,
                 before_commit: Callable | None = None,
                 observe: Callable[[int, float], None] | None = None):
        self.db = db
        self.observe = observe
        self.max_batch = min(max(1, max_batch), MAX_BATCH)
        self.window_seconds = max(0, window_ms) / 1000
        self.on_batch = on_batch
        self.before_commit = before_commit
        self.stats = CommitStats()
        self._lock = threading.Lock()
        self._seq = itertools.count()
        # Invariant: a ledger has a queue exactly while one of its callers leads.
        self._queues: dict[str, deque[_Unit]] = {}
        # Each ledger as a batch last read it, with its schema head: the next batch skips
        # that round trip, and its locking statement checks the head (StaleHead).
        self._known: dict[str, tuple[Ledger, tuple[int, int, int]]] = {}
        # The threads that lead batches for callers on event loops.
        self._leaders = _Leaders("group-commit")

    @classmethod
    def of(cls, db: Database, settings: Settings,
           observe: Callable[[int, float], None] | None = None) -> "GroupCommitter":
        return cls(db, max_batch=settings.group_commit_max_batch,
                   window_ms=settings.group_commit_window_ms, observe=observe)

    def post(self, ledger_ik: str, request: EntryRequest) -> PostResult:
        """Post one entry; its own refusal is raised to this caller alone."""
        return self._submit(ledger_ik, _Unit([request], atomic=False))[0]

    def post_atomic(self, ledger_ik: str, requests: list[EntryRequest]) -> list[PostResult]:
        """Post entries all or none, as one unit in arrival order."""
        requests = list(requests)
        return self._submit(ledger_ik, _Unit(requests, atomic=len(requests) != 1))

    async def post_async(self, ledger_ik: str, request: EntryRequest) -> PostResult:
        """``post`` for a caller on an event loop: the loop is free while the entry waits."""
        return (await self._submit_async(ledger_ik, [request], atomic=False))[0]

    async def post_atomic_async(self, ledger_ik: str,
                                requests: list[EntryRequest]) -> list[PostResult]:
        """``post_atomic`` for a caller on an event loop."""
        requests = list(requests)
        return await self._submit_async(ledger_ik, requests, atomic=len(requests) != 1)

    def known_ledger_id(self, ledger_ik: str) -> int | None:
        """The id of a ledger a batch of this committer posted to (a ledger's id never
        changes), or None when it is not remembered: a reader of a post's answer skips
        looking it up."""
        known = self._known.get(ledger_ik)
        return None if known is None else known[0].id

    def _submit(self, ledger_ik: str, unit: _Unit) -> list[PostResult]:
        if not self._enqueue(ledger_ik, unit):
            unit.done.wait()
            if not unit.lead:
                return unit.answer()
        self._lead(ledger_ik)
        return unit.answer()

    def _submit_async(self, ledger_ik: str, requests: list[EntryRequest], *,
                      atomic: bool) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        unit = _Unit(requests, atomic=atomic, done=None, future=loop.create_future())
        if self._enqueue(ledger_ik, unit):
            self._leaders.submit(self._lead_on, ledger_ik)
        # Awaited without a shield: a caller that goes away (its request cancelled) leaves
        # its entry to be posted or not, as a caller in a thread that gives up does.
        return unit.future

    def _enqueue(self, ledger_ik: str, unit: _Unit) -> bool:
        """Queue ``unit``; True when its caller must lead (no batch of the ledger in flight)."""
        with self._lock:
            unit.seq = next(self._seq)
            queue = self._queues.get(ledger_ik)
            leads = queue is None
            if leads:
                queue = self._queues[ledger_ik] = deque()
            queue.append(unit)
        return leads

    def _lead_on(self, ledger_ik: str) -> None:
        """In one of the committer's threads: lead the ledger's batches while the oldest
        caller waiting is on an event loop."""
        while self._lead(ledger_ik, keep=True):
            pass

    def _lead(self, ledger_ik: str, keep: bool = False) -> bool:
        """Post the batch at the head of the ledger's queue (the leader's own unit is its
        first), answer its callers, and hand the lead to the oldest caller still waiting.
        When that caller is on an event loop the lead goes to the committer's threads, or
        with ``keep`` stays with this call's caller (True is returned)."""
        batch: list[_Unit] = []
        posted = False
        try:
            if self.window_seconds:
                time.sleep(self.window_seconds)
            with self._lock:
                batch = self._take(self._queues[ledger_ik])
            if self.on_batch is not None:
                self.on_batch(ledger_ik, [r for u in batch for r in u.requests])
            started = time.perf_counter()
            self._post_batch(ledger_ik, batch)
            if self.observe is not None:
                self.observe(sum(len(u.requests) for u in batch), time.perf_counter() - started)
            posted = True
        finally:
            _answer(batch)
            kept = self._pass_lead(ledger_ik, keep=keep and posted)
        return kept

    def _pass_lead(self, ledger_ik: str, *, keep: bool) -> bool:
        with self._lock:
            queue = self._queues[ledger_ik]
            if not queue:
                del self._queues[ledger_ik]
                return False
            if queue[0].done is not None:  # a thread: it leads in its own time
                queue[0].lead = True
                queue[0].done.set()
                return False
        if not keep:
            self._leaders.submit(self._lead_on, ledger_ik)
        return keep

    def _take(self, queue: deque[_Unit]) -> list[_Unit]:
        """The next batch: single entries in arrival order up to ``max_batch``, stopping
        before an atomic unit (which goes alone) and before an ik already in the batch (the
        engine refuses a batch's repeated ik; posted one by one, the second is a replay or
        a conflict, so it waits for the first to commit)."""
        first = queue.popleft()
        batch = [first]
        if first.atomic:
            return batch
        iks = {first.requests[0].ik}
        while queue and len(batch) < self.max_batch:
            unit = queue[0]
            if unit.atomic or unit.requests[0].ik in iks:
                break
            iks.add(unit.requests[0].ik)
            batch.append(queue.popleft())
        return batch

    def _post_batch(self, ledger_ik: str, batch: list[_Unit]) -> None:
        requests = [r for u in batch for r in u.requests]
        with self._lock:
            self.stats.batches += 1
            self.stats.entries += len(requests)
            self.stats.shared += len(batch) > 1
            self.stats.largest = max(self.stats.largest, len(batch))
        if batch[0].atomic:
            batch[0].outcome = self._attempt(ledger_ik, requests, report=False)
            return
        outcome = self._attempt(ledger_ik, requests, report=True)
        if _unavailable(outcome):
            # Retried to exhaustion on transient faults: no entry caused it, and posting
            # each alone would only make every caller wait through the retries again.
            for unit in batch:
                unit.outcome = InternalError(outcome.code, outcome.message)
            return
        if isinstance(outcome, BaseException) and len(batch) > 1:
            # Not a refusal (those come back in place): a bug or a database error one entry
            # caused. Posted alone, in order, each caller gets its own true answer.
            with self._lock:
                self.stats.fallbacks += 1
            for unit in batch:
                unit.outcome = _single(self._attempt(ledger_ik, unit.requests, report=True))
            return
        if isinstance(outcome, BaseException):
            batch[0].outcome = outcome
            return
        for unit, result in zip(batch, outcome):
            unit.outcome = _single([result])

    def _attempt(self, ledger_ik: str, requests: list[EntryRequest], *, report: bool):
        """The results of posting ``requests`` in one transaction (retried whole on
        transient faults by ``Database.run``), or the exception that stopped it."""
        def run(conn: Connection) -> list:
            with self._lock:
                self.stats.attempts += 1
                known = self._known.get(ledger_ik)
            if known is None:
                ledger = load_ledger(conn, ledger_ik)
            else:
                ledger = known[0]
                hand_schema_head(conn, ledger.id, known[1])
            # The batch's last writes go out with its COMMIT: one round trip fewer while it
            # holds its balance rows, which is what a hot sender's posts queue behind.
            pending = Pending()
            try:
                results = post_entries(conn, ledger, requests,
                                       refusals="report" if report else "raise",
                                       pending=pending, verify_head=known is not None)
                if self.before_commit is not None:
                    self.before_commit(conn, ledger_ik, requests)
                pending.commit(conn)
            except LedgerError:  # a refusal: the head it rests on was checked
                raise
            except BaseException:
                # Whatever failed, the next attempt reads the ledger afresh.
                self._forget(ledger_ik)
                raise
            if known is None:
                self._remember(ledger_ik, ledger, head_seen(conn, ledger.id))
            return results
        try:
            try:
                return self.db.run(run)
            except StaleHead:  # forgotten above: posted again at once, on a fresh read
                return self.db.run(run)
        except Exception as exc:  # handed to the caller(s) it belongs to
            return exc

    def _remember(self, ledger_ik: str, ledger: Ledger, head: tuple[int, int, int] | None) -> None:
        if head is None:
            return
        with self._lock:
            if len(self._known) >= MAX_REMEMBERED:
                self._known.clear()
            self._known[ledger_ik] = (ledger, head)

    def _forget(self, ledger_ik: str) -> None:
        with self._lock:
            self._known.pop(ledger_ik, None)


def _answer(batch: list[_Unit]) -> None:
    """Wake each caller of a finished batch: a thread at once; the callers on one event loop
    together, with one call into that loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Unit]] = {}
    for unit in batch:
        if unit.outcome is None:  # interrupted before an answer: never leave one hanging
            unit.outcome = InternalError("internal_error", "the post was interrupted; "
                                         "retry it with the same ik")
        if unit.done is not None:
            unit.done.set()
        else:
            by_loop.setdefault(unit.future.get_loop(), []).append(unit)
    for loop, units in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle, units)
        except RuntimeError:  # the loop closed meanwhile: nobody waits for these answers
            pass


def _settle(units: list[_Unit]) -> None:
    """On the callers' event loop: hand each its outcome (one gone already is skipped)."""
    for unit in units:
        if unit.future.done():
            continue
        if isinstance(unit.outcome, BaseException):
            unit.future.set_exception(unit.outcome)
        else:
            unit.future.set_result(unit.outcome)


class _Leaders:
    """Threads, started as needed and kept, that run the leads handed to them in order,
    each in the context (request id, trace) of the caller that queued it."""

    def __init__(self, name: str):
        self.name = name
        self._queue: queues.SimpleQueue = queues.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0

    def submit(self, fn: Callable, *args: Any) -> None:
        with self._lock:
            if self._idle:
                self._idle -= 1
            else:
                self._threads += 1
                threading.Thread(target=self._work, name=f"{self.name}_{self._threads}",
                                 daemon=True).start()
        self._queue.put((contextvars.copy_context(), fn, args))

    def _work(self) -> None:
        while True:
            context, fn, args = self._queue.get()
            try:
                context.run(fn, *args)
            except BaseException:  # every caller was answered in _lead's finally
                log.exception("a group-commit lead failed")
            with self._lock:
                self._idle += 1


def _unavailable(outcome: Any) -> bool:
    return isinstance(outcome, InternalError) and outcome.code == "database_unavailable"


def _single(result: Any) -> Any:
    """One request's outcome as its caller sees it when posting alone: the exception that
    stopped its transaction, its refusal (located at index 0, like the engine's single
    posts), or a list of its one result."""
    if isinstance(result, BaseException):
        return result
    (one,) = result
    if isinstance(one, LedgerError):
        one.index = 0
        return one
    return [one]

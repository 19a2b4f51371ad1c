"""How one GraphQL request runs: off the event loop, bounded, measured before it runs, and
stopped at its deadline.

Parsing, measuring, validating and executing all happen in a worker thread, at most
``graphql_concurrency`` requests at a time (that many threads; the others wait in their
queue, within their timeout), so a costly document never holds the event loop: /healthz
and the token endpoint keep answering. The threads are the runner's own (`Workers`), each
answer handed back as the result of a plain asyncio future: anyio's ``to_thread`` (its
limiter, cancel scopes and wake-ups) and then a ThreadPoolExecutor's futures (a lock and a
condition each, chained to an asyncio future under ``wait_for``) cost the event loop more
per request (README, Benchmarks).

Parsed and validated documents are kept by their text (a bounded LRU): the
SDK sends the same few documents over and over.

A known document that only posts (addLedgerEntry / addLedgerEntries, `posting.ON_LOOP`)
runs on the event loop instead: its resolvers await the group committer, so no thread
waits for each post, and no request hops between threads (a hop each way was a context
switch, a fifth of the API's CPU at 32 concurrent posts). A field that would read the
database there stops the run (``OffLoop``) and the document runs again in a thread,
answering what was already posted from ``Context.posted``; that document then runs in
threads from the start. At most ``concurrency`` documents are on the loop at once; more
take the threads' queue.
"""
from __future__ import annotations

import asyncio
import contextvars
import queue
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from graphql import (DocumentNode, FieldNode, GraphQLError, OperationDefinitionNode,
                     OperationType, get_operation_ast, parse, validate)

from api.graphql.limits import Limits, TooComplex, check
from api.graphql.posting import ON_LOOP
from api.graphql.prepared import TIMEOUT_CODE, timeout_error
from api.graphql.schema import schema

# Documents longer than this are parsed each time rather than kept: a cache of a few
# hundred legitimate documents stays small, and a flood of huge ones cannot fill memory.
CACHEABLE_CHARS = 32 * 1024
CACHE_SIZE = 512
# A few seconds past the deadline, the answer goes out even if a resolver is still stuck
# (its thread finishes on its own: the statement timeout bounds its queries).
GRACE_SECONDS = 5.0
# The parser recurses per nesting level; far below Python's recursion limit, and far
# above what a legitimate document needs.
MAX_TOKENS = 50_000


@dataclass
class Parsed:
    document: DocumentNode | None
    errors: list[dict] | None = None  # parse errors (document None) or validation errors
    validated: bool = False
    # By operation name: whether that operation only posts (runs on the event loop).
    posts_only: dict[str | None, bool] = field(default_factory=dict)

    def only_posts(self, operation: OperationDefinitionNode, name: str | None) -> bool:
        found = self.posts_only.get(name)
        if found is None:
            found = self.posts_only[name] = _only_posts(operation)
        return found


def _only_posts(operation: OperationDefinitionNode) -> bool:
    """A mutation whose root selections are only ``ON_LOOP`` fields (and __typename), with
    no fragment or directive to interpret at the root."""
    return operation.operation == OperationType.MUTATION and all(
        isinstance(s, FieldNode) and not s.directives
        and (s.name.value in ON_LOOP or s.name.value == "__typename")
        for s in operation.selection_set.selections)


class DocumentCache:
    def __init__(self, size: int = CACHE_SIZE):
        self.size = size
        self._lock = threading.Lock()
        self._items: OrderedDict[str, Parsed] = OrderedDict()

    def known(self, text: str) -> Parsed | None:
        """The document, if it is kept and was validated without errors; None otherwise
        (nothing is parsed)."""
        with self._lock:
            found = self._items.get(text)
        return found if found is not None and found.validated and not found.errors else None

    def get(self, text: str) -> Parsed:
        with self._lock:
            found = self._items.get(text)
            if found is not None:
                self._items.move_to_end(text)
                return found
        found = _parse(text)
        if len(text) <= CACHEABLE_CHARS:
            with self._lock:
                self._items[text] = found
                while len(self._items) > self.size:
                    self._items.popitem(last=False)
        return found


def _parse(text: str) -> Parsed:
    try:
        return Parsed(parse(text, max_tokens=MAX_TOKENS))
    except GraphQLError as exc:
        return Parsed(None, [exc.formatted])
    except RecursionError:
        return Parsed(None, [{"message": "the document nests too deeply to parse",
                              "extensions": {"code": "query_too_complex"}}])


@dataclass
class Answer:
    """What the endpoint sends: a body and a status, and for /metrics the operation's
    type and the execution result when it ran."""

    payload: dict
    status: int = 200
    operation: str | None = None
    result: Any = None
    headers: dict | None = None
    context: Any = None


def too_complex(message: str) -> Answer:
    return Answer({"errors": [{"message": message,
                               "extensions": {"code": TooComplex.code}}]}, 400)


def timed_out(seconds: float) -> Answer:
    error = timeout_error(seconds)
    return Answer({"errors": [{"message": error.message,
                               "extensions": {"code": TIMEOUT_CODE, "typename": error.typename,
                                              "retryable": True}}]},
                  503, headers={"Retry-After": "1"})


@dataclass
class Request:
    query: str
    variables: dict | None
    operation_name: str | None


class Runner:
    """One per app: the document cache, the limits, and the gate of concurrent requests."""

    def __init__(self, limits: Limits, concurrency: int, timeout_seconds: float):
        self.limits = limits
        self.concurrency = concurrency
        self.timeout_seconds = timeout_seconds
        self.cache = DocumentCache()
        self._workers = Workers(concurrency, "graphql")
        # Documents running on the event loop now (only its thread counts them).
        self.on_loop = 0

    async def run(self, request: Request, execute: Callable[[Parsed, Any, float], Answer],
                  on_loop: Callable[[Parsed, Any, float], Awaitable[Answer | None]] | None = None
                  ) -> Answer:
        """``execute(parsed, operation, deadline)`` runs in a worker thread once the
        document passed every check, with the caller's context variables (its request id
        on log lines, its trace). A known document that only posts is first given to
        ``on_loop`` (same arguments), on the event loop; it answers None when the document
        must run in a thread after all."""
        deadline = time.monotonic() + self.timeout_seconds
        if on_loop is not None:
            answer = await self._run_on_loop(request, on_loop, deadline)
            if answer is not None:
                return answer
        loop = asyncio.get_running_loop()
        answer = loop.create_future()
        self._workers.submit(loop, answer, self._prepare_and_run, request, execute, deadline)
        # Still queued then: it never runs. Running: its thread finishes on its own (the
        # statement timeout bounds its queries) and its answer is dropped.
        expiry = loop.call_later(self.timeout_seconds + GRACE_SECONDS, _expire, answer,
                                 self.timeout_seconds)
        try:
            return await answer
        finally:
            expiry.cancel()

    def close(self) -> None:
        """Stop taking work; a thread still running finishes on its own."""
        self._workers.close()

    async def _run_on_loop(self, request: Request, on_loop, deadline: float) -> Answer | None:
        parsed = self.cache.known(request.query)
        if parsed is None or self.on_loop >= self.concurrency:
            return None
        operation = get_operation_ast(parsed.document, request.operation_name)
        if operation is None or not parsed.only_posts(operation, request.operation_name):
            return None
        try:
            check(schema._schema, parsed.document, operation, request.variables, self.limits)
        except TooComplex as exc:
            return too_complex(exc.message)
        self.on_loop += 1
        try:
            async with asyncio.timeout(self.timeout_seconds + GRACE_SECONDS):
                answer = await on_loop(parsed, operation, deadline)
        except TimeoutError:
            return timed_out(self.timeout_seconds)
        finally:
            self.on_loop -= 1
        if answer is None:  # it needed a thread: so will the next ones, most likely
            parsed.posts_only[request.operation_name] = False
        return answer

    def _prepare_and_run(self, request: Request, execute, deadline: float) -> Answer:
        if time.monotonic() > deadline:  # waited its whole turn at the gate
            return timed_out(self.timeout_seconds)
        parsed = self.cache.get(request.query)
        if parsed.document is None:
            return Answer({"errors": parsed.errors}, 400)
        operation = get_operation_ast(parsed.document, request.operation_name)
        if operation is None:
            name = request.operation_name
            return Answer({"errors": [{"message": "operationName: name the operation to run"
                                       if name is None else
                                       f"operationName: no operation {name!r} in the document"}]},
                          400)
        try:
            check(schema._schema, parsed.document, operation, request.variables, self.limits)
        except TooComplex as exc:
            return too_complex(exc.message)
        if not parsed.validated:
            # Benign race: two threads may validate the same new document; same answer.
            parsed.errors = [e.formatted for e in validate(schema._schema, parsed.document)]
            parsed.validated = True
        if parsed.errors:
            return Answer({"errors": parsed.errors}, 400)
        return execute(parsed, operation, deadline)


class Workers:
    """Up to ``size`` threads, started as the work needs them, running calls submitted from
    event loops in order: each call runs with the submitter's context variables, and its
    result (or exception) settles the submitter's asyncio future on its loop. A call whose
    future is already done when its turn comes (timed out, cancelled) is skipped."""

    def __init__(self, size: int, name: str):
        self.size = max(1, size)
        self.name = name
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0  # threads that will take the next call without one being started
        self._closed = False

    def submit(self, loop: asyncio.AbstractEventLoop, answer: asyncio.Future,
               fn: Callable, *args: Any) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("the workers were closed")
            if self._idle:
                self._idle -= 1
            elif self._threads < self.size:
                self._threads += 1
                threading.Thread(target=self._work, name=f"{self.name}_{self._threads}",
                                 daemon=True).start()
        self._queue.put((contextvars.copy_context(), loop, answer, fn, args))

    def close(self) -> None:
        """Take no more calls; those not started never start (their callers' futures are
        cancelled), those running finish and answer."""
        with self._lock:
            self._closed = True
            threads = self._threads
        try:
            while True:
                item = self._queue.get_nowait()
                if item is not None:
                    _hand_back(item[1], _cancel, item[2], None)
        except queue.Empty:
            pass
        for _ in range(threads):
            self._queue.put(None)

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            context, loop, answer, fn, args = item
            if not answer.done():  # a benign race: at worst a call runs for nothing
                try:
                    result = context.run(fn, *args)
                except BaseException as exc:  # handed to the awaiting request
                    _hand_back(loop, _settle_error, answer, exc)
                else:
                    _hand_back(loop, _settle, answer, result)
            with self._lock:
                self._idle += 1


def _hand_back(loop: asyncio.AbstractEventLoop, settle: Callable, answer: asyncio.Future,
               value: Any) -> None:
    try:
        loop.call_soon_threadsafe(settle, answer, value)
    except RuntimeError:  # the loop closed meanwhile: nobody waits for this answer
        pass


def _settle(answer: asyncio.Future, value: Any) -> None:
    if not answer.done():
        answer.set_result(value)


def _cancel(answer: asyncio.Future, _: Any) -> None:
    answer.cancel()


def _expire(answer: asyncio.Future, seconds: float) -> None:
    _settle(answer, timed_out(seconds))


def _settle_error(answer: asyncio.Future, exc: BaseException) -> None:
    if not answer.done():
        answer.set_exception(exc)

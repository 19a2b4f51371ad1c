"""Accepting entry requests as posting jobs, and reading or pruning them."""
from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, replace
from datetime import timedelta
from functools import cached_property
from typing import Any, Callable, Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledger import fastjson
from ledger.commands import EntryRequest
from ledger.db import Database, fetch
from ledger.errors import BadRequestError, InternalError, LedgerError, NotFoundError
from ledger.holds.create import job_hold
from ledger.jobs.claims import work_in, work_partition
from ledger.jobs.waiting import listener_of
from ledger.jobs.model import (
    _JOB_COLUMNS,
    MAX_PAGE,
    MAX_SUBMISSION,
    MAX_WAIT_SECONDS,
    PENDING,
    STATUSES,
    Job,
    JobPage,
    Submission,
    WorkResult,
    _job,
    partition_of,
)
from ledger.ledgers import Ledger, get_ledger, load_ledger
from ledger.schema.compile import compile_entry, partition_key
from ledger.schema.store import load_schema

log = logging.getLogger(__name__)


def _relocate(exc: LedgerError, index: int) -> LedgerError:
    """Point an error about one entry at its place in the submission: the engine names
    fields ``entry.parameters.x``; the caller sent ``entries[index].parameters.x``."""
    where = f"entries[{index}]"
    if exc.field and exc.field.startswith("entry"):
        exc.field = where + exc.field[len("entry"):]
    elif exc.field and not exc.field.startswith("entries["):
        exc.field = f"{where}.{exc.field}"
    elif exc.field is None:
        exc.field = where
    if exc.message.startswith("entry.") or exc.message.startswith("entry:"):
        exc.message = where + exc.message[len("entry"):]
    elif not exc.message.startswith("entries["):
        exc.message = f"{where}: {exc.message}"
    exc.index = index
    return exc


@dataclass
class _Accepted:
    request: dict
    partition: int
    partition_key: str

    @cached_property
    def canonical(self) -> str:
        # Only needed when an ik repeats or already has a job: computed then, not for all.
        return fastjson.canonical(self.request)


def _prepare(schema, ledger: Ledger, entries: Sequence[Any], partitions: int,
             hold: Any = None) -> list[_Accepted]:
    """Validate every entry against the ledger's schema, without posting anything.
    Conditions are not checked here: they depend on balances at posting time. ``hold``
    (``{"expiresAt"}``, or an entry's own ``hold``): the job posts it as a hold."""
    prepared: list[_Accepted] = []
    for index, data in enumerate(entries):
        try:
            if isinstance(data, dict) and "ledger" in data:
                named = data.get("ledger")
                named_ik = named.get("ik") if isinstance(named, dict) else None
                if named_ik != ledger.ik:
                    raise BadRequestError(
                        "invalid_input",
                        f"entry.ledger.ik: this entry names ledger {named_ik!r} but was sent "
                        f"to ledger {ledger.ik!r}", field="entry.ledger.ik")
            request = EntryRequest.from_input(data, field="entry")
            own = data.get("hold") if isinstance(data, dict) else None
            if own is not None or hold is not None:
                request = replace(request, hold_expires_at=job_hold(
                    own if own is not None else hold, request,
                    "entry.hold" if own is not None else "hold"))
            key = partition_key(schema, request)
            if key == request.ik:
                # The key falls back to the ik both for an entry that guards or touches no
                # strong account and for one that does not compile; compile it to tell
                # which (any other key means it compiled). Compiling is most of the cost of
                # accepting a job, so it is done once when it can be.
                compile_entry(schema, request)
        except LedgerError as exc:
            raise _relocate(exc, index) from None
        doc = request.to_json()
        prepared.append(_Accepted(doc, partition_of(key, partitions), key))
    return prepared


# The batches travel as one json document with one-letter keys, as the engine's do (see
# ledger/posting/idempotency.py, before _INSERT_ENTRIES).
_INSERT_JOBS = sa.text("""
    INSERT INTO posting_jobs (ledger_id, ledger_ik, ik, request, partition, partition_key,
                              trace_context)
    SELECT :ledger_id, :ledger_ik, r.k, r.q, r.p, r.y, :trace_context
    FROM json_to_recordset(CAST(:rows AS json))
         AS r(o int, k text, q json, p int, y text)
    ORDER BY r.o
    ON CONFLICT (ledger_id, ik) DO NOTHING
    RETURNING id, ik, partition, created""")


_EXISTING_JOBS = sa.text(
    "SELECT " + _JOB_COLUMNS + ", request FROM posting_jobs "
    "WHERE ledger_id = :ledger_id AND ik = ANY(:iks)")


def _first_of_each_ik(prepared: list[_Accepted]) -> tuple[dict[str, int], list[_Accepted]]:
    """The same ik twice in one submission is one job if the requests agree, else refused.
    Returns (index of each ik's first entry, the first entries in submission order)."""
    first_by_ik: dict[str, int] = {}
    for index, item in enumerate(prepared):
        ik = item.request["ik"]
        if ik in first_by_ik:
            if prepared[first_by_ik[ik]].canonical != item.canonical:
                raise BadRequestError(
                    "ik_conflict", f"entries[{index}].ik: ik {ik!r} is also used by "
                    f"entries[{first_by_ik[ik]}] with a different request",
                    field=f"entries[{index}].ik", index=index)
        else:
            first_by_ik[ik] = index
    return first_by_ik, [prepared[i] for i in sorted(first_by_ik.values())]


def _accept(conn: Connection, ledger: Ledger, unique: list[_Accepted], rows: str,
            first_by_ik: dict[str, int], trace_context: str | None = None) -> dict[str, Job]:
    """Insert the jobs; an ik that has a job already gets it back if the requests agree."""
    params = {"ledger_id": ledger.id, "ledger_ik": ledger.ik, "trace_context": trace_context}
    # A job just inserted is pending and has no outcome: only what the row assigned
    # comes back.
    by_ik = {ik: Job(id, ledger.ik, ik, PENDING, partition, created)
             for id, ik, partition, created in fetch(
                 conn, _INSERT_JOBS, {**params, "rows": rows})}
    others = [a for a in unique if a.request["ik"] not in by_ik]
    if not others:
        return by_ik
    existing = conn.execute(_EXISTING_JOBS, {
        "ledger_id": ledger.id, "iks": [a.request["ik"] for a in others]}).all()
    stored = {r.ik: r for r in existing}
    for a in others:
        ik = a.request["ik"]
        row = stored.get(ik)
        if row is None:  # lost a race with a submission that then rolled back
            raise InternalError("database_unavailable",
                                "a concurrent submission of the same ik did not "
                                "complete; retry the request")
        request = row.request if isinstance(row.request, dict) else json.loads(row.request)
        # Read back and written again, so a row an older version stored (lines and
        # parameters in the wire form) compares equal to the same request now.
        if fastjson.canonical(EntryRequest.from_json(request).to_json()) != a.canonical:
            index = first_by_ik[ik]
            raise BadRequestError(
                "ik_conflict", f"entries[{index}].ik: ik {ik!r} already has a job "
                f"(id {row.id}) with a different request", field=f"entries[{index}].ik",
                index=index)
        by_ik[ik] = _job(row)
    return by_ik


def submit_entries(db: Database, ledger_ik: str, entries: Sequence[Any], *, partitions: int,
                   after_commit: Callable[[list[int]], None] | None = None,
                   wait: float = 0.0, trace_context: str | None = None,
                   hold: Any = None,
                   observe: Callable[[WorkResult], None] | None = None) -> Submission:
    """Accept entry requests (wire dicts, as in the seeds' LedgerEntryInput) as posting
    jobs of ledger ``ledger_ik``: all of them or, on the first bad one, none (the error
    names its index and field). An ik that already has a job gets that job back; the same
    ik with a different request is refused (``ik_conflict``), as the synchronous path does.
    ``partitions`` is N, the deployment's partition count (``Settings.partitions``).

    ``after_commit(partitions)`` runs once the jobs are durable, to wake the workers of the
    partitions that have pending jobs; if it fails the jobs stay accepted and the relay
    wakes their partitions later. With ``wait`` > 0 the caller first posts its jobs'
    partitions itself when no worker holds them (``_drain``), rings only those still
    pending, then waits up to ``wait`` seconds (capped) in all for the jobs to finish and
    returns what is known then. ``trace_context``: the
    submitting request's W3C ``traceparent``, kept on each job for the worker's trace.
    ``hold`` (``{"expiresAt": time}``, for every entry without a ``hold`` of its own):
    the worker posts those entries as holds (ledger/holds/) instead of outright.
    ``observe(result)`` after each batch a waiting caller posts (the API's job counters).
    """
    if not isinstance(entries, (list, tuple)) or not entries:
        raise BadRequestError("invalid_input", "entries: expected one entry or a non-empty "
                              "list of entries", field="entries")
    if len(entries) > MAX_SUBMISSION:
        raise BadRequestError("invalid_input", f"entries: at most {MAX_SUBMISSION} entries "
                              f"per request, got {len(entries)}", field="entries")
    def accept(conn: Connection) -> tuple[list[_Accepted], dict[str, Job]]:
        # Checked against the schema in the transaction that inserts the jobs: one
        # transaction, not one to read the ledger and another to write.
        ledger, schema = _ledger_and_schema(conn, ledger_ik)
        prepared = _prepare(schema, ledger, entries, partitions, hold)
        first_by_ik, unique = _first_of_each_ik(prepared)
        rows = fastjson.dumps([{"o": n, "k": a.request["ik"], "q": a.request,
                                "p": a.partition, "y": a.partition_key}
                               for n, a in enumerate(unique)])
        return prepared, _accept(conn, ledger, unique, rows, first_by_ik, trace_context)

    deadline = time.monotonic() + min(max(wait, 0.0), MAX_WAIT_SECONDS)
    if wait > 0 and _DRAINING.acquire(blocking=False):
        # Before ringing: a worker woken first would take the partition from under us and
        # the caller would wait for its whole turn.
        try:
            submission = _accept_and_drain(db, accept, deadline, observe)
        finally:
            _DRAINING.release()
    else:
        prepared, by_ik = db.run(accept)
        submission = Submission([by_ik[item.request["ik"]] for item in prepared])
    if after_commit is not None and submission.pending_partitions:
        try:
            after_commit(submission.pending_partitions)
        except Exception:
            # The jobs are committed: failing the request now would make the caller retry
            # something already accepted. The relay rings these partitions later.
            log.warning("could not wake the workers of partitions %s; the relay will",
                        submission.pending_partitions, exc_info=True)
    if wait > 0:
        submission = Submission(wait_for_jobs(db, submission.jobs,
                                              max(deadline - time.monotonic(), 0.0)))
    return submission


def _ledger_and_schema(conn: Connection, ledger_ik: str):
    ledger = load_ledger(conn, ledger_ik)
    return ledger, load_schema(conn, ledger.id)


# One waiting caller per process posts its partitions at a time; the others meanwhile leave
# their jobs to the workers, which post what many callers accepted in one batch. With two
# per process, REST at 8 and 32 clients lost a fifth of its throughput to one-job
# transactions (bench/api.py); with one it kept it, and a lone request still gains.
_DRAINING = threading.BoundedSemaphore(1)
# Batches a waiting caller posts at most per partition: enough for its own jobs behind a
# short queue; a longer backlog is the workers' (the caller then waits for them).
DRAIN_BATCHES = 4


def _accept_and_drain(db: Database, accept: Callable, deadline: float,
                      observe: Callable[[WorkResult], None] | None) -> Submission:
    """A caller that waits posts its jobs' partitions itself rather than wait for a worker
    to take the doorbell (a broker hop and a worker's turn: most of a lone job's latency).
    It is the workers' own `work_in`, so order, the single consumer per partition (a
    worker holding the partition makes this a no-op: ``busy``) and refusals are theirs.

    The first batch of each partition is posted in the transaction that accepts the jobs:
    one commit, and its flush to disk, instead of two. Should that transaction fail for any
    reason but the submission itself, the jobs are accepted alone, as without waiting, and
    left to the workers: a request that waits is never refused for a fault of posting."""
    def accept_and_post(conn: Connection):
        prepared, by_ik = accept(conn)
        jobs = [by_ik[item.request["ik"]] for item in prepared]
        results = [work_in(conn, db, partition)
                   for partition in Submission(jobs).pending_partitions]
        return jobs, results

    try:
        jobs, results = db.run(accept_and_post)
    except Exception as exc:  # noqa: BLE001 - a fault of posting is not the caller's
        if isinstance(exc, LedgerError) and exc.typename != "InternalError":
            raise  # the submission's own fault (a bad entry, no such ledger, an ik conflict)
        jobs, results = _accept_alone(db, accept)
    for result in results:
        if observe is not None:
            observe(result)
    more = {r.partition for r in results if r.more and not r.busy}
    return Submission(_drain(db, Submission(jobs), deadline, observe, more))


def _accept_alone(db: Database, accept: Callable) -> tuple[list[Job], list[WorkResult]]:
    log.warning("could not post the jobs of a waiting request as it submitted them; "
                "they are accepted for the workers", exc_info=True)
    prepared, by_ik = db.run(accept)
    return [by_ik[item.request["ik"]] for item in prepared], []


def _drain(db: Database, submission: Submission, deadline: float,
           observe: Callable[[WorkResult], None] | None, partitions: set[int]) -> list[Job]:
    """The further batches (``DRAIN_BATCHES`` in all) of ``partitions``, whose first batch
    was full, each in its own transaction; then the jobs as they are now. Any fault leaves
    the jobs pending, and their partitions are rung after this."""
    for partition in sorted(partitions):
        try:
            for _ in range(DRAIN_BATCHES - 1):
                if time.monotonic() >= deadline:
                    break
                result = work_partition(db, partition)
                if observe is not None:
                    observe(result)
                if result.busy or not result.more:
                    break
        except Exception:  # noqa: BLE001 - the jobs are durable; a worker posts them
            log.warning("could not post partition %s for a waiting request; a worker will",
                        partition, exc_info=True)
    pending = [j.id for j in submission.jobs if j.status == PENDING]
    fresh = {j.id: j for j in _jobs_by_id(db, pending)} if pending else {}
    return [fresh.get(j.id, j) for j in submission.jobs]


def wait_for_jobs(db: Database, jobs: Sequence[Job], seconds: float) -> list[Job]:
    """The jobs as they are once all are finished or ``seconds`` (capped) have passed:
    woken by the notification of the transaction that finishes them (ledger/jobs/waiting)."""
    return listener_of(db).wait_for(lambda ids: _jobs_by_id(db, ids), jobs, seconds)


_JOBS_BY_ID = sa.text("SELECT " + _JOB_COLUMNS + " FROM posting_jobs WHERE id = ANY(:ids)")


def _jobs_by_id(db: Database, ids: Iterable[int]) -> list[Job]:
    ids = list(ids)
    # One statement: outside a transaction, spared BEGIN and COMMIT (a waiting request
    # reads its jobs again and again).
    with db.autocommit() as conn:
        return [_job(r) for r in conn.execute(_JOBS_BY_ID, {"ids": ids}).all()]


def _parse_job_id(job_id: Any) -> int | None:
    # Only the id as the API writes it: int() would also take " 7", "+7", "07", "7_0" and
    # other scripts' digits, so several spellings would name one job.
    text = str(job_id)
    if not (text.isascii() and text.isdigit()) or text.startswith("0"):
        return None
    value = int(text)
    return value if 0 < value < 2**63 else None


def get_job(db: Database, job_id: Any) -> Job:
    value = _parse_job_id(job_id)
    jobs = _jobs_by_id(db, [value]) if value is not None else []
    if not jobs:
        raise NotFoundError("job_not_found", f"id: no job {job_id!r}", field="id")
    return jobs[0]


def list_jobs(db: Database, ledger_ik: str, status: str | None = None, *,
              first: int = 50, after: str | None = None) -> JobPage:
    """A ledger's jobs, newest first, ``first`` at a time; pass the page's ``end_cursor``
    as ``after`` for the next page."""
    if status is not None and status not in STATUSES:
        raise BadRequestError("invalid_input", f"status: expected one of "
                              f"{', '.join(STATUSES)}, got {status!r}", field="status")
    if not isinstance(first, int) or not 1 <= first <= MAX_PAGE:
        raise BadRequestError("invalid_input", f"first: expected 1 to {MAX_PAGE}",
                              field="first")
    before = None
    if after is not None:
        before = _parse_job_id(after)
        if before is None:
            raise BadRequestError("invalid_input", f"after: not a cursor of this list: "
                                  f"{after!r}", field="after")
    ledger = get_ledger(db, ledger_ik)

    def read(conn: Connection):
        where = ["ledger_id = :ledger_id"]
        params: dict[str, Any] = {"ledger_id": ledger.id, "limit": first + 1}
        if status is not None:
            where.append("status = :status")
            params["status"] = status
        if before is not None:
            where.append("id < :before")
            params["before"] = before
        return conn.execute(sa.text(
            "SELECT " + _JOB_COLUMNS + " FROM posting_jobs WHERE " + " AND ".join(where)
            + " ORDER BY id DESC LIMIT :limit"), params).all()

    rows = db.run(read)
    jobs = [_job(r) for r in rows[:first]]
    return JobPage(jobs, str(jobs[-1].id) if jobs else None, len(rows) > first)


def prune_finished(db: Database, older_than: timedelta, *, chunk: int = 5000) -> int:
    """Delete jobs finished more than ``older_than`` ago, in chunks so no transaction holds
    many row locks or runs long. Returns how many were deleted."""
    total = 0
    while True:
        def delete(conn: Connection) -> int:
            # A job finished before the cutoff was created before it too: the condition on
            # `created` lets the (cheap, block-range) index find the candidates.
            return conn.execute(sa.text(
                "DELETE FROM posting_jobs WHERE id IN ("
                " SELECT id FROM posting_jobs WHERE created < clock_timestamp() - :age"
                " AND status <> 'pending' AND finished < clock_timestamp() - :age"
                " LIMIT :chunk)"),
                {"age": older_than, "chunk": chunk}).rowcount

        deleted = db.run(delete)
        total += deleted
        if deleted < chunk:
            return total

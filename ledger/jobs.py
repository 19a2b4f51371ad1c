"""Asynchronous posting: the outbox of posting jobs and the work done on it.

A job is one entry request accepted for later posting. Accepting writes the job rows of a
submission in one transaction; a worker later posts the pending jobs of one partition, in
submission order, through the same engine as the synchronous path
(`ledger.posting.post_entries`), and records each outcome on its row.

Everything here is plain database work, so the API and the workers stay thin: they call
one function of this module and translate its result. This module knows nothing of Celery;
whoever sends the "doorbell" that wakes a partition's worker passes it in as a callback.
"""
from __future__ import annotations

import json
import logging
import os
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any, Callable, Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, OperationalError

from ledger import fastjson, posting
from ledger.ledgers import get_ledger
from ledger.db import Database, is_retryable
from ledger.errors import BadRequestError, InternalError, LedgerError, NotFoundError
from ledger.model import EntryRequest, Ledger, Posted
from ledger.schema import compile_entry

log = logging.getLogger(__name__)

PENDING, POSTED, FAILED = "pending", "posted", "failed"
STATUSES = (PENDING, POSTED, FAILED)

MAX_SUBMISSION = 1000
DEFAULT_PARTITIONS = 16
DEFAULT_BATCH = 1000
MAX_WAIT_SECONDS = 30.0
MAX_PAGE = 500

# First key of the two-int advisory lock, so our per-partition locks cannot collide with
# advisory locks taken by anything else on the same database ("LJ" for ledger jobs).
_LOCK_NAMESPACE = 0x4C4A


def partition_count() -> int:
    """N, the number of partitions. Changing it moves keys to other partitions, so change
    it only while no job is pending (a job keeps the partition it was accepted into)."""
    value = int(os.environ.get("LEDGER_PARTITIONS", DEFAULT_PARTITIONS))
    if value < 1:
        raise ValueError("LEDGER_PARTITIONS must be at least 1")
    return value


def partition_of(key: str, partitions: int | None = None) -> int:
    # crc32, never hash(): str hashes are salted per process, and the API process that
    # accepts a job and every worker must agree on its partition.
    return zlib.crc32(key.encode("utf-8")) % (partitions or partition_count())


def queue_name(partition: int) -> str:
    """The broker queue whose consumer posts ``partition``. The prefix is configurable so
    two deployments (or test runs) can share one Redis without stealing each other's work."""
    prefix = os.environ.get("LEDGER_QUEUE_PREFIX", "ledger.post")
    return f"{prefix}.{partition}"


def doorbell_key(partition: int) -> str:
    """A broker key present while a doorbell of ``partition`` waits in its queue, so senders
    can skip ringing again: a waiting doorbell will see their jobs anyway (its worker clears
    the key before it claims). It expires on its own, in case that doorbell was lost."""
    return queue_name(partition) + ".waiting"


DOORBELL_KEY_SECONDS = 60


# ---------------------------------------------------------------------------- jobs

@dataclass(frozen=True)
class Job:
    id: int
    ledger_ik: str
    ik: str
    status: str
    partition: int
    created: datetime
    finished: datetime | None = None
    entry_id: str | None = None
    is_ik_replay: bool | None = None
    error: dict | None = None

    @property
    def done(self) -> bool:
        return self.status != PENDING

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"id": str(self.id), "ik": self.ik, "status": self.status,
                               "ledger": {"ik": self.ledger_ik},
                               "created": self.created.isoformat()}
        if self.finished is not None:
            out["finished"] = self.finished.isoformat()
        if self.status == POSTED:
            out["entry"] = {"id": self.entry_id}
            out["isIkReplay"] = bool(self.is_ik_replay)
        if self.status == FAILED:
            out["error"] = self.error
        return out


@dataclass(frozen=True)
class JobPage:
    jobs: list[Job]
    end_cursor: str | None
    has_next_page: bool


_JOB_COLUMNS = ("id, ledger_ik, ik, status, partition, created, finished, entry_id, "
                "is_ik_replay, error")


def _job(row) -> Job:
    error = row.error
    if isinstance(error, str):
        error = json.loads(error)
    return Job(id=row.id, ledger_ik=row.ledger_ik, ik=row.ik, status=row.status,
               partition=row.partition, created=row.created, finished=row.finished,
               entry_id=row.entry_id, is_ik_replay=row.is_ik_replay, error=error)


# ---------------------------------------------------------------------------- accepting

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


def _prepare(schema, ledger: Ledger, entries: Sequence[Any], partitions: int
             ) -> list[_Accepted]:
    """Validate every entry against the ledger's schema, without posting anything.
    Conditions are not checked here: they depend on balances at posting time."""
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
            key = posting.partition_key(schema, request)
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


@dataclass(frozen=True)
class Submission:
    jobs: list[Job]

    @property
    def pending_partitions(self) -> list[int]:
        return sorted({j.partition for j in self.jobs if j.status == PENDING})


# The batches travel as one json document with one-letter keys, as the engine's do (see
# ledger/posting.py, before _INSERT_ENTRIES).
_INSERT_JOBS = sa.text("""
    INSERT INTO posting_jobs (ledger_id, ledger_ik, ik, request, partition, partition_key)
    SELECT :ledger_id, :ledger_ik, r.k, r.q, r.p, r.y
    FROM json_to_recordset(CAST(:rows AS json))
         AS r(o int, k text, q json, p int, y text)
    ORDER BY r.o
    ON CONFLICT (ledger_id, ik) DO NOTHING
    RETURNING id, ik, partition, created""")

_EXISTING_JOBS = sa.text(
    "SELECT " + _JOB_COLUMNS + ", request FROM posting_jobs "
    "WHERE ledger_id = :ledger_id AND ik = ANY(:iks)")


def submit_entries(db: Database, ledger_ik: str, entries: Sequence[Any], *,
                   after_commit: Callable[[list[int]], None] | None = None,
                   wait: float = 0.0) -> Submission:
    """Accept entry requests (wire dicts, as in the seeds' LedgerEntryInput) as posting
    jobs of ledger ``ledger_ik``: all of them or, on the first bad one, none (the error
    names its index and field). An ik that already has a job gets that job back; the same
    ik with a different request is refused (``ik_conflict``), as the synchronous path does.

    ``after_commit(partitions)`` runs once the jobs are durable, to wake the workers of the
    partitions that have pending jobs; if it fails the jobs stay accepted and the relay
    wakes their partitions later. With ``wait`` > 0, waits up to that many seconds
    (capped) for the jobs to finish and returns what is known then.
    """
    if not isinstance(entries, (list, tuple)) or not entries:
        raise BadRequestError("invalid_input", "entries: expected one entry or a non-empty "
                              "list of entries", field="entries")
    if len(entries) > MAX_SUBMISSION:
        raise BadRequestError("invalid_input", f"entries: at most {MAX_SUBMISSION} entries "
                              f"per request, got {len(entries)}", field="entries")
    ledger = get_ledger(db, ledger_ik)
    schema = db.run(lambda conn: posting.load_schema(conn, ledger.id))
    prepared = _prepare(schema, ledger, entries, partition_count())

    # The same ik twice in one submission is one job if the requests agree.
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
    unique = [prepared[i] for i in sorted(first_by_ik.values())]
    rows = fastjson.dumps([{"o": n, "k": a.request["ik"], "q": a.request, "p": a.partition,
                            "y": a.partition_key} for n, a in enumerate(unique)])

    def accept(conn: Connection) -> dict[str, Job]:
        params = {"ledger_id": ledger.id, "ledger_ik": ledger.ik}
        # A job just inserted is pending and has no outcome: only what the row assigned
        # comes back.
        by_ik = {ik: Job(id, ledger.ik, ik, PENDING, partition, created)
                 for id, ik, partition, created in conn.execute(
                     _INSERT_JOBS, {**params, "rows": rows})}
        others = [a for a in unique if a.request["ik"] not in by_ik]
        if others:
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

    by_ik = db.run(accept)
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
        submission = Submission(wait_for_jobs(db, submission.jobs, wait))
    return submission


def wait_for_jobs(db: Database, jobs: Sequence[Job], seconds: float) -> list[Job]:
    """The jobs as they are once all are finished or ``seconds`` (capped) have passed."""
    deadline = time.monotonic() + min(max(seconds, 0.0), MAX_WAIT_SECONDS)
    current = list(jobs)
    pause = 0.02
    while True:
        pending = [j.id for j in current if j.status == PENDING]
        if not pending or time.monotonic() >= deadline:
            return current
        time.sleep(min(pause, max(deadline - time.monotonic(), 0)))
        pause = min(pause * 2, 0.25)
        fresh = {j.id: j for j in _jobs_by_id(db, pending)}
        current = [fresh.get(j.id, j) for j in current]


def _jobs_by_id(db: Database, ids: Iterable[int]) -> list[Job]:
    ids = list(ids)

    def read(conn: Connection):
        return conn.execute(sa.text("SELECT " + _JOB_COLUMNS + " FROM posting_jobs "
                                    "WHERE id = ANY(:ids)"), {"ids": ids}).all()

    return [_job(r) for r in db.run(read)]


# ---------------------------------------------------------------------------- reading

def _parse_job_id(job_id: Any) -> int | None:
    try:
        value = int(str(job_id))
    except ValueError:
        return None
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


# ---------------------------------------------------------------------------- working

@dataclass
class WorkResult:
    """What one call of `work_partition` did."""

    partition: int
    busy: bool = False  # another worker holds the partition; nothing was done
    claimed: int = 0
    posted: int = 0
    failed: int = 0
    more: bool = False  # a full batch was claimed: more jobs may be waiting

    def __str__(self) -> str:
        if self.busy:
            return f"partition {self.partition}: busy"
        return (f"partition {self.partition}: {self.claimed} claimed, {self.posted} posted, "
                f"{self.failed} failed{', more waiting' if self.more else ''}")


# The claimed jobs come back as one JSON document (decoded by one C call) rather than a
# row each: reading a claim of 1,000 took 5 ms of the worker's CPU instead of 14.
_CLAIM = sa.text("""
    WITH claimed AS (
        SELECT id, ledger_id, ledger_ik, request FROM posting_jobs
        WHERE partition = :partition AND status = 'pending'
        ORDER BY id
        LIMIT :limit
        FOR UPDATE SKIP LOCKED)
    SELECT coalesce(json_agg(json_build_array(id, ledger_id, ledger_ik, request) ORDER BY id),
                    '[]')::text
    FROM claimed""")

_MARK = sa.text("""
    UPDATE posting_jobs AS j
    SET status = r.s, entry_id = r.e, is_ik_replay = r.p, error = r.x,
        finished = statement_timestamp()
    FROM json_to_recordset(CAST(:rows AS json))
         AS r(i bigint, s text, e text, p boolean, x jsonb)
    WHERE j.id = r.i AND j.status = 'pending'""")


@dataclass
class _Claimed:
    id: int
    ledger_id: int
    ledger_ik: str
    request: dict
    parsed: EntryRequest | None = None
    outcome: dict | None = field(default=None)


def is_transient(exc: BaseException) -> bool:
    """A fault of the moment (connection lost, deadlock, retryable LedgerError)."""
    if isinstance(exc, LedgerError):
        return bool(exc.retryable)
    if isinstance(exc, DBAPIError):
        return is_retryable(exc) or isinstance(exc, OperationalError)
    return False


def _refused(exc: BaseException) -> bool:
    """The engine's typed refusal of an entry, final whatever the state of the system: the
    one kind of failure recorded as a job's outcome. Anything else (the database gone, code
    deployed before its migration, a bug) rolls the whole batch back and propagates, so the
    jobs stay pending and post once the fault is fixed: a job accepted is never failed
    for a reason that is not its own."""
    return isinstance(exc, LedgerError) and not exc.retryable


def _failure(exc: LedgerError) -> dict:
    error = exc.to_dict()
    error.pop("index", None)  # its index in the worker's batch means nothing to a caller
    return error


class _Ledgers:
    """Ledgers by id. A ledger's identity never changes once created, so one lookup per
    process is enough."""

    def __init__(self):
        self._by_id: dict[int, Ledger] = {}

    def get(self, db: Database, ledger_id: int, ledger_ik: str) -> Ledger:
        ledger = self._by_id.get(ledger_id)
        if ledger is None:
            ledger = get_ledger(db, ledger_ik)
            self._by_id[ledger_id] = ledger
        return ledger


_ledgers = _Ledgers()


def _post_run(conn: Connection, ledger: Ledger, run: list[_Claimed]) -> None:
    """Post a run of one ledger's jobs, in order, recording each outcome on its job.

    One engine call for the whole run: the engine checks each entry against the balances
    the entries before it left and reports a refused one in its place
    (``refusals="report"``), so a bad entry fails alone and the rest posts in the same
    statements. Any other fault propagates and rolls the whole batch back.
    """
    todo = [job for job in run if job.outcome is None]
    if not todo:
        return
    with conn.begin_nested():
        results = posting.post_entries(conn, ledger, [j.parsed for j in todo],
                                       refusals="report", detail=False)
    for job, result in zip(todo, results, strict=True):
        if isinstance(result, LedgerError):
            if not _refused(result):
                raise result
            job.outcome = {"status": FAILED, "error": _failure(result)}
        else:
            _record([job], [result])


def _record(jobs: list[_Claimed], results: list[Posted]) -> None:
    for job, result in zip(jobs, results, strict=True):
        job.outcome = {"status": POSTED, "entry_id": result.entry_id,
                       "is_ik_replay": result.is_ik_replay}


def work_partition(db: Database, partition: int, *, limit: int = DEFAULT_BATCH) -> WorkResult:
    """Post up to ``limit`` pending jobs of ``partition``, oldest first, in one transaction.

    The advisory lock makes the partition single-consumer whatever the broker does (a
    duplicated message, two workers on one queue): a second caller gets ``busy`` at once
    instead of waiting, and posts nothing. Only the engine's refusal of an entry fails a
    job; any other fault rolls everything back and propagates (InternalError, the driver's
    error, a bug): the jobs stay pending for the caller to retry.
    """

    def work(conn: Connection) -> WorkResult:
        result = WorkResult(partition)
        locked = conn.execute(sa.text("SELECT pg_try_advisory_xact_lock(:ns, :p)"),
                              {"ns": _LOCK_NAMESPACE, "p": partition}).scalar()
        if not locked:
            result.busy = True
            return result
        claimed = [_Claimed(*job) for job in json.loads(
            conn.execute(_CLAIM, {"partition": partition, "limit": limit}).scalar())]
        result.claimed = len(claimed)
        result.more = len(claimed) == limit
        if not claimed:
            return result
        for job in claimed:
            try:
                job.parsed = EntryRequest.from_json(job.request)
            except LedgerError as exc:
                job.outcome = {"status": FAILED, "error": _failure(exc)}
        # Runs of consecutive jobs of one ledger, so submission order holds across the
        # whole partition even when ledgers interleave in it.
        start = 0
        while start < len(claimed):
            end = start
            while end < len(claimed) and claimed[end].ledger_id == claimed[start].ledger_id:
                end += 1
            run = claimed[start:end]
            try:
                ledger = _ledgers.get(db, run[0].ledger_id, run[0].ledger_ik)
            except NotFoundError as exc:
                for job in run:
                    job.outcome = {"status": FAILED, "error": _failure(exc)}
            else:
                _post_run(conn, ledger, run)
            start = end
        outcomes = [j.outcome for j in claimed]
        conn.execute(_MARK, {"rows": fastjson.dumps([
            {"i": j.id, "s": o["status"], "e": o.get("entry_id"),
             "p": o.get("is_ik_replay"), "x": o.get("error")}
            for j, o in zip(claimed, outcomes)])})
        result.posted = sum(1 for j in claimed if j.outcome["status"] == POSTED)
        result.failed = result.claimed - result.posted
        return result

    return db.run(work)


# ---------------------------------------------------------------------------- upkeep

def stale_partitions(db: Database, older_than: timedelta) -> list[int]:
    """Partitions with a job pending for longer than ``older_than``: its doorbell was lost
    (a crash between commit and enqueue, a flushed broker, a killed worker)."""

    def read(conn: Connection):
        return conn.execute(sa.text(
            "SELECT DISTINCT partition FROM posting_jobs "
            "WHERE status = 'pending' AND created < clock_timestamp() - :age "
            "ORDER BY partition"), {"age": older_than}).scalars().all()

    return list(db.run(read))


def pending_counts(db: Database) -> dict[int, int]:
    def read(conn: Connection):
        return conn.execute(sa.text(
            "SELECT partition, count(*) FROM posting_jobs WHERE status = 'pending' "
            "GROUP BY partition")).all()

    return {p: n for p, n in db.run(read)}


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

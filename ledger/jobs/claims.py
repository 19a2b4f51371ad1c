"""Working a partition: claiming its pending jobs, posting them, recording each outcome."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, OperationalError

from ledger import fastjson
from ledger.commands import EntryRequest
from ledger.db import Database, fetch, is_retryable
from ledger.errors import LedgerError, NotFoundError
from ledger.events.store import raise_events
from ledger.holds.create import create_holds
from ledger.jobs.model import DEFAULT_BATCH, FAILED, FINISHED_CHANNEL, POSTED, WorkResult
from ledger.ledgers import Ledger, get_ledger
from ledger.posting.engine import post_entries
from ledger.posting.model import Posted

log = logging.getLogger(__name__)


# First key of the two-int advisory lock, so our per-partition locks cannot collide with
# advisory locks taken by anything else on the same database ("LJ" for ledger jobs).
_LOCK_NAMESPACE = 0x4C4A
_LOCK = sa.text("SELECT pg_try_advisory_xact_lock(:ns, :p)")


# The claimed jobs come back as one JSON document (decoded by one C call) rather than a
# row each: reading a claim of 1,000 took 5 ms of the worker's CPU instead of 14.
_CLAIM = sa.text("""
    WITH claimed AS (
        SELECT id, ledger_id, ledger_ik, request, trace_context FROM posting_jobs
        WHERE partition = :partition AND status = 'pending'
        ORDER BY id
        LIMIT :limit
        FOR UPDATE SKIP LOCKED)
    SELECT coalesce(json_agg(json_build_array(id, ledger_id, ledger_ik, request, trace_context)
                             ORDER BY id), '[]')::text
    FROM claimed""")


# The jobs' outcomes, and a notification naming their partition that PostgreSQL delivers
# when the transaction commits: the requests waiting for them look again at once
# (ledger/jobs/waiting.py). In one statement: no round trip more per batch.
_MARK = sa.text("""
    WITH marked AS (
        UPDATE posting_jobs AS j
        SET status = r.s, entry_id = r.e, is_ik_replay = r.p, error = r.x,
            finished = statement_timestamp()
        FROM json_to_recordset(CAST(:rows AS json))
             AS r(i bigint, s text, e text, p boolean, x jsonb)
        WHERE j.id = r.i AND j.status = 'pending')
    SELECT pg_notify('""" + FINISHED_CHANNEL + """', CAST(:partition AS text))""")


@dataclass
class _Claimed:
    id: int
    ledger_id: int
    ledger_ik: str
    request: dict
    trace_context: str | None = None
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

    One engine call for each stretch of jobs posted outright: the engine checks each entry
    against the balances the entries before it left and reports a refused one in its place
    (``refusals="report"``), so a bad entry fails alone and the rest posts in the same
    statements. A job asking for a hold is created between them, in order, through
    ledger/holds/ (its own savepoint: a hold that does not fit fails alone). Any other
    fault propagates and rolls the whole batch back.
    """
    todo = [job for job in run if job.outcome is None]
    start = 0
    while start < len(todo):
        if todo[start].parsed.hold_expires_at is not None:
            _hold(conn, ledger, todo[start])
            start += 1
            continue
        end = start
        while end < len(todo) and todo[end].parsed.hold_expires_at is None:
            end += 1
        _post_outright(conn, ledger, todo[start:end])
        start = end


def _hold(conn: Connection, ledger: Ledger, job: _Claimed) -> None:
    try:
        with conn.begin_nested():
            made = create_holds(conn, ledger, [job.parsed], job.parsed.hold_expires_at)[0]
    except LedgerError as exc:
        if not _refused(exc):
            raise
        job.outcome = {"status": FAILED, "error": _failure(exc)}
        return
    job.outcome = {"status": POSTED, "entry_id": made.entry.id,
                   "is_ik_replay": made.is_ik_replay}


def _post_outright(conn: Connection, ledger: Ledger, todo: list[_Claimed]) -> None:
    with conn.begin_nested():
        results = post_entries(conn, ledger, [j.parsed for j in todo],
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


def _log_failures(claimed: list[_Claimed]) -> None:
    # One line per failed job, its ids as fields (JSON logs), so an operator can find the
    # request that was refused from the job id a caller quotes, or the reverse.
    for job in claimed:
        if job.outcome["status"] == FAILED:
            error = job.outcome["error"]
            log.info("job %s failed: %s", job.id, error.get("code"),
                     extra={"job_id": job.id, "ledger_ik": job.ledger_ik,
                            "entry_ik": job.parsed.ik if job.parsed else None,
                            "code": error.get("code")})


def _ik_of(job: _Claimed) -> str | None:
    if job.parsed is not None:
        return job.parsed.ik
    ik = job.request.get("ik") if isinstance(job.request, dict) else None
    return ik if isinstance(ik, str) else None


def _raise_failures(conn: Connection, claimed: list[_Claimed]) -> None:
    """job.failed for each failed job, in the batch's transaction: the event exists exactly
    when the failure does. A job whose ledger is gone names none (the event's reference to
    it would fail the whole batch)."""
    raise_events(conn, [
        (None if job.outcome["error"].get("code") == "ledger_not_found" else job.ledger_id,
         "job.failed", {"id": str(job.id), "ik": _ik_of(job), "error": job.outcome["error"]})
        for job in claimed if job.outcome["status"] == FAILED])


def work_partition(db: Database, partition: int, *, limit: int = DEFAULT_BATCH) -> WorkResult:
    """Post up to ``limit`` pending jobs of ``partition``, oldest first, in one transaction.

    The advisory lock makes the partition single-consumer whatever the broker does (a
    duplicated message, two workers on one queue): a second caller gets ``busy`` at once
    instead of waiting, and posts nothing. Only the engine's refusal of an entry fails a
    job; any other fault rolls everything back and propagates (InternalError, the driver's
    error, a bug): the jobs stay pending for the caller to retry.
    """
    return db.run(lambda conn: work_in(conn, db, partition, limit=limit))


def work_in(conn: Connection, db: Database, partition: int, *,
            limit: int = DEFAULT_BATCH) -> WorkResult:
    """`work_partition` in the caller's transaction (``db``: the ledgers' cache), which
    holds the partition's lock until it ends."""
    result = WorkResult(partition)
    # On the driver's own cursor (ledger.db.fetch), as the engine's statements: SQLAlchemy's
    # execution context cost more than each of these statements' round trip.
    [(locked,)] = fetch(conn, _LOCK, {"ns": _LOCK_NAMESPACE, "p": partition})
    if not locked:
        result.busy = True
        return result
    [(text,)] = fetch(conn, _CLAIM, {"partition": partition, "limit": limit})
    claimed = [_Claimed(*job) for job in json.loads(text)]
    result.claimed = len(claimed)
    result.trace_contexts = sorted({j.trace_context for j in claimed if j.trace_context})
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
    fetch(conn, _MARK, {"partition": partition, "rows": fastjson.dumps([
        {"i": j.id, "s": o["status"], "e": o.get("entry_id"),
         "p": o.get("is_ik_replay"), "x": o.get("error")}
        for j, o in zip(claimed, outcomes)])})
    result.posted = sum(1 for j in claimed if j.outcome["status"] == POSTED)
    result.failed = result.claimed - result.posted
    if result.failed:
        _log_failures(claimed)
        _raise_failures(conn, claimed)
    return result


def stale_partitions(db: Database, older_than: timedelta) -> list[int]:
    """Partitions with a job pending for longer than ``older_than``: its doorbell was lost
    (a crash between commit and enqueue, a flushed broker, a killed worker)."""

    def read(conn: Connection):
        return conn.execute(sa.text(
            "SELECT DISTINCT partition FROM posting_jobs "
            "WHERE status = 'pending' AND created < clock_timestamp() - :age "
            "ORDER BY partition"), {"age": older_than}).scalars().all()

    return list(db.run(read))

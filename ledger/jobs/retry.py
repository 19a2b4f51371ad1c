"""Sending a failed posting job back to its partition's queue, once what refused it is fixed
(an account opened, a schema version stored, funds deposited).

The job keeps its id, so it takes its place in its partition's order among the jobs still
pending; the engine posts it under the same ik, so a retry that crosses another post of
that ik replays instead of posting twice."""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledger.db import Database
from ledger.errors import BadRequestError, NotFoundError
from ledger.jobs.model import _JOB_COLUMNS, FAILED, Job, _job
from ledger.jobs.outbox import get_job
from ledger.ledgers import load_ledger

_RETRY = sa.text(
    "UPDATE posting_jobs SET status = 'pending', finished = NULL, error = NULL, "
    "entry_id = NULL, is_ik_replay = NULL "
    "WHERE id = :id AND ledger_id = :ledger_id AND status = 'failed' "
    "RETURNING " + _JOB_COLUMNS)


def retry_job(db: Database, ledger_ik: str, job_id: Any) -> Job:
    """The failed job ``job_id`` of ledger ``ledger_ik`` pending again (its ``error``
    cleared). ``job_not_found`` for a job of another ledger or none; ``job_not_failed``
    (naming its status) for a job pending or posted: only a refusal is retried."""
    job = get_job(db, job_id)
    if job.ledger_ik != ledger_ik:
        raise NotFoundError("job_not_found", f"id: no job {job_id!r} in ledger {ledger_ik!r}",
                            field="id")

    def run(conn: Connection):
        ledger = load_ledger(conn, ledger_ik)
        return conn.execute(_RETRY, {"id": int(job.id), "ledger_id": ledger.id}).first()

    row = db.run(run)
    if row is None:
        current = get_job(db, job_id)
        raise BadRequestError("job_not_failed", f"id: job {job_id} is {current.status}, not "
                              f"{FAILED}; only a failed job is retried", field="id")
    return _job(row)

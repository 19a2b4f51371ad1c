"""Posting jobs, their statuses, and the partition a job's key falls into."""
from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

PENDING, POSTED, FAILED = "pending", "posted", "failed"


STATUSES = (PENDING, POSTED, FAILED)


MAX_SUBMISSION = 1000


DEFAULT_BATCH = 1000


MAX_WAIT_SECONDS = 30.0


MAX_PAGE = 500


# Notified, with the partition as payload, by every transaction that finishes jobs.
FINISHED_CHANNEL = "ledger_jobs_finished"


def partition_of(key: str, partitions: int) -> int:
    """The partition of ``partitions`` (the settings' N) that ``key`` falls into. Changing N
    moves keys to other partitions, so change it only while no job is pending (a job keeps
    the partition it was accepted into)."""
    if partitions < 1:
        raise ValueError("partitions must be at least 1")
    # crc32, never hash(): str hashes are salted per process, and the API process that
    # accepts a job and every worker must agree on its partition.
    return zlib.crc32(key.encode("utf-8")) % partitions


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


@dataclass(frozen=True)
class Submission:
    jobs: list[Job]

    @property
    def pending_partitions(self) -> list[int]:
        return sorted({j.partition for j in self.jobs if j.status == PENDING})


@dataclass
class WorkResult:
    """What one call of `work_partition` did."""

    partition: int
    busy: bool = False  # another worker holds the partition; nothing was done
    claimed: int = 0
    posted: int = 0
    failed: int = 0
    more: bool = False  # a full batch was claimed: more jobs may be waiting
    # The distinct traceparents of the submitting requests (tracing on), for span links.
    trace_contexts: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        if self.busy:
            return f"partition {self.partition}: busy"
        return (f"partition {self.partition}: {self.claimed} claimed, {self.posted} posted, "
                f"{self.failed} failed{', more waiting' if self.more else ''}")

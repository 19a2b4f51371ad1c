"""How far behind the posting queue is, read from the tables (`ledger status`): jobs pending
per partition with the age of the oldest, jobs failed lately, and the balance deltas the
rollup has not folded yet."""
from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledger.db import Database

# Counting a backlog stops here: past it the number only says "a lot", and counting a
# runaway table would make the status command itself slow.
COUNT_CAP = 100_000


@dataclass(frozen=True)
class PartitionBacklog:
    partition: int
    pending: int
    oldest_seconds: float  # age of its oldest pending job: the partition's lag


@dataclass(frozen=True)
class QueueStatus:
    partitions: list[PartitionBacklog]  # only partitions with something pending
    failed_last_hour: int
    unfolded_deltas: int  # capped at COUNT_CAP

    @property
    def pending(self) -> int:
        return sum(p.pending for p in self.partitions)

    @property
    def lag_seconds(self) -> float:
        return max((p.oldest_seconds for p in self.partitions), default=0.0)

    def to_dict(self) -> dict:
        return {"pending": self.pending, "lag_seconds": round(self.lag_seconds, 3),
                "failed_last_hour": self.failed_last_hour,
                "unfolded_deltas": self.unfolded_deltas,
                "partitions": [{"partition": p.partition, "pending": p.pending,
                                "oldest_seconds": round(p.oldest_seconds, 3)}
                               for p in self.partitions]}


def queue_status(db: Database) -> QueueStatus:
    def read(conn: Connection) -> QueueStatus:
        rows = conn.execute(sa.text(
            "SELECT partition, count(*), "
            "       extract(epoch FROM clock_timestamp() - min(created)) "
            "FROM posting_jobs WHERE status = 'pending' "
            "GROUP BY partition ORDER BY partition")).all()
        failed = conn.execute(sa.text(
            "SELECT count(*) FROM (SELECT 1 FROM posting_jobs WHERE status = 'failed' "
            "AND created > clock_timestamp() - interval '1 hour' LIMIT :cap) f"),
            {"cap": COUNT_CAP}).scalar_one()
        deltas = conn.execute(sa.text(
            "SELECT count(*) FROM (SELECT 1 FROM balance_deltas LIMIT :cap) d"),
            {"cap": COUNT_CAP}).scalar_one()
        return QueueStatus([PartitionBacklog(int(p), int(n), max(0.0, float(age)))
                            for p, n, age in rows], int(failed), int(deltas))

    return db.run(read)

"""The backlog of every queue the service keeps in PostgreSQL, read at once: pending posting
jobs per partition, balance deltas waiting for the rollup, Stripe webhook events waiting in
the inbox, and how far behind each Stripe link's completed sync is.

Every figure comes from the database, so any API process answers the same, however many run
(uvicorn ``--workers``) and whichever worker did the work. Each read is bounded by an index:
the oldest pending job of a partition is the first entry of the partial index on pending
jobs, the oldest delta the first of the primary key (deltas get increasing ids as they are
appended)."""
from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledger.db import Database


@dataclass(frozen=True)
class PartitionBacklog:
    partition: int
    pending: int
    # Seconds the oldest pending job has waited; 0 when none is pending.
    oldest_seconds: float


@dataclass(frozen=True)
class Snapshot:
    partitions: list[PartitionBacklog] = field(default_factory=list)
    # Balance deltas of eventually consistent accounts not yet folded, and the age of the
    # oldest: how stale an eventual balance can be.
    rollup_pending: int = 0
    rollup_lag_seconds: float = 0.0
    # Stripe webhook events stored but not processed, and the age of the oldest.
    inbox_pending: int = 0
    inbox_oldest_seconds: float = 0.0
    # Per Stripe link id: seconds since the end of its last complete sync window (None: it
    # has never completed one).
    stripe_cursor_age_seconds: dict[str, float | None] = field(default_factory=dict)
    # Jobs failed within the last hour, counted up to FAILED_COUNT_CAP; only `ledger status`
    # asks for it (None otherwise), since no index serves it and /metrics is scraped often.
    failed_last_hour: int | None = None

    @property
    def pending(self) -> int:
        return sum(p.pending for p in self.partitions)

    @property
    def lag_seconds(self) -> float:
        return max((p.oldest_seconds for p in self.partitions), default=0.0)

    def to_dict(self) -> dict:
        """What `ledger status --json` prints: partitions with something pending only."""
        return {"pending": self.pending, "lag_seconds": round(self.lag_seconds, 3),
                "failed_last_hour": self.failed_last_hour,
                "unfolded_deltas": self.rollup_pending,
                "rollup_lag_seconds": round(self.rollup_lag_seconds, 3),
                "partitions": [{"partition": p.partition, "pending": p.pending,
                                "oldest_seconds": round(p.oldest_seconds, 3)}
                               for p in self.partitions if p.pending]}


# Counting failures stops here: past it the number only says "a lot", and counting a
# runaway table would make the status command itself slow.
FAILED_COUNT_CAP = 100_000


_PARTITIONS = sa.text("""
    SELECT p.partition,
           (SELECT count(*) FROM posting_jobs j
             WHERE j.status = 'pending' AND j.partition = p.partition),
           COALESCE(EXTRACT(EPOCH FROM clock_timestamp() - (
               SELECT j.created FROM posting_jobs j
                WHERE j.status = 'pending' AND j.partition = p.partition
                ORDER BY j.id LIMIT 1)), 0)
      FROM generate_series(0, :last) AS p(partition)
     ORDER BY p.partition
""")

_ROLLUP = sa.text("""
    SELECT (SELECT count(*) FROM balance_deltas),
           COALESCE(EXTRACT(EPOCH FROM clock_timestamp() - (
               SELECT created FROM balance_deltas ORDER BY id LIMIT 1)), 0)
""")

_INBOX = sa.text("""
    SELECT count(*), COALESCE(EXTRACT(EPOCH FROM clock_timestamp() - min(received)), 0)
      FROM stripe_events WHERE processed IS NULL
""")

_STRIPE = sa.text("""
    SELECT l.public_id, EXTRACT(EPOCH FROM clock_timestamp() - s.backfill_done_until)
      FROM stripe_links s JOIN links l ON l.id = s.link_id
     ORDER BY l.public_id
""")


def read_snapshot(conn: Connection, partitions: int, with_failed: bool = False) -> Snapshot:
    """The backlog of the ``partitions`` posting partitions and of the other queues; with
    ``with_failed``, also the jobs failed in the last hour."""
    rows = conn.execute(_PARTITIONS, {"last": partitions - 1}).all()
    # A job accepted under a larger LEDGER_PARTITIONS than this process's still waits.
    extra = conn.execute(sa.text(
        "SELECT partition, count(*), EXTRACT(EPOCH FROM clock_timestamp() - min(created)) "
        "FROM posting_jobs WHERE status = 'pending' AND partition >= :n "
        "GROUP BY partition ORDER BY partition"), {"n": partitions}).all()
    deltas, lag = conn.execute(_ROLLUP).one()
    inbox, inbox_age = conn.execute(_INBOX).one()
    failed = conn.execute(sa.text(
        "SELECT count(*) FROM (SELECT 1 FROM posting_jobs WHERE status = 'failed' "
        "AND created > clock_timestamp() - interval '1 hour' LIMIT :cap) f"),
        {"cap": FAILED_COUNT_CAP}).scalar_one() if with_failed else None
    return Snapshot(
        partitions=[PartitionBacklog(int(p), int(n), float(age)) for p, n, age in rows + extra],
        rollup_pending=int(deltas), rollup_lag_seconds=float(lag),
        inbox_pending=int(inbox), inbox_oldest_seconds=float(inbox_age),
        stripe_cursor_age_seconds={link: None if age is None else float(age)
                                   for link, age in conn.execute(_STRIPE)},
        failed_last_hour=None if failed is None else int(failed))


def snapshot(db: Database, partitions: int, with_failed: bool = False) -> Snapshot:
    """``read_snapshot`` in a read-only transaction of its own."""
    with db.transaction() as conn:
        conn.execute(sa.text("SET TRANSACTION READ ONLY"))
        return read_snapshot(conn, partitions, with_failed)

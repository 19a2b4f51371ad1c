"""Outbox of asynchronous posting jobs.

Revision ID: 0003_outbox
Revises: 0001_core
"""
from alembic import op

revision = "0003_outbox"
down_revision = "0001_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # `id` is both the public job id and the submission order inside a partition: a
    # submission's rows get increasing ids in list order within one transaction.
    op.execute(
        """
        CREATE TABLE posting_jobs (
            id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            ledger_id     bigint NOT NULL REFERENCES ledgers (id),
            ledger_ik     text NOT NULL,
            ik            text NOT NULL,
            request       jsonb NOT NULL,
            partition     integer NOT NULL CHECK (partition >= 0),
            partition_key text NOT NULL,
            status        text NOT NULL DEFAULT 'pending'
                          CHECK (status IN ('pending', 'posted', 'failed')),
            entry_id      text,
            is_ik_replay  boolean,
            error         jsonb,
            created       timestamptz NOT NULL DEFAULT clock_timestamp(),
            finished      timestamptz,
            -- A finished job carries its outcome, a pending one none: the worker writes
            -- both in the same UPDATE, so a half-marked row means a bug, not a crash.
            CONSTRAINT posting_jobs_outcome CHECK (
                (status = 'pending' AND finished IS NULL AND entry_id IS NULL AND error IS NULL)
                OR (status = 'posted' AND finished IS NOT NULL AND entry_id IS NOT NULL)
                OR (status = 'failed' AND finished IS NOT NULL AND error IS NOT NULL)
            ),
            CONSTRAINT posting_jobs_ledger_ik UNIQUE (ledger_id, ik)
        )
        """
    )
    # Workers claim the oldest pending rows of one partition; the relay looks for old
    # pending rows. Both only ever read pending rows, so the index holds only those and
    # stays small however many finished jobs are retained.
    op.execute(
        "CREATE INDEX posting_jobs_pending ON posting_jobs (partition, id) "
        "WHERE status = 'pending'"
    )
    # Listing a ledger's jobs by status. Every B-tree here is written twice per job (when
    # accepted, when finished), so there are no more than the reads need.
    op.execute("CREATE INDEX posting_jobs_by_ledger ON posting_jobs (ledger_id, status, id)")
    # Pruning finds old jobs by acceptance time; rows arrive in that order, so a block-range
    # index is enough, and costs next to nothing to keep.
    op.execute("CREATE INDEX posting_jobs_created ON posting_jobs USING brin (created)")
    # Rows churn (insert, update once, delete after retention): vacuum them more eagerly
    # than the default 20% so the claim index does not bloat under sustained load.
    op.execute(
        "ALTER TABLE posting_jobs SET (autovacuum_vacuum_scale_factor = 0.02, "
        "autovacuum_analyze_scale_factor = 0.02)"
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS posting_jobs")

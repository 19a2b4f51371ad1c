"""posting_jobs.trace_context: the W3C ``traceparent`` of the request that submitted a job,
when tracing is on, so the worker that posts it can link its span to that request's trace
even when the job rode on another request's doorbell. NULL without tracing.

A nullable column without default: added without rewriting the table.

Revision ID: 0011_job_trace_context
Revises: 0010_delta_created
"""
from alembic import op

revision = "0011_job_trace_context"
down_revision = "0010_delta_created"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE posting_jobs ADD COLUMN trace_context text")


def downgrade() -> None:
    op.execute("ALTER TABLE posting_jobs DROP COLUMN trace_context")

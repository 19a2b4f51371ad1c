"""The workspace row: the deployment's id (seed 001's ``get_workspace``).

One row, made here, so every API process of a deployment answers the same id and two
deployments never share one. Its name is a setting (LEDGER_WORKSPACE_NAME), not stored:
renaming a deployment needs no write.

Revision ID: 0009_workspace
Revises: 0008_job_request_json
"""
from alembic import op

revision = "0009_workspace"
down_revision = "0008_job_request_json"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE TABLE workspace ("
        " id text PRIMARY KEY,"
        # At most one row: a second insert collides on this unique true.
        " singleton boolean NOT NULL DEFAULT true UNIQUE CHECK (singleton),"
        " created timestamptz NOT NULL DEFAULT now())")
    op.execute("INSERT INTO workspace (id) "
               "VALUES ('wks_' || replace(gen_random_uuid()::text, '-', ''))")


def downgrade() -> None:
    op.execute("DROP TABLE workspace")

"""API clients (hashed secrets, scopes) and the token signing key.

Revision ID: 0002_api_clients
Revises: 0001_core
"""
from alembic import op
import sqlalchemy as sa

revision = "0002_api_clients"
down_revision = "0001_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_clients",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("secret_hash", sa.Text, nullable=False),
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
        sa.Column("revoked", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("scope IN ('write', 'read')", name="api_clients_scope_check"),
    )
    op.create_table(
        "api_signing_keys",
        sa.Column("kid", sa.Text, primary_key=True),
        sa.Column("secret", sa.Text, nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
    )


def downgrade() -> None:
    op.drop_table("api_signing_keys")
    op.drop_table("api_clients")

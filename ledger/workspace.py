"""The workspace: the deployment as a whole, as seed 001's ``get_workspace()`` shows it."""
from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from ledger import tables as t
from ledger.db import Database
from ledger.errors import InternalError


@dataclass(frozen=True)
class Workspace:
    id: str
    name: str


def get_workspace(db: Database, name: str) -> Workspace:
    """The deployment's workspace: its id, made once by the migrations, and ``name``
    (the ``LEDGER_WORKSPACE_NAME`` setting the caller was given)."""
    with db.transaction() as conn:
        workspace_id = conn.execute(sa.select(t.workspace.c.id)).scalar()
    if workspace_id is None:
        # Only a database whose workspace row was deleted by hand: the migration makes it.
        raise InternalError("workspace_missing", "the database has no workspace row; run "
                            "`ledger migrate` on a fresh database or restore the row",
                            retryable=False)
    return Workspace(workspace_id, name)

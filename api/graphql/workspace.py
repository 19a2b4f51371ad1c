"""The ``workspace`` query: the deployment a caller's credentials reach (seed 001's
``client.get_workspace()``)."""
from __future__ import annotations

import strawberry
from strawberry.types import Info

from api.graphql.context import Context
from ledger import service


@strawberry.type
class Workspace:
    id: strawberry.ID
    name: str


@strawberry.type
class WorkspaceQuery:
    @strawberry.field(description="This deployment: its id (made once, at its first "
                                  "migration) and its name (LEDGER_WORKSPACE_NAME).")
    def workspace(self, info: Info) -> Workspace:
        ctx: Context = info.context
        found = service.get_workspace(ctx.db, ctx.workspace_name)
        return Workspace(id=strawberry.ID(found.id), name=found.name)

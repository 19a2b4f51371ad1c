"""The GraphQL schema served at /graphql."""
from __future__ import annotations

import strawberry
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types

from api.graphql import types as t
from api.graphql.reconcile import ReconcileMutation
from api.graphql.resolvers import Mutation, Query
from api.graphql.scalars import SCALAR_MAP

class LedgerSchema(strawberry.Schema):
    def process_errors(self, errors, execution_context=None) -> None:
        # The HTTP endpoint logs what deserves it (unexpected failures, with their trace);
        # a NotFound or a bad variable is the client's business, not a server error.
        return None


schema = LedgerSchema(
    query=Query,
    mutation=merge_types("Mutation", (Mutation, ReconcileMutation)),
    # Reachable only through the Error interface or by name in fragments: list them so they
    # are part of the schema (introspection, `... on NotFoundError`).
    types=[t.BadRequestError, t.InternalError, t.NotFoundError],
    config=StrawberryConfig(scalar_map=SCALAR_MAP),
)

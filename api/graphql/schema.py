"""The GraphQL schema served at /graphql: each capability's queries and mutations, merged."""
from __future__ import annotations

import strawberry
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types

from api.graphql import fastargs
from api.graphql.accounts import AccountQuery
from api.graphql.entries import EntryQuery
from api.graphql.errors import BadRequestError, InternalError, NotFoundError
from api.graphql.events import EventQuery, WebhookMutation
from api.graphql.holds import HoldMutation
from api.graphql.ledgers import LedgerMutation, LedgerQuery
from api.graphql.monitors import MonitorMutation, MonitorQuery
from api.graphql.posting import PostingMutation
from api.graphql.reconcile import ReconcileMutation
from api.graphql.scalars import SCALAR_MAP
from api.graphql.schemas import SchemaMutation, SchemaQuery
from api.graphql.workspace import WorkspaceQuery


class LedgerSchema(strawberry.Schema):
    def process_errors(self, errors, execution_context=None) -> None:
        # The HTTP endpoint logs what deserves it (unexpected failures, with their trace);
        # a NotFound or a bad variable is the client's business, not a server error.
        return None


schema = LedgerSchema(
    # In the order the seeds' documentation lists them.
    query=merge_types("Query", (SchemaQuery, LedgerQuery, AccountQuery, EntryQuery,
                                WorkspaceQuery, MonitorQuery, EventQuery)),
    mutation=merge_types("Mutation", (SchemaMutation, LedgerMutation, PostingMutation,
                                      ReconcileMutation, HoldMutation, MonitorMutation,
                                      WebhookMutation)),
    # Reachable only through the Error interface or by name in fragments: list them so they
    # are part of the schema (introspection, `... on NotFoundError`).
    types=[BadRequestError, InternalError, NotFoundError],
    config=StrawberryConfig(scalar_map=SCALAR_MAP),
)
# The posting mutations' and the balance read's arguments converted without Strawberry's
# per-call walk of the input types.
fastargs.install(schema)

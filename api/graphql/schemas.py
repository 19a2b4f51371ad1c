"""Schemas: the Schema type and its versions, the ``schema`` query and ``storeSchema``."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Optional, Union

import strawberry
from strawberry.types import Info

from api.graphql.common import PageInfo
from api.graphql.context import Context
from api.graphql.errors import BadRequestError, InternalError, mutate
from api.graphql.inputs import SchemaInput, SchemaMatchInput
from api.graphql.scalars import JSON, SafeString
from ledger import service


@strawberry.type
class SchemaVersion:
    version: int
    created: datetime
    json: JSON


@strawberry.type
class SchemaVersionConnection:
    nodes: list[SchemaVersion]
    page_info: PageInfo = strawberry.field(default_factory=PageInfo)


def _schema_version(v: service.SchemaVersion) -> SchemaVersion:
    return SchemaVersion(version=v.version, created=v.created, json=v.json)


@strawberry.type
class Schema:
    _latest: strawberry.Private[service.SchemaVersion]

    @strawberry.field
    def key(self) -> SafeString:
        return self._latest.key

    @strawberry.field
    def name(self) -> Optional[str]:
        return self._latest.name

    @strawberry.field(description="The latest version, or the one asked for.")
    def version(self, info: Info, version: Optional[int] = None) -> SchemaVersion:
        if version is None or version == self._latest.version:
            return _schema_version(self._latest)
        ctx: Context = info.context
        return _schema_version(service.get_schema(ctx.db, self._latest.key, version))

    @strawberry.field(description="Every stored version, oldest first.")
    def versions(self, info: Info) -> SchemaVersionConnection:
        ctx: Context = info.context
        found = service.list_schema_versions(ctx.db, self._latest.key)
        return SchemaVersionConnection(nodes=[_schema_version(v) for v in found])


def schema_type(v: service.SchemaVersion) -> Schema:
    return Schema(_latest=v)


@strawberry.type
class StoreSchemaResult:
    schema: Schema


StoreSchemaResponse = Annotated[
    Union[StoreSchemaResult, BadRequestError, InternalError],
    strawberry.union("StoreSchemaResponse")]


@strawberry.type
class SchemaQuery:
    @strawberry.field(description="A schema by key; its latest version unless one is asked for.")
    def schema(self, info: Info, schema: SchemaMatchInput) -> Optional[Schema]:
        ctx: Context = info.context
        return schema_type(service.get_schema(ctx.db, schema.key, schema.version))


@strawberry.type
class SchemaMutation:
    @strawberry.mutation(description="Store a new version of a schema (same content: no new version).")
    def store_schema(self, info: Info, schema: SchemaInput) -> StoreSchemaResponse:
        ctx: Context = info.context

        def run():
            document = {"key": schema.key, "chartOfAccounts": schema.chart_of_accounts}
            if schema.name is not None:
                document["name"] = schema.name
            if schema.ledger_entries is not None:
                document["ledgerEntries"] = schema.ledger_entries
            return StoreSchemaResult(schema=schema_type(service.store_schema(ctx.db, document)))

        return mutate(info, run)

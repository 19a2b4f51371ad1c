"""Ledgers: the Ledger type (its schema, accounts, entries and lines), the ``ledger`` and
``ledgers`` queries and ``createLedger``.

A Ledger is resolved from the domain value `service.Ledger`, so the types that show a
ledger (entries, accounts) answer that value and need not import this module."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Optional, Union

import strawberry
from strawberry.types import Info

from api.graphql.accounts import LedgerAccountsConnection
from api.graphql.common import PageInfo, page_info
from api.graphql.context import Context
from api.graphql.entries import (LedgerEntriesConnection, LedgerLinesConnection, entries_connection,
                                 lines_connection)
from api.graphql.errors import BadRequestError, InternalError, bad, mutate
from api.graphql.holds import pending_lines
from api.graphql.inputs import (CreateLedgerInput, LedgerAccountMatchInput, LedgerEntriesFilter,
                                LedgerLinesFilter, LedgerMatchInput, SchemaMatchInput, filter_input)
from api.graphql.refs import AccountRef, account_path
from api.graphql.scalars import SafeString
from api.graphql.schemas import Schema, schema_type
from ledger import service

Root = strawberry.Parent[service.Ledger]
LedgerAccountType = Annotated["LedgerAccount",  # noqa: F821
                              strawberry.lazy("api.graphql.accounts")]


@strawberry.type
class Ledger:
    @strawberry.field
    def id(self, root: Root) -> strawberry.ID:
        return strawberry.ID(str(root.id))

    @strawberry.field
    def ik(self, root: Root) -> SafeString:
        return root.ik

    @strawberry.field
    def name(self, root: Root) -> str:
        return root.name

    @strawberry.field
    def created(self, root: Root) -> datetime:
        return root.created

    @strawberry.field(name="balanceUTCOffset")
    def balance_utc_offset(self, root: Root) -> str:
        return root.balance_utc_offset

    @strawberry.field
    def schema(self, root: Root, info: Info) -> Optional[Schema]:
        ctx: Context = info.context
        key = root.schema_key
        return schema_type(ctx.cached(("schema", key), lambda: service.get_schema(ctx.db, key)))

    @strawberry.field(description="One account of this ledger by path.")
    def ledger_account(self, root: Root, path: str) -> LedgerAccountType:
        return AccountRef(root.ik, path)

    @strawberry.field(description="The entries of this ledger, newest posted first. Reversed "
                                  "and reversing entries are left out unless the filter's "
                                  "`reversed` asks for them. `account`: only entries with a "
                                  "line in that account (its path may be a pattern: "
                                  "`liabilities/users:*/available`, or `assets/*` for all "
                                  "descendants).")
    def ledger_entries(self, root: Root, info: Info, filter: Optional[LedgerEntriesFilter] = None,
                       account: Optional[LedgerAccountMatchInput] = None,
                       first: Optional[int] = None, after: Optional[str] = None,
                       last: Optional[int] = None,
                       before: Optional[str] = None) -> LedgerEntriesConnection:
        ctx: Context = info.context
        page = service.list_ledger_entries(
            ctx.db, root.ik, filter_input(filter), first=first, after=after, last=last,
            before=before, account=account_path(root.ik, account, "account"))
        return entries_connection(page)

    @strawberry.field(description="The lines of this ledger, of one account, or of an account "
                                  "pattern (as in ledgerEntries), newest posted first; status: "
                                  "pending lists the lines of pending holds instead (at their "
                                  "hold's creation time), all both; posted is the default. "
                                  "Every status takes the same filter, account and paging.")
    def lines(self, root: Root, info: Info, filter: Optional[LedgerLinesFilter] = None,
              account: Optional[LedgerAccountMatchInput] = None,
              first: Optional[int] = None, after: Optional[str] = None,
              last: Optional[int] = None, before: Optional[str] = None,
              status: str = "posted") -> LedgerLinesConnection:
        ctx: Context = info.context
        path = account_path(root.ik, account, "account")
        held = pending_lines(ctx, root.ik, path, status, filter_input(filter),
                             dict(first=first, after=after, last=last, before=before))
        if held is not None:
            return held
        page = service.list_lines(ctx.db, root.ik, path, filter_input(filter), first=first,
                                  after=after, last=last, before=before)
        return lines_connection(page, root.ik)

    @strawberry.field(description="The accounts this ledger holds (every account a line was "
                                  "posted to, template instances included), by path.")
    def ledger_accounts(self, root: Root, info: Info, first: Optional[int] = None,
                        after: Optional[str] = None, last: Optional[int] = None,
                        before: Optional[str] = None) -> LedgerAccountsConnection:
        ctx: Context = info.context
        page = service.list_ledger_accounts(ctx.db, root.ik, first=first, after=after,
                                            last=last, before=before)
        return LedgerAccountsConnection(
            nodes=[AccountRef(root.ik, a.path, a.type) for a in page.nodes],
            page_info=page_info(page.page_info))


@strawberry.type
class LedgersConnection:
    nodes: list[Ledger]
    page_info: PageInfo


@strawberry.type
class CreateLedgerResult:
    ledger: Ledger
    is_ik_replay: bool


CreateLedgerResponse = Annotated[
    Union[CreateLedgerResult, BadRequestError, InternalError],
    strawberry.union("CreateLedgerResponse")]


@strawberry.type
class LedgerQuery:
    @strawberry.field
    def ledger(self, info: Info, ledger: LedgerMatchInput) -> Optional[Ledger]:
        ctx: Context = info.context
        if ledger.ik:
            return service.get_ledger(ctx.db, ledger.ik)
        if ledger.id:
            return service.get_ledger_by_id(ctx.db, str(ledger.id))
        raise bad("ledger", "give the ledger's ik (or id)")

    @strawberry.field
    def ledgers(self, info: Info, first: Optional[int] = None,
                after: Optional[str] = None) -> LedgersConnection:
        ctx: Context = info.context
        found = service.list_ledgers(ctx.db)
        start = 0
        if after:
            try:
                start = int(after)
            except ValueError:
                raise bad("after", "not a cursor this API returned") from None
        if first is not None and first < 0:
            raise bad("first", "must be zero or more")
        end = len(found) if first is None else min(len(found), start + first)
        page = found[start:end]
        return LedgersConnection(
            nodes=page,
            page_info=PageInfo(has_next_page=end < len(found), has_previous_page=start > 0,
                               start_cursor=str(start) if page else None,
                               end_cursor=str(end) if page else None))


@strawberry.type
class LedgerMutation:
    @strawberry.mutation(description="Create a ledger from a stored schema; idempotent on ik.")
    def create_ledger(self, info: Info, ik: SafeString, ledger: CreateLedgerInput,
                      schema: Optional[SchemaMatchInput] = None) -> CreateLedgerResponse:
        ctx: Context = info.context

        def run():
            if schema is None:
                raise bad("schema", "the schema to build the ledger from is required, "
                                    "e.g. {\"key\": \"my-schema\"}")
            kwargs = {}
            if ledger.balance_utc_offset is not None:
                kwargs["balance_utc_offset"] = ledger.balance_utc_offset
            created = service.create_ledger(ctx.db, ik, ledger.name, schema.key, **kwargs)
            return CreateLedgerResult(ledger=created.ledger, is_ik_replay=created.is_ik_replay)

        return mutate(info, run)

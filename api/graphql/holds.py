"""Holds (two-phase posting): the commitLedgerEntry and voidLedgerEntry mutations and
the hold input; LedgerHold, the hold an entry may be, is in api/graphql/entries.py. addLedgerEntry(ies) take ``hold`` (api/graphql/posting.py);
LedgerAccount's pending and available balances are in api/graphql/accounts.py."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Optional, Union

import strawberry
from strawberry.types import Info

from api.graphql.context import Context
from api.graphql.common import page_info
from api.graphql.entries import (LedgerEntry, LedgerHold, LedgerLinesConnection, entry_type,
                                 hold_type, line_type)
from api.graphql.errors import BadRequestError, InternalError, mutate
from api.graphql.inputs import LedgerEntryMatchInput
from api.graphql.refs import entry_ref
from api.graphql.scalars import JSON, Int96
from ledger import service


def hold_lines_connection(ctx: Context, ledger_ik: str, path: Optional[str],
                          status: Optional[str], first: Optional[int],
                          after: Optional[str]) -> LedgerLinesConnection:
    """A page of the lines holds reserved (``path`` None: the whole ledger), each with
    its hold's status, newest hold first."""
    page = service.list_hold_lines(ctx.db, ledger_ik, path, status=status,
                                   first=50 if first is None else first, after=after)
    return LedgerLinesConnection(nodes=[line_type(line, ledger_ik, None, s)
                                        for line, s in page.nodes],
                                 page_info=page_info(page.page_info))


def pending_lines(ctx: Context, ledger_ik: str, path: Optional[str], status: str,
                  filters: Optional[dict], paged: dict) -> Optional[LedgerLinesConnection]:
    """``lines(status:)``: None for ``posted`` (the caller lists posted lines as ever);
    for ``pending`` the lines of pending holds (status ``pending``), for ``all`` both
    merged newest first; the same filter, account pattern and paging as posted lines."""
    if status == "posted":
        return None
    page = service.list_lines_by_status(ctx.db, ledger_ik, path, filters, status=status,
                                        **paged)
    return LedgerLinesConnection(nodes=[line_type(line, ledger_ik, None, s)
                                        for line, s in page.nodes],
                                 page_info=page_info(page.page_info))


@strawberry.input(description="Post the entry as a hold: its lines stay pending (they move "
                              "no posted balance, their decreases count against available "
                              "balances at once) until commitLedgerEntry, voidLedgerEntry "
                              "or expiry.")
class HoldInput:
    expires_at: datetime


@strawberry.type
class HoldResult:
    entry: LedgerEntry
    hold: LedgerHold
    is_ik_replay: bool


def hold_result(result: service.HoldResult) -> HoldResult:
    return HoldResult(entry=entry_type(result.entry),
                      hold=hold_type(result.hold, result.entry.ledger_ik),
                      is_ik_replay=result.is_ik_replay)


HoldResponse = Annotated[Union[HoldResult, BadRequestError, InternalError],
                         strawberry.union("HoldResponse")]


def _target(ctx: Context, id: Optional[strawberry.ID],
            match: Optional[LedgerEntryMatchInput]) -> dict:
    if id is not None:
        return {"id": str(id)}
    entry_id, ledger, ik = entry_ref(ctx, match, "ledgerEntry")
    return {"id": entry_id, "ledger_ik": ledger} if entry_id else {"ledger_ik": ledger, "ik": ik}


@strawberry.type
class HoldMutation:
    @strawberry.mutation(description="Post a pending hold: all of it, or less (amount: when "
                                     "the entry's lines are one parameter; parameters: "
                                     "recomputed lines, none beyond the hold). Again with the "
                                     "same arguments: a replay. Refused once voided or "
                                     "expired (hold_voided, hold_expired), also past "
                                     "expiresAt before the sweep.")
    def commit_ledger_entry(self, info: Info, id: Optional[strawberry.ID] = None,
                            ledger_entry: Optional[LedgerEntryMatchInput] = None,
                            amount: Optional[Int96] = None,
                            parameters: Optional[JSON] = None) -> HoldResponse:
        ctx: Context = info.context
        return mutate(info, lambda: hold_result(service.commit_ledger_entry(
            ctx.db, **_target(ctx, id, ledger_entry), amount=amount, parameters=parameters)))

    @strawberry.mutation(description="Release a pending hold. Again: a replay. Refused once "
                                     "committed or expired.")
    def void_ledger_entry(self, info: Info, id: Optional[strawberry.ID] = None,
                          ledger_entry: Optional[LedgerEntryMatchInput] = None) -> HoldResponse:
        ctx: Context = info.context
        return mutate(info, lambda: hold_result(service.void_ledger_entry(
            ctx.db, **_target(ctx, id, ledger_entry))))

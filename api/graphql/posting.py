"""Posting mutations: addLedgerEntry, addLedgerEntries, reverseLedgerEntry and
updateLedgerEntry. Each builds the engine's typed request (`service.EntryRequest` with
`service.LineInput` lines) from the inputs and makes one `ledger.service` call."""
from __future__ import annotations

from typing import Annotated, Optional, Union

import strawberry
from strawberry.types import Info

from api.graphql.context import Context
from api.graphql.entries import LedgerEntry, LedgerEntryChange, LedgerLine, change_type, entry_type, line_type
from api.graphql.errors import BadRequestError, InternalError, bad, mutate, mutate_async
from api.graphql.holds import HoldInput
from api.graphql.inputs import (AddLedgerEntryInput, LedgerEntryInput, LedgerEntryMatchInput,
                                UpdateLedgerEntryInput)
from api.graphql.refs import account_ref, entry_ledger_ik, entry_ref, known_ledger
from api.graphql.scalars import SafeString
from ledger import service


@strawberry.type
class AddLedgerEntryResult:
    entry: LedgerEntry
    lines: list[LedgerLine]
    is_ik_replay: bool


def add_entry_result(result: service.PostResult | service.HoldResult) -> AddLedgerEntryResult:
    if isinstance(result, service.HoldResult):
        # A hold posted no line yet: its reserved lines, pending, stand for them.
        entry = result.entry
        return AddLedgerEntryResult(
            entry=entry_type(entry), is_ik_replay=result.is_ik_replay,
            lines=[line_type(line, entry.ledger_ik, entry.description, result.hold.status)
                   for line in result.hold.lines])
    entry = result.entry
    return AddLedgerEntryResult(
        entry=entry_type(entry),
        lines=[line_type(line, entry.ledger_ik, entry.description) for line in result.lines],
        is_ik_replay=result.is_ik_replay)


@strawberry.type
class AddLedgerEntriesResult:
    results: list[AddLedgerEntryResult]


@strawberry.type
class ReverseLedgerEntryResult:
    reversed_ledger_entry: LedgerEntry
    reversing_ledger_entry: LedgerEntry
    is_ik_replay: bool


@strawberry.type
class UpdateLedgerEntryResult:
    entry: LedgerEntry
    change: Optional[LedgerEntryChange] = strawberry.field(
        description="The recorded change; null when the update changed nothing.")


AddLedgerEntryResponse = Annotated[
    Union[AddLedgerEntryResult, BadRequestError, InternalError],
    strawberry.union("AddLedgerEntryResponse")]
ReverseLedgerEntryResponse = Annotated[
    Union[ReverseLedgerEntryResult, BadRequestError, InternalError],
    strawberry.union("ReverseLedgerEntryResponse")]
UpdateLedgerEntryResponse = Annotated[
    Union[UpdateLedgerEntryResult, BadRequestError, InternalError],
    strawberry.union("UpdateLedgerEntryResponse")]
AddLedgerEntriesResponse = Annotated[
    Union[AddLedgerEntriesResult, BadRequestError, InternalError],
    strawberry.union("AddLedgerEntriesResponse")]


# ------------------------------------------------------------------ typed requests

def entry_lines(ctx: Context, entry: LedgerEntryInput, ledger: str,
                field: str) -> Optional[list[service.LineInput]]:
    """The runtime lines of an entry input, their accounts resolved in ``ledger``."""
    if entry.lines is None:
        return None
    lines = []
    for i, line in enumerate(entry.lines):
        where = f"{field}.lines[{i}].account"
        line_ledger, path = account_ref(ctx, line.account, where)
        if line_ledger is not None and line_ledger != ledger:
            raise bad(where, f"names ledger {line_ledger!r}, the entry posts to {ledger!r}")
        lines.append(service.LineInput(key=line.key, account_path=path, amount=line.amount,
                                       currency=line.currency.code if line.currency else None))
    return lines


def key_value_pairs(items: Optional[list]) -> Optional[list[tuple[str, str]]]:
    return None if items is None else [(x.key, x.value) for x in items]


def entry_request(ctx: Context, ik: Optional[str], entry: LedgerEntryInput,
                  field: str, ik_field: str) -> tuple[str, service.EntryRequest]:
    """(ledger ik, the typed request) of an entry input."""
    ik = ik or entry.ik
    if not ik:
        raise bad(ik_field, "an idempotency key is required; reuse it when you retry")
    ledger = entry_ledger_ik(ctx, entry.ledger, f"{field}.ledger")
    lines = entry_lines(ctx, entry, ledger, field)
    request = service.EntryRequest.build(
        ik=ik, type=entry.type, parameters=entry.parameters, posted=entry.posted,
        tags=key_value_pairs(entry.tags), groups=key_value_pairs(entry.groups), lines=lines, field=field)
    return ledger, request


def _batch_requests(ctx: Context, entries: list[AddLedgerEntryInput]
                    ) -> tuple[str, list[service.EntryRequest]]:
    """(the ledger, the typed requests) of addLedgerEntries' entries, which must share one
    ledger."""
    if not entries:
        raise bad("entries", "at least one entry is required")
    ledger = None
    requests = []
    for i, item in enumerate(entries):
        field = f"entries[{i}].entry"
        this_ledger, request = entry_request(ctx, item.ik, item.entry, field, f"entries[{i}].ik")
        if ledger is not None and this_ledger != ledger:
            raise bad(f"{field}.ledger", "every entry of a batch must post to the "
                                         f"same ledger ({ledger!r})")
        ledger = this_ledger
        requests.append(request)
    return ledger, requests


def _updates(items: Optional[list]) -> Optional[list[dict]]:
    if items is None:
        return None
    return [{"key": x.key, "value": x.value} for x in items]


# ------------------------------------------------------------------ mutations

# The mutations a document may hold (with __typename) to run on the event loop
# (api.graphql.execution): their resolvers await the group committer there.
ON_LOOP = frozenset({"addLedgerEntry", "addLedgerEntries"})


@strawberry.type
class PostingMutation:
    @strawberry.mutation(description="Post one ledger entry; the same ik never posts twice. "
                                     "With hold: post it as a hold (LedgerHold).")
    def add_ledger_entry(self, info: Info, entry: LedgerEntryInput,
                         ik: Optional[SafeString] = None,
                         hold: Optional[HoldInput] = None) -> AddLedgerEntryResponse:
        ctx: Context = info.context
        if ctx.on_loop and hold is None and ctx.committer is not None:
            async def post():
                ledger, request = entry_request(ctx, ik, entry, "entry", "ik")
                result = await service.add_ledger_entry_async(ctx.committer, ledger, request)
                known_ledger(ctx, ledger)
                return add_entry_result(result)
            return mutate_async(info, post)

        def run():
            ledger, request = entry_request(ctx, ik, entry, "entry", "ik")
            if hold is not None:
                return add_entry_result(service.add_ledger_hold(ctx.db, ledger, request,
                                                                hold.expires_at))
            result = service.add_ledger_entry(ctx.db, ledger, request, ctx.committer)
            known_ledger(ctx, ledger)
            return add_entry_result(result)

        return mutate(info, run)

    @strawberry.mutation(description="Post several entries of one ledger atomically: all or none.")
    def add_ledger_entries(self, info: Info, entries: list[AddLedgerEntryInput],
                           hold: Optional[HoldInput] = None) -> AddLedgerEntriesResponse:
        ctx: Context = info.context
        if ctx.on_loop and hold is None and ctx.committer is not None:
            async def post():
                ledger, requests = _batch_requests(ctx, entries)
                results = await service.add_ledger_entries_async(ctx.committer, ledger, requests)
                known_ledger(ctx, ledger)
                return AddLedgerEntriesResult(results=[add_entry_result(r) for r in results])
            return mutate_async(info, post)

        def run():
            ledger, requests = _batch_requests(ctx, entries)
            if hold is not None:  # every entry of the batch a hold, with one expiry
                results = service.add_ledger_holds(ctx.db, ledger, requests, hold.expires_at)
            else:
                results = service.add_ledger_entries(ctx.db, ledger, requests, ctx.committer)
                known_ledger(ctx, ledger)
            return AddLedgerEntriesResult(results=[add_entry_result(r) for r in results])

        return mutate(info, run)

    @strawberry.mutation(description="Reverse an entry: a new entry mirrors every line at the "
                                     "same posted time; both are then immutable and hidden "
                                     "from lists. Reversing again is a replay.")
    def reverse_ledger_entry(self, info: Info, id: Optional[strawberry.ID] = None,
                             ledger_entry: Optional[LedgerEntryMatchInput] = None
                             ) -> ReverseLedgerEntryResponse:
        ctx: Context = info.context

        def run():
            if id is not None:
                entry_id, ledger, ik = str(id), None, None
            else:
                entry_id, ledger, ik = entry_ref(ctx, ledger_entry, "ledgerEntry")
            if entry_id is not None:
                result = service.reverse_ledger_entry(ctx.db, id=entry_id, ledger_ik=ledger)
            else:
                result = service.reverse_ledger_entry(ctx.db, ledger_ik=ledger, ik=ik)
            return ReverseLedgerEntryResult(
                reversed_ledger_entry=entry_type(result.reversed_entry),
                reversing_ledger_entry=entry_type(result.reversing_entry),
                is_ik_replay=result.is_ik_replay)

        return mutate(info, run)

    @strawberry.mutation(description="Set or remove tags and groups of an entry (not of a "
                                     "reversed or reversing one); the change is recorded.")
    def update_ledger_entry(self, info: Info, ledger_entry: LedgerEntryMatchInput,
                            update: UpdateLedgerEntryInput) -> UpdateLedgerEntryResponse:
        ctx: Context = info.context

        def run():
            entry_id, ledger, ik = entry_ref(ctx, ledger_entry, "ledgerEntry")
            if entry_id is None:
                entry_id = service.get_ledger_entry(ctx.db, ledger_ik=ledger, ik=ik).id
            result = service.update_ledger_entry(ctx.db, entry_id, _updates(update.tags),
                                                 _updates(update.groups), ledger_ik=ledger)
            return UpdateLedgerEntryResult(
                entry=entry_type(result.entry),
                change=change_type(result.change) if result.change is not None else None)

        return mutate(info, run)

"""Entries and lines: LedgerEntry (with its place in history), LedgerLine, entry changes,
entry groups, and the ``ledgerEntry`` / ``ledgerEntryGroup`` queries.

A field that shows a ledger or an account answers the domain value (`service.Ledger`,
`refs.AccountRef`); the Ledger and LedgerAccount types (api/graphql/ledgers.py, accounts.py)
read their fields from it, so this module needs neither."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Optional

import strawberry
from strawberry.types import Info

from api.graphql.common import Currency, LedgerEntryGroupKey, PageInfo, Tag, key_values, page_info
from api.graphql.context import Context
from api.graphql.errors import bad
from api.graphql.inputs import LedgerEntriesFilter, LedgerEntryMatchInput, LedgerMatchInput, filter_input
from api.graphql.refs import (AccountRef, account_id, balances_of, entry_of, ledger_id_of,
                              ledger_ik, ledger_ref)
from api.graphql.scalars import Date, Int96, SafeString
from ledger import service

# Resolved by strawberry when the schema is built, so these modules need not import them.
LedgerType = Annotated["Ledger", strawberry.lazy("api.graphql.ledgers")]  # noqa: F821
LedgerAccountType = Annotated["LedgerAccount",  # noqa: F821
                              strawberry.lazy("api.graphql.accounts")]


def _hold_of(info: Info, entry_id: str) -> Optional[service.Hold]:
    ctx: Context = info.context
    return ctx.cached(("hold", entry_id), lambda: service.get_ledger_hold(ctx.db, entry_id))


@strawberry.type
class LedgerLine:
    _line: strawberry.Private[service.Line]
    _ledger_ik: strawberry.Private[str]
    _entry_description: strawberry.Private[Optional[str]] = None
    # A hold's line: its hold's status (pending, voided, expired, committed).
    _status: strawberry.Private[Optional[str]] = None

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(str(self._line.id))

    @strawberry.field(description="posted; committed for a line a hold's commit posted; "
                                  "pending, committed, voided or expired for a hold's "
                                  "reserved line (LedgerHold.lines).")
    def status(self, info: Info) -> str:
        if self._status is not None:
            return self._status
        return "committed" if _hold_of(info, self._line.entry_id) is not None else "posted"

    @strawberry.field
    def key(self) -> str:
        return self._line.key

    @strawberry.field
    def amount(self) -> Int96:
        return self._line.amount

    @strawberry.field
    def currency(self) -> Currency:
        return Currency(code=self._line.currency)

    @strawberry.field(description="debit or credit, from the sign of the amount and whether "
                                  "the account is debit-normal (asset, expense) or not.")
    def type(self, info: Info) -> str:
        account_type = self._line.account_type
        if account_type is None:
            account_type = balances_of(info, self._ledger_ik, self._line.account_path).type
        debit_normal = account_type in ("asset", "expense")
        increases = self._line.amount >= 0
        return "debit" if debit_normal == increases else "credit"

    @strawberry.field
    def description(self) -> Optional[str]:
        return self._line.description or self._entry_description

    @strawberry.field
    def posted(self) -> datetime:
        return self._line.posted

    @strawberry.field
    def created(self) -> datetime:
        return self._line.created

    @strawberry.field
    def date(self) -> Date:
        return self._line.posted.date()

    @strawberry.field
    def ledger_id(self, info: Info) -> strawberry.ID:
        return strawberry.ID(ledger_id_of(info, self._ledger_ik))

    @strawberry.field
    def ledger_entry_id(self) -> strawberry.ID:
        return strawberry.ID(str(self._line.entry_id))

    @strawberry.field
    def account_id(self) -> strawberry.ID:
        return strawberry.ID(account_id(self._ledger_ik, self._line.account_path))

    @strawberry.field
    def account(self) -> LedgerAccountType:
        return AccountRef(self._ledger_ik, self._line.account_path)

    @strawberry.field(description="The external transaction this line reconciles, if any.")
    def external_tx_id(self) -> Optional[str]:
        return self._line.tx_external_id

    @strawberry.field(description="The account's own balance in this line's currency right "
                                  "after this line, in (posted, id) order: a backdated line "
                                  "shows the balance as of its time, and the lines after it "
                                  "theirs.")
    def running_balance(self, info: Info) -> Optional[Int96]:
        if self._line.running_balance is None:
            # A posting result whose line's total was not free at posting (backdated, or of
            # an eventual account): read now, after commit, holding no balance row.
            ctx: Context = info.context
            return service.line_running_balances(ctx.db, [self._line.id]).get(self._line.id)
        return self._line.running_balance


@strawberry.type
class LedgerLinesConnection:
    nodes: list[LedgerLine]
    page_info: PageInfo = strawberry.field(default_factory=PageInfo)


def line_type(line: service.Line, ledger_ik: str, entry_description: Optional[str],
              status: Optional[str] = None) -> LedgerLine:
    return LedgerLine(_line=line, _ledger_ik=ledger_ik, _entry_description=entry_description,
                      _status=status)


def lines_connection(page: service.Page, ledger_ik: str) -> LedgerLinesConnection:
    return LedgerLinesConnection(nodes=[line_type(x, ledger_ik, None) for x in page.nodes],
                                 page_info=page_info(page.page_info))


@strawberry.type(description="A hold: an entry whose lines were reserved before posting.")
class LedgerHold:
    _hold: strawberry.Private[service.Hold]
    _ledger_ik: strawberry.Private[str]

    @strawberry.field(description="pending, committed, voided or expired.")
    def status(self) -> str:
        return self._hold.status

    @strawberry.field
    def expires_at(self) -> datetime:
        return self._hold.expires_at

    @strawberry.field
    def created(self) -> datetime:
        return self._hold.created

    @strawberry.field(description="When it was committed, voided or expired.")
    def resolved_at(self) -> Optional[datetime]:
        return self._hold.resolved

    @strawberry.field(description="The lines it reserved (pending while the hold is), kept "
                                  "after it resolves; a commit posts them, or a part, as "
                                  "the entry's lines.")
    def lines(self) -> LedgerLinesConnection:
        return LedgerLinesConnection(nodes=[line_type(line, self._ledger_ik, None, self._hold.status)
                                            for line in self._hold.lines])


def hold_type(hold: service.Hold, ledger_ik: str) -> LedgerHold:
    return LedgerHold(_hold=hold, _ledger_ik=ledger_ik)


@strawberry.type(description="One recorded update of an entry's tags and groups.")
class LedgerEntryChange:
    id: strawberry.ID
    changed: datetime
    tags_before: list[Tag]
    tags_after: list[Tag]
    groups_before: list[LedgerEntryGroupKey]
    groups_after: list[LedgerEntryGroupKey]


def change_type(c: service.EntryChange) -> LedgerEntryChange:
    return LedgerEntryChange(
        id=strawberry.ID(c.id), changed=c.changed,
        tags_before=key_values(Tag, c.tags_before), tags_after=key_values(Tag, c.tags_after),
        groups_before=key_values(LedgerEntryGroupKey, c.groups_before),
        groups_after=key_values(LedgerEntryGroupKey, c.groups_after))


@strawberry.type
class LedgerEntry:
    _entry: strawberry.Private[service.Entry]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(str(self._entry.id))

    @strawberry.field
    def ik(self) -> SafeString:
        return self._entry.ik

    @strawberry.field
    def type(self) -> Optional[str]:
        return self._entry.type

    @strawberry.field
    def description(self) -> Optional[str]:
        return self._entry.description

    @strawberry.field
    def posted(self) -> datetime:
        return self._entry.posted

    @strawberry.field
    def created(self) -> datetime:
        return self._entry.created

    @strawberry.field
    def date(self) -> Date:
        return self._entry.posted.date()

    @strawberry.field
    def ledger_id(self, info: Info) -> strawberry.ID:
        return strawberry.ID(ledger_id_of(info, self._entry.ledger_ik))

    @strawberry.field
    def ledger(self, info: Info) -> LedgerType:
        return ledger_ref(info, self._entry.ledger_ik)

    @strawberry.field
    def tags(self) -> list[Tag]:
        return key_values(Tag, self._entry.tags)

    @strawberry.field
    def groups(self) -> list[LedgerEntryGroupKey]:
        return key_values(LedgerEntryGroupKey, self._entry.groups)

    @strawberry.field
    def lines(self) -> LedgerLinesConnection:
        return LedgerLinesConnection(nodes=[
            line_type(line, self._entry.ledger_ik, self._entry.description)
            for line in self._entry.lines])

    @strawberry.field(description="posted for an entry posted outright; for a hold its "
                                  "status: pending, committed, voided or expired.")
    def status(self, info: Info) -> str:
        hold = _hold_of(info, self._entry.id)
        return "posted" if hold is None else hold.status

    @strawberry.field(description="The hold this entry was posted as, if it was.")
    def hold(self, info: Info) -> Optional[LedgerHold]:
        hold = _hold_of(info, self._entry.id)
        return None if hold is None else hold_type(hold, self._entry.ledger_ik)

    def history(self, info: Info) -> service.HistoryEntry:
        # A freshly posted entry is a plain Entry; its place in history is read on demand.
        if isinstance(self._entry, service.HistoryEntry):
            return self._entry
        return entry_of(info, self._entry.id)

    def _linked(self, info: Info, entry_id: Optional[str]) -> Optional["LedgerEntry"]:
        return entry_type(entry_of(info, entry_id)) if entry_id is not None else None

    @strawberry.field(description="True for a reversed or a reversing entry: lists leave it "
                                  "out unless asked.")
    def hidden(self, info: Info) -> bool:
        return self.history(info).hidden

    @strawberry.field(description="When this entry was reversed, if it was.")
    def reversed_at(self, info: Info) -> Optional[datetime]:
        return self.history(info).reversed_at

    @strawberry.field(description="The entry that reverses this one, if any.")
    def reversed_by(self, info: Info) -> Optional["LedgerEntry"]:
        return self._linked(info, self.history(info).reversed_by_id)

    @strawberry.field(description="The entry this one reverses, for a reversing entry.")
    def reverses(self, info: Info) -> Optional["LedgerEntry"]:
        return self._linked(info, self.history(info).reverses_id)

    @strawberry.field(description="1 for the first entry posted under this ik, 2 for the one "
                                  "posted after it was reversed, ...; negative for a reversal.")
    def ik_version(self, info: Info) -> int:
        return self.history(info).ik_version

    @strawberry.field(description="Every entry posted under this ik, first version first; "
                                  "all but the last are reversed.")
    def ik_versions(self, info: Info) -> list["LedgerEntry"]:
        ctx: Context = info.context
        return [entry_type(e) for e in
                service.ik_versions(ctx.db, self._entry.ledger_ik, self._entry.ik)]

    @strawberry.field(description="The recorded updates of this entry's tags and groups, oldest first.")
    def changes(self, info: Info) -> list[LedgerEntryChange]:
        ctx: Context = info.context
        return [change_type(c) for c in service.ledger_entry_changes(ctx.db, self._entry.id)]


def entry_type(entry: service.Entry) -> LedgerEntry:
    return LedgerEntry(_entry=entry)


@strawberry.type
class LedgerEntriesConnection:
    nodes: list[LedgerEntry]
    page_info: PageInfo = strawberry.field(default_factory=PageInfo)


def entries_connection(page: service.Page) -> LedgerEntriesConnection:
    return LedgerEntriesConnection(nodes=[entry_type(e) for e in page.nodes],
                                   page_info=page_info(page.page_info))


# ------------------------------------------------------------------ groups

@strawberry.type(description="The net change one group's entries made to an account, in one currency.")
class LedgerEntryGroupBalance:
    _ledger_ik: strawberry.Private[str]
    _balance: strawberry.Private[Any]  # an EntryGroup's balance: account_path, currency, amount

    @strawberry.field
    def account(self) -> LedgerAccountType:
        return AccountRef(self._ledger_ik, self._balance.account_path)

    @strawberry.field
    def currency(self) -> Currency:
        return Currency(code=self._balance.currency)

    @strawberry.field(description="Net change of the account's own balance by the group's entries.")
    def own_balance(self) -> Int96:
        return self._balance.amount


@strawberry.type
class LedgerEntryGroupBalanceConnection:
    nodes: list[LedgerEntryGroupBalance]
    page_info: PageInfo = strawberry.field(default_factory=PageInfo)


@strawberry.type(description="The entries sharing a group key and value, e.g. every entry of one withdrawal.")
class LedgerEntryGroup:
    _ledger: strawberry.Private[service.Ledger]
    key: str
    value: str

    @strawberry.field
    def ledger(self) -> LedgerType:
        return self._ledger

    @strawberry.field(description="Net change per account and currency of the group's "
                                  "entries matching the filter (reversed ones left out by "
                                  "default: with their reversals they net to zero).")
    def balances(self, info: Info, filter: Optional[LedgerEntriesFilter] = None
                 ) -> LedgerEntryGroupBalanceConnection:
        ctx: Context = info.context
        group = service.entry_group(ctx.db, self._ledger.ik, self.key, self.value,
                                    filter_input(filter))
        return LedgerEntryGroupBalanceConnection(nodes=[
            LedgerEntryGroupBalance(_ledger_ik=self._ledger.ik, _balance=b)
            for b in group.balances])

    @strawberry.field(description="The group's entries, newest posted first.")
    def ledger_entries(self, info: Info, filter: Optional[LedgerEntriesFilter] = None,
                       first: Optional[int] = None, after: Optional[str] = None,
                       last: Optional[int] = None,
                       before: Optional[str] = None) -> LedgerEntriesConnection:
        ctx: Context = info.context
        return entries_connection(service.list_group_entries(
            ctx.db, self._ledger.ik, self.key, self.value, filter_input(filter), first=first,
            after=after, last=last, before=before))


# ------------------------------------------------------------------ queries

@strawberry.type
class EntryQuery:
    @strawberry.field(description="An entry by id, or by ik within a ledger.")
    def ledger_entry(self, info: Info,
                     ledger_entry: LedgerEntryMatchInput) -> Optional[LedgerEntry]:
        ctx: Context = info.context
        if ledger_entry.id:
            return entry_type(service.get_ledger_entry(ctx.db, id=str(ledger_entry.id)))
        if not ledger_entry.ik:
            raise bad("ledgerEntry", "give the entry's id, or its ik and ledger")
        ledger = ledger_ik(ctx, ledger_entry.ledger, "ledgerEntry.ledger")
        return entry_type(service.get_ledger_entry(ctx.db, ledger_ik=ledger, ik=ledger_entry.ik,
                                                   version=ledger_entry.ik_version))

    @strawberry.field(description="The entries of a ledger sharing a group key and value, "
                                  "with their net balances.")
    def ledger_entry_group(self, info: Info, ledger: LedgerMatchInput, key: str,
                           value: str) -> Optional[LedgerEntryGroup]:
        ctx: Context = info.context
        found = service.get_ledger(ctx.db, ledger_ik(ctx, ledger, "ledger"))
        return LedgerEntryGroup(_ledger=found, key=key, value=value)

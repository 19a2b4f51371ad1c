"""GraphQL object, input and union types, in the shapes of the seeds' API documentation.

Objects wrap the `ledger.model` values they come from (``strawberry.Private`` fields) and
compute wire fields from them; a field that needs more data makes one `ledger.service`
call, cached per request where several fields share it.
"""
from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Annotated, Optional, Union

import strawberry
from strawberry.types import Info

from api.graphql.context import Context
from api.graphql.scalars import JSON, Date, Int96, LastMoment, Period, SafeString
from ledger import model
from ledger import service
from ledger import errors as lerr
from ledger.errors import LedgerError


# ------------------------------------------------------------------ errors

@strawberry.interface(description="What every error result carries.")
class Error:
    code: str
    message: str
    retryable: bool


@strawberry.type(description="The request can never succeed as sent; do not retry it.")
class BadRequestError(Error):
    pass


@strawberry.type(description="A transient failure: retry with the same ik and backoff.")
class InternalError(Error):
    pass


@strawberry.type(description="Something the request names does not exist.")
class NotFoundError(Error):
    pass


def error_result(exc: LedgerError) -> Union[BadRequestError, InternalError]:
    """A ledger error as the mutation union member the seeds' clients expect. NotFound is
    answered as BadRequestError (with its own code) because the seeds' mutation unions are
    exactly ``Result | BadRequestError | InternalError``."""
    if exc.typename == "InternalError":
        return InternalError(code=exc.code, message=exc.message, retryable=True)
    return BadRequestError(code=exc.code, message=exc.message, retryable=False)


# ------------------------------------------------------------------ shared small types

@strawberry.type
class PageInfo:
    has_next_page: bool = False
    has_previous_page: bool = False
    start_cursor: Optional[str] = None
    end_cursor: Optional[str] = None


@strawberry.type
class Currency:
    code: str


@strawberry.type
class CurrencyAmount:
    amount: Int96
    currency: Currency


@strawberry.type
class CurrencyAmountConnection:
    nodes: list[CurrencyAmount]
    page_info: PageInfo = strawberry.field(default_factory=PageInfo)


@strawberry.type
class Tag:
    key: str
    value: str


@strawberry.type
class LedgerEntryGroupKey:
    key: str
    value: str


def _key_values(cls, values: dict[str, str]) -> list:
    return [cls(key=k, value=v) for k, v in sorted(values.items())]


# ------------------------------------------------------------------ ids

def account_id(ledger_ik: str, path: str) -> str:
    """An account's id: opaque to clients, but it names the ledger and path, so
    ``ledgerAccount(ledgerAccount: {id})`` needs no lookup table."""
    raw = json.dumps([ledger_ik, path], separators=(",", ":")).encode()
    return "lga_" + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def parse_account_id(value: str) -> tuple[str, str]:
    try:
        if not value.startswith("lga_"):
            raise ValueError
        raw = value[4:]
        data = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        ledger_ik, path = data
        if not isinstance(ledger_ik, str) or not isinstance(path, str):
            raise ValueError
        return ledger_ik, path
    except (ValueError, TypeError, json.JSONDecodeError, UnicodeDecodeError):
        raise lerr.NotFoundError("ledger_account_not_found",
                            f"ledgerAccount.id: {value!r} is not a ledger account id",
                            field="ledgerAccount.id") from None


def _ledger_of(info: Info, ledger_ik: str) -> model.Ledger:
    ctx: Context = info.context
    return ctx.cached(("ledger", ledger_ik), lambda: service.get_ledger(ctx.db, ledger_ik))


# ------------------------------------------------------------------ schemas

@strawberry.type
class SchemaVersion:
    version: int
    created: datetime
    json: JSON


@strawberry.type
class SchemaVersionConnection:
    nodes: list[SchemaVersion]
    page_info: PageInfo = strawberry.field(default_factory=PageInfo)


def _schema_version(v: model.SchemaVersion) -> SchemaVersion:
    return SchemaVersion(version=v.version, created=v.created, json=v.json)


@strawberry.type
class Schema:
    _latest: strawberry.Private[model.SchemaVersion]

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


def schema_type(v: model.SchemaVersion) -> Schema:
    return Schema(_latest=v)


# ------------------------------------------------------------------ ledgers

@strawberry.type
class Ledger:
    _ledger: strawberry.Private[model.Ledger]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(str(self._ledger.id))

    @strawberry.field
    def ik(self) -> SafeString:
        return self._ledger.ik

    @strawberry.field
    def name(self) -> str:
        return self._ledger.name

    @strawberry.field
    def created(self) -> datetime:
        return self._ledger.created

    @strawberry.field(name="balanceUTCOffset")
    def balance_utc_offset(self) -> str:
        return self._ledger.balance_utc_offset

    @strawberry.field
    def schema(self, info: Info) -> Optional[Schema]:
        ctx: Context = info.context
        key = self._ledger.schema_key
        return schema_type(ctx.cached(("schema", key), lambda: service.get_schema(ctx.db, key)))

    @strawberry.field(description="One account of this ledger by path.")
    def ledger_account(self, path: str) -> "LedgerAccount":
        return LedgerAccount(_ledger_ik=self._ledger.ik, _path=path)

    @strawberry.field(description="The entries of this ledger, newest posted first. Reversed "
                                  "and reversing entries are left out unless the filter's "
                                  "`reversed` asks for them. `account`: only entries with a "
                                  "line in that account (its path may be a pattern: "
                                  "`liabilities/users:*/available`, or `assets/*` for all "
                                  "descendants).")
    def ledger_entries(self, info: Info, filter: Optional["LedgerEntriesFilter"] = None,
                       account: Optional["LedgerAccountMatchInput"] = None,
                       first: Optional[int] = None, after: Optional[str] = None,
                       last: Optional[int] = None,
                       before: Optional[str] = None) -> "LedgerEntriesConnection":
        ctx: Context = info.context
        page = service.list_ledger_entries(
            ctx.db, self._ledger.ik, filter_input(filter), first=first, after=after, last=last,
            before=before, account=_account_path(self._ledger.ik, account, "account"))
        return entries_connection(page)

    @strawberry.field(description="The lines of this ledger, of one account, or of an account "
                                  "pattern (as in ledgerEntries), newest posted first.")
    def lines(self, info: Info, filter: Optional["LedgerLinesFilter"] = None,
              account: Optional["LedgerAccountMatchInput"] = None,
              first: Optional[int] = None, after: Optional[str] = None,
              last: Optional[int] = None, before: Optional[str] = None) -> "LedgerLinesConnection":
        ctx: Context = info.context
        page = service.list_lines(ctx.db, self._ledger.ik,
                                  _account_path(self._ledger.ik, account, "account"),
                                  filter_input(filter), first=first, after=after, last=last,
                                  before=before)
        return lines_connection(page, self._ledger.ik)

    @strawberry.field(description="The accounts this ledger holds (every account a line was "
                                  "posted to, template instances included), by path.")
    def ledger_accounts(self, info: Info, first: Optional[int] = None,
                        after: Optional[str] = None, last: Optional[int] = None,
                        before: Optional[str] = None) -> "LedgerAccountsConnection":
        ctx: Context = info.context
        page = service.list_ledger_accounts(ctx.db, self._ledger.ik, first=first, after=after,
                                            last=last, before=before)
        return LedgerAccountsConnection(
            nodes=[LedgerAccount(_ledger_ik=self._ledger.ik, _path=a.path, _type=a.type)
                   for a in page.nodes],
            page_info=page_info(page.page_info))


@strawberry.type
class LedgersConnection:
    nodes: list[Ledger]
    page_info: PageInfo


def ledger_type(value: model.Ledger) -> Ledger:
    return Ledger(_ledger=value)


# ------------------------------------------------------------------ accounts and balances

def _pick_currency(amounts: dict[str, int], currency: Optional["CurrencyMatchInput"],
                   field: str) -> int:
    if currency is not None:
        return amounts.get(currency.code, 0)
    nonzero = {c: a for c, a in amounts.items() if a != 0}
    if len(nonzero) > 1:
        raise lerr.BadRequestError(
            "invalid_input",
            f"{field}: the account holds several currencies ({', '.join(sorted(nonzero))}); "
            f"pass currency: {{code: ...}} or ask for the plural {field}s",
            field=field)
    return next(iter(nonzero.values()), 0) if nonzero else sum(amounts.values())


def _amounts(amounts: dict[str, int]) -> CurrencyAmountConnection:
    return CurrencyAmountConnection(nodes=[
        CurrencyAmount(amount=a, currency=Currency(code=c)) for c, a in sorted(amounts.items())])


@strawberry.type
class LedgerAccount:
    _ledger_ik: strawberry.Private[str]
    _path: strawberry.Private[str]
    _balances: strawberry.Private[Optional[model.AccountBalances]] = None
    # Known when the account comes from a list, which saves reading its balances for it.
    _type: strawberry.Private[Optional[str]] = None

    def balances_now(self, info: Info) -> model.AccountBalances:
        if self._balances is None:
            ctx: Context = info.context
            key = ("balances", self._ledger_ik, self._path)
            self._balances = ctx.cached(
                key, lambda: service.account_balances(ctx.db, self._ledger_ik, self._path))
        return self._balances

    def balances_at(self, info: Info, at: Optional[str]) -> model.AccountBalances:
        if at is None:
            return self.balances_now(info)
        ctx: Context = info.context
        return ctx.cached(("balances", self._ledger_ik, self._path, at),
                          lambda: service.account_balances(ctx.db, self._ledger_ik, self._path,
                                                           at=at))

    def change(self, info: Info, period: str) -> model.BalanceChange:
        ctx: Context = info.context
        return ctx.cached(("change", self._ledger_ik, self._path, period),
                          lambda: service.balance_change(ctx.db, self._ledger_ik, self._path,
                                                         period))

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(account_id(self._ledger_ik, self._path))

    @strawberry.field
    def path(self) -> str:
        return self._path

    @strawberry.field(description="asset, liability, income or expense.")
    def type(self, info: Info) -> Optional[str]:
        return self._type or self.balances_now(info).type

    @strawberry.field
    def ledger_id(self, info: Info) -> strawberry.ID:
        return strawberry.ID(str(_ledger_of(info, self._ledger_ik).id))

    @strawberry.field
    def ledger(self, info: Info) -> Ledger:
        return ledger_type(_ledger_of(info, self._ledger_ik))

    @strawberry.field(description="Sum of the lines posted to this account itself; with "
                                  "`at`, of those posted at or before that moment.")
    def own_balance(self, info: Info, currency: Optional["CurrencyMatchInput"] = None,
                    at: Optional[LastMoment] = None) -> Int96:
        return _pick_currency(self.balances_at(info, at).own, currency, "ownBalance")

    @strawberry.field(description="Sum of the lines posted to this account's descendants.")
    def child_balance(self, info: Info, currency: Optional["CurrencyMatchInput"] = None,
                      at: Optional[LastMoment] = None) -> Int96:
        return _pick_currency(self.balances_at(info, at).child, currency, "childBalance")

    @strawberry.field(description="ownBalance + childBalance.")
    def balance(self, info: Info, currency: Optional["CurrencyMatchInput"] = None,
                at: Optional[LastMoment] = None) -> Int96:
        return _pick_currency(self.balances_at(info, at).total, currency, "balance")

    @strawberry.field(description="ownBalance in every currency the account holds.")
    def own_balances(self, info: Info,
                     at: Optional[LastMoment] = None) -> CurrencyAmountConnection:
        return _amounts(self.balances_at(info, at).own)

    @strawberry.field
    def child_balances(self, info: Info,
                       at: Optional[LastMoment] = None) -> CurrencyAmountConnection:
        return _amounts(self.balances_at(info, at).child)

    @strawberry.field
    def balances(self, info: Info, at: Optional[LastMoment] = None) -> CurrencyAmountConnection:
        return _amounts(self.balances_at(info, at).total)

    @strawberry.field(description="How ownBalance changed over the period (in the ledger's "
                                  "balanceUTCOffset).")
    def own_balance_change(self, info: Info, period: Period,
                           currency: Optional["CurrencyMatchInput"] = None) -> Int96:
        return _pick_currency(self.change(info, period).own, currency, "ownBalanceChange")

    @strawberry.field(description="How childBalance changed over the period.")
    def child_balance_change(self, info: Info, period: Period,
                             currency: Optional["CurrencyMatchInput"] = None) -> Int96:
        return _pick_currency(self.change(info, period).child, currency, "childBalanceChange")

    @strawberry.field(description="How balance changed over the period.")
    def balance_change(self, info: Info, period: Period,
                       currency: Optional["CurrencyMatchInput"] = None) -> Int96:
        return _pick_currency(self.change(info, period).total, currency, "balanceChange")

    @strawberry.field
    def own_balance_changes(self, info: Info, period: Period) -> CurrencyAmountConnection:
        return _amounts(self.change(info, period).own)

    @strawberry.field
    def child_balance_changes(self, info: Info, period: Period) -> CurrencyAmountConnection:
        return _amounts(self.change(info, period).child)

    @strawberry.field
    def balance_changes(self, info: Info, period: Period) -> CurrencyAmountConnection:
        return _amounts(self.change(info, period).total)

    @strawberry.field(description="The lines posted to this account, newest posted first.")
    def lines(self, info: Info, filter: Optional["LedgerLinesFilter"] = None,
              first: Optional[int] = None, after: Optional[str] = None,
              last: Optional[int] = None, before: Optional[str] = None) -> "LedgerLinesConnection":
        ctx: Context = info.context
        page = service.list_lines(ctx.db, self._ledger_ik, self._path, filter_input(filter),
                                  first=first, after=after, last=last, before=before)
        return lines_connection(page, self._ledger_ik)

    @strawberry.field(description="The entries with a line in this account, newest posted first.")
    def ledger_entries(self, info: Info, filter: Optional["LedgerEntriesFilter"] = None,
                       first: Optional[int] = None, after: Optional[str] = None,
                       last: Optional[int] = None,
                       before: Optional[str] = None) -> "LedgerEntriesConnection":
        ctx: Context = info.context
        page = service.list_ledger_entries(ctx.db, self._ledger_ik, filter_input(filter),
                                           first=first, after=after, last=last, before=before,
                                           account=self._path)
        return entries_connection(page)

    @strawberry.field(description="Synced txs of this linked account that no entry reconciles yet, oldest first.")
    def unreconciled_txs(self, info: Info, first: Optional[int] = None, after: Optional[str] = None
                         ) -> Annotated["TxsConnection", strawberry.lazy("api.graphql.reconcile")]:
        from api.graphql.reconcile import unreconciled_txs
        return unreconciled_txs(info, self._ledger_ik, self._path, first, after)


# ------------------------------------------------------------------ entries and lines

@strawberry.type
class LedgerLine:
    _line: strawberry.Private[model.Line]
    _ledger_ik: strawberry.Private[str]
    _entry_description: strawberry.Private[Optional[str]] = None

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(str(self._line.id))

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
            account = LedgerAccount(_ledger_ik=self._ledger_ik, _path=self._line.account_path)
            account_type = account.balances_now(info).type
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
        return strawberry.ID(str(_ledger_of(info, self._ledger_ik).id))

    @strawberry.field
    def ledger_entry_id(self) -> strawberry.ID:
        return strawberry.ID(str(self._line.entry_id))

    @strawberry.field
    def account_id(self) -> strawberry.ID:
        return strawberry.ID(account_id(self._ledger_ik, self._line.account_path))

    @strawberry.field
    def account(self) -> LedgerAccount:
        return LedgerAccount(_ledger_ik=self._ledger_ik, _path=self._line.account_path)

    @strawberry.field(description="The external transaction this line reconciles, if any.")
    def external_tx_id(self) -> Optional[str]:
        return self._line.tx_external_id


@strawberry.type
class LedgerLinesConnection:
    nodes: list[LedgerLine]
    page_info: PageInfo = strawberry.field(default_factory=PageInfo)


def line_type(line: model.Line, ledger_ik: str, entry_description: Optional[str]) -> LedgerLine:
    return LedgerLine(_line=line, _ledger_ik=ledger_ik, _entry_description=entry_description)


def page_info(info: model.PageInfo) -> PageInfo:
    return PageInfo(has_next_page=info.has_next_page, has_previous_page=info.has_previous_page,
                    start_cursor=info.start_cursor, end_cursor=info.end_cursor)


def lines_connection(page: model.Page, ledger_ik: str) -> LedgerLinesConnection:
    return LedgerLinesConnection(nodes=[line_type(x, ledger_ik, None) for x in page.nodes],
                                 page_info=page_info(page.page_info))


@strawberry.type
class LedgerEntry:
    _entry: strawberry.Private[model.Entry]

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
        return strawberry.ID(str(_ledger_of(info, self._entry.ledger_ik).id))

    @strawberry.field
    def ledger(self, info: Info) -> Ledger:
        return ledger_type(_ledger_of(info, self._entry.ledger_ik))

    @strawberry.field
    def tags(self) -> list[Tag]:
        return _key_values(Tag, self._entry.tags)

    @strawberry.field
    def groups(self) -> list[LedgerEntryGroupKey]:
        return _key_values(LedgerEntryGroupKey, self._entry.groups)

    @strawberry.field
    def lines(self) -> LedgerLinesConnection:
        return LedgerLinesConnection(nodes=[
            line_type(line, self._entry.ledger_ik, self._entry.description)
            for line in self._entry.lines])

    def history(self, info: Info) -> model.HistoryEntry:
        # A freshly posted entry is a plain Entry; its place in history is read on demand.
        if isinstance(self._entry, model.HistoryEntry):
            return self._entry
        ctx: Context = info.context
        return ctx.cached(("entry", self._entry.id),
                          lambda: service.get_ledger_entry(ctx.db, id=self._entry.id))

    def _linked(self, info: Info, entry_id: Optional[str]) -> Optional["LedgerEntry"]:
        if entry_id is None:
            return None
        ctx: Context = info.context
        return entry_type(ctx.cached(("entry", entry_id),
                                     lambda: service.get_ledger_entry(ctx.db, id=entry_id)))

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
    def changes(self, info: Info) -> list["LedgerEntryChange"]:
        ctx: Context = info.context
        return [change_type(c) for c in service.ledger_entry_changes(ctx.db, self._entry.id)]


def entry_type(entry: model.Entry) -> LedgerEntry:
    return LedgerEntry(_entry=entry)


@strawberry.type
class LedgerEntriesConnection:
    nodes: list[LedgerEntry]
    page_info: PageInfo = strawberry.field(default_factory=PageInfo)


def entries_connection(page: model.Page) -> LedgerEntriesConnection:
    return LedgerEntriesConnection(nodes=[entry_type(e) for e in page.nodes],
                                   page_info=page_info(page.page_info))


@strawberry.type
class LedgerAccountsConnection:
    nodes: list[LedgerAccount]
    page_info: PageInfo = strawberry.field(default_factory=PageInfo)


@strawberry.type(description="One recorded update of an entry's tags and groups.")
class LedgerEntryChange:
    id: strawberry.ID
    changed: datetime
    tags_before: list[Tag]
    tags_after: list[Tag]
    groups_before: list[LedgerEntryGroupKey]
    groups_after: list[LedgerEntryGroupKey]


def change_type(c: model.EntryChange) -> LedgerEntryChange:
    return LedgerEntryChange(
        id=strawberry.ID(c.id), changed=c.changed,
        tags_before=_key_values(Tag, c.tags_before), tags_after=_key_values(Tag, c.tags_after),
        groups_before=_key_values(LedgerEntryGroupKey, c.groups_before),
        groups_after=_key_values(LedgerEntryGroupKey, c.groups_after))


# ------------------------------------------------------------------ groups

@strawberry.type(description="The net change one group's entries made to an account, in one currency.")
class LedgerEntryGroupBalance:
    _ledger_ik: strawberry.Private[str]
    _balance: strawberry.Private[model.GroupBalance]

    @strawberry.field
    def account(self) -> LedgerAccount:
        return LedgerAccount(_ledger_ik=self._ledger_ik, _path=self._balance.account_path)

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
    _ledger: strawberry.Private[model.Ledger]
    key: str
    value: str

    @strawberry.field
    def ledger(self) -> Ledger:
        return ledger_type(self._ledger)

    @strawberry.field(description="Net change per account and currency of the group's "
                                  "entries matching the filter (reversed ones left out by "
                                  "default: with their reversals they net to zero).")
    def balances(self, info: Info, filter: Optional["LedgerEntriesFilter"] = None
                 ) -> LedgerEntryGroupBalanceConnection:
        ctx: Context = info.context
        group = service.entry_group(ctx.db, self._ledger.ik, self.key, self.value,
                                    filter_input(filter))
        return LedgerEntryGroupBalanceConnection(nodes=[
            LedgerEntryGroupBalance(_ledger_ik=self._ledger.ik, _balance=b)
            for b in group.balances])

    @strawberry.field(description="The group's entries, newest posted first.")
    def ledger_entries(self, info: Info, filter: Optional["LedgerEntriesFilter"] = None,
                       first: Optional[int] = None, after: Optional[str] = None,
                       last: Optional[int] = None,
                       before: Optional[str] = None) -> LedgerEntriesConnection:
        ctx: Context = info.context
        return entries_connection(service.list_group_entries(
            ctx.db, self._ledger.ik, self.key, self.value, filter_input(filter), first=first,
            after=after, last=last, before=before))


# ------------------------------------------------------------------ mutation results

@strawberry.type
class StoreSchemaResult:
    schema: Schema


@strawberry.type
class CreateLedgerResult:
    ledger: Ledger
    is_ik_replay: bool


@strawberry.type
class AddLedgerEntryResult:
    entry: LedgerEntry
    lines: list[LedgerLine]
    is_ik_replay: bool


def add_entry_result(result: model.PostResult) -> AddLedgerEntryResult:
    entry = result.entry
    return AddLedgerEntryResult(
        entry=entry_type(entry),
        lines=[line_type(line, entry.ledger_ik, entry.description) for line in result.lines],
        is_ik_replay=result.is_ik_replay)


@strawberry.type
class AddLedgerEntriesResult:
    results: list[AddLedgerEntryResult]


StoreSchemaResponse = Annotated[
    Union[StoreSchemaResult, BadRequestError, InternalError],
    strawberry.union("StoreSchemaResponse")]
CreateLedgerResponse = Annotated[
    Union[CreateLedgerResult, BadRequestError, InternalError],
    strawberry.union("CreateLedgerResponse")]
AddLedgerEntryResponse = Annotated[
    Union[AddLedgerEntryResult, BadRequestError, InternalError],
    strawberry.union("AddLedgerEntryResponse")]
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


ReverseLedgerEntryResponse = Annotated[
    Union[ReverseLedgerEntryResult, BadRequestError, InternalError],
    strawberry.union("ReverseLedgerEntryResponse")]
UpdateLedgerEntryResponse = Annotated[
    Union[UpdateLedgerEntryResult, BadRequestError, InternalError],
    strawberry.union("UpdateLedgerEntryResponse")]
AddLedgerEntriesResponse = Annotated[
    Union[AddLedgerEntriesResult, BadRequestError, InternalError],
    strawberry.union("AddLedgerEntriesResponse")]


# ------------------------------------------------------------------ inputs

@strawberry.input
class SchemaInput:
    key: SafeString
    name: Optional[str] = None
    chart_of_accounts: JSON = strawberry.field(
        description="The chart of accounts: the seeds' `accounts` array form or nested form.")
    ledger_entries: Optional[JSON] = strawberry.field(
        default=None, description="`{\"types\": [...]}`: the entry types.")


@strawberry.input
class SchemaMatchInput:
    key: SafeString
    version: Optional[int] = None


@strawberry.input
class CreateLedgerInput:
    name: str
    balance_utc_offset: Optional[str] = strawberry.field(default=None, name="balanceUTCOffset")


@strawberry.input
class LedgerMatchInput:
    ik: Optional[SafeString] = None
    id: Optional[strawberry.ID] = None


@strawberry.input
class LedgerAccountMatchInput:
    path: Optional[str] = None
    ledger: Optional[LedgerMatchInput] = None
    id: Optional[strawberry.ID] = None


@strawberry.input
class CurrencyMatchInput:
    code: str


@strawberry.input
class LedgerEntryTagInput:
    key: str
    value: str


@strawberry.input
class LedgerEntryGroupInput:
    key: str
    value: str


@strawberry.input
class LedgerLineInput:
    key: str
    account: LedgerAccountMatchInput
    amount: Int96
    currency: Optional[CurrencyMatchInput] = None


@strawberry.input
class LedgerEntryInput:
    type: str
    ik: Optional[SafeString] = None
    ledger: Optional[LedgerMatchInput] = None
    posted: Optional[datetime] = None
    parameters: Optional[JSON] = None
    tags: Optional[list[LedgerEntryTagInput]] = None
    groups: Optional[list[LedgerEntryGroupInput]] = None
    lines: Optional[list[LedgerLineInput]] = None


@strawberry.input
class AddLedgerEntryInput:
    ik: SafeString
    entry: LedgerEntryInput


@strawberry.input
class LedgerEntryMatchInput:
    id: Optional[strawberry.ID] = None
    ik: Optional[SafeString] = None
    ledger: Optional[LedgerMatchInput] = None
    ik_version: Optional[int] = strawberry.field(
        default=None, description="With ik: that version (default: the latest).")


@strawberry.input(description="start <= time < end (either may be left out), or a period "
                              "(2025, 2025-Q1, 2025-02, 2025-02-03, 2025-02-03T04) in the "
                              "ledger's balanceUTCOffset.")
class TimeRangeInput:
    start: Optional[datetime] = None
    end: Optional[datetime] = None
    period: Optional[Period] = None


@strawberry.input(description="Every filter given must hold.")
class LedgerEntriesFilter:
    posted: Optional[TimeRangeInput] = None
    created: Optional[TimeRangeInput] = None
    type: Optional[list[str]] = strawberry.field(default=None, description="Entry types (any of).")
    tags: Optional[list[LedgerEntryTagInput]] = strawberry.field(
        default=None, description="Entries having every one of these tags.")
    groups: Optional[list[LedgerEntryGroupInput]] = strawberry.field(
        default=None, description="Entries in every one of these groups.")
    currency: Optional[CurrencyMatchInput] = None
    reversed: Optional[bool] = strawberry.field(
        default=strawberry.UNSET,
        description="Left out: reversed and reversing entries are hidden. true: only those. "
                    "false: none of those. null: all entries.")


@strawberry.input(description="As LedgerEntriesFilter, applied to each line's entry "
                              "(currency: to the line).")
class LedgerLinesFilter(LedgerEntriesFilter):
    pass


def filter_input(value: Optional[LedgerEntriesFilter]) -> Optional[dict]:
    """A GraphQL filter as the wire dict `EntryFilter.from_input` validates."""
    if value is None:
        return None
    out: dict = {}
    for name in ("posted", "created"):
        rng = getattr(value, name)
        if rng is not None:
            out[name] = {k: v for k, v in (("start", rng.start), ("end", rng.end),
                                           ("period", rng.period)) if v is not None}
    if value.type is not None:
        out["type"] = list(value.type)
    if value.tags is not None:
        out["tags"] = [{"key": x.key, "value": x.value} for x in value.tags]
    if value.groups is not None:
        out["groups"] = [{"key": x.key, "value": x.value} for x in value.groups]
    if value.currency is not None:
        out["currency"] = value.currency.code
    if value.reversed is not strawberry.UNSET:
        out["reversed"] = value.reversed
    return out


def _account_path(ledger_ik: str, match: Optional[LedgerAccountMatchInput],
                  field: str) -> Optional[str]:
    """The path (or pattern) an account argument of a ledger's list names."""
    if match is None:
        return None
    if match.id:
        other, path = parse_account_id(match.id)
        if other != ledger_ik:
            raise lerr.BadRequestError("invalid_input", f"{field}.id: that account belongs to "
                                       f"another ledger", field=f"{field}.id")
        return path
    if not match.path:
        raise lerr.BadRequestError("invalid_input", f"{field}.path: give an account path or "
                                   "pattern", field=f"{field}.path")
    if match.ledger is not None and match.ledger.ik and match.ledger.ik != ledger_ik:
        raise lerr.BadRequestError("invalid_input", f"{field}.ledger: names another ledger",
                                   field=f"{field}.ledger")
    return match.path


@strawberry.input(description="A tag or group to set; a null value removes the key.")
class LedgerEntryTagUpdateInput:
    key: str
    value: Optional[str] = None


@strawberry.input(description="A group to set; a null value removes the key.")
class LedgerEntryGroupUpdateInput:
    key: str
    value: Optional[str] = None


@strawberry.input(description="Keys given are set (or removed with a null value); keys not "
                              "given stay as they are.")
class UpdateLedgerEntryInput:
    tags: Optional[list[LedgerEntryTagUpdateInput]] = None
    groups: Optional[list[LedgerEntryGroupUpdateInput]] = None

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
from api.graphql.scalars import JSON, Date, Int96, SafeString
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


def _no_history(argument: str) -> None:
    raise lerr.BadRequestError("not_supported",
               f"{argument}: balances at a past time and balance changes are not served by "
               "this version yet; omit it for the current balance", field=argument)


@strawberry.type
class LedgerAccount:
    _ledger_ik: strawberry.Private[str]
    _path: strawberry.Private[str]
    _balances: strawberry.Private[Optional[model.AccountBalances]] = None

    def balances_now(self, info: Info) -> model.AccountBalances:
        if self._balances is None:
            ctx: Context = info.context
            key = ("balances", self._ledger_ik, self._path)
            self._balances = ctx.cached(
                key, lambda: service.account_balances(ctx.db, self._ledger_ik, self._path))
        return self._balances

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(account_id(self._ledger_ik, self._path))

    @strawberry.field
    def path(self) -> str:
        return self._path

    @strawberry.field(description="asset, liability, income or expense.")
    def type(self, info: Info) -> Optional[str]:
        return self.balances_now(info).type

    @strawberry.field
    def ledger_id(self, info: Info) -> strawberry.ID:
        return strawberry.ID(str(_ledger_of(info, self._ledger_ik).id))

    @strawberry.field
    def ledger(self, info: Info) -> Ledger:
        return ledger_type(_ledger_of(info, self._ledger_ik))

    @strawberry.field(description="Sum of the lines posted to this account itself.")
    def own_balance(self, info: Info, currency: Optional["CurrencyMatchInput"] = None,
                    at: Optional[datetime] = None) -> Int96:
        if at is not None:
            _no_history("at")
        return _pick_currency(self.balances_now(info).own, currency, "ownBalance")

    @strawberry.field(description="Sum of the lines posted to this account's descendants.")
    def child_balance(self, info: Info, currency: Optional["CurrencyMatchInput"] = None,
                      at: Optional[datetime] = None) -> Int96:
        if at is not None:
            _no_history("at")
        return _pick_currency(self.balances_now(info).child, currency, "childBalance")

    @strawberry.field(description="ownBalance + childBalance.")
    def balance(self, info: Info, currency: Optional["CurrencyMatchInput"] = None,
                at: Optional[datetime] = None) -> Int96:
        if at is not None:
            _no_history("at")
        return _pick_currency(self.balances_now(info).total, currency, "balance")

    @strawberry.field(description="ownBalance in every currency the account holds.")
    def own_balances(self, info: Info, at: Optional[datetime] = None) -> CurrencyAmountConnection:
        if at is not None:
            _no_history("at")
        return _amounts(self.balances_now(info).own)

    @strawberry.field
    def child_balances(self, info: Info,
                       at: Optional[datetime] = None) -> CurrencyAmountConnection:
        if at is not None:
            _no_history("at")
        return _amounts(self.balances_now(info).child)

    @strawberry.field
    def balances(self, info: Info, at: Optional[datetime] = None) -> CurrencyAmountConnection:
        if at is not None:
            _no_history("at")
        return _amounts(self.balances_now(info).total)

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
        account = LedgerAccount(_ledger_ik=self._ledger_ik, _path=self._line.account_path)
        debit_normal = account.balances_now(info).type in ("asset", "expense")
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


def entry_type(entry: model.Entry) -> LedgerEntry:
    return LedgerEntry(_entry=entry)


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

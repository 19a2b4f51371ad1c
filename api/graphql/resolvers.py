"""Query and Mutation: each resolver turns its inputs into one `ledger.service` call and the
answer (or the LedgerError) back into the seeds' shapes. No money rule lives here."""
from __future__ import annotations

import logging
from typing import Callable, Optional, TypeVar

import strawberry
from strawberry.types import Info

from api.graphql import types as t
from api.graphql.context import Context
from api.graphql.scalars import SafeString
from ledger import errors as lerr
from ledger import service
from ledger.model import EntryRequest

log = logging.getLogger("api.graphql")

R = TypeVar("R")

FORCED_MESSAGE = "forced by the X-Fragment-Return-Error request header; nothing was processed"


def _mutate(info: Info, run: Callable[[], R]):
    result = _mutate_once(info, run)
    info.context.outcomes.append((info.field_name, type(result).__name__))
    return result


def _mutate_once(info: Info, run: Callable[[], R]):
    """Run one mutation: honour a forced error, map ledger errors to union members, and
    never let an unexpected exception's text (SQL, paths) reach the client."""
    ctx: Context = info.context
    if ctx.force_error == "InternalError":
        return t.InternalError(code="internal_error", message=FORCED_MESSAGE, retryable=True)
    if ctx.force_error == "BadRequestError":
        return t.BadRequestError(code="bad_request", message=FORCED_MESSAGE, retryable=False)
    try:
        return run()
    except lerr.LedgerError as exc:
        return t.error_result(exc)
    except Exception:
        log.exception("unexpected failure in mutation %s", info.field_name)
        return t.InternalError(code="internal_error",
                               message="internal error; retry the request with the same ik",
                               retryable=True)


def _bad(field: str, message: str) -> lerr.BadRequestError:
    return lerr.BadRequestError("invalid_input", f"{field}: {message}", field=field)


def _ledger_ik(ctx: Context, match: Optional[t.LedgerMatchInput], field: str) -> str:
    if match is None:
        raise _bad(field, "the ledger is required, e.g. {\"ik\": \"my-ledger\"}")
    if match.ik:
        return match.ik
    if match.id:
        try:
            return service.get_ledger_by_id(ctx.db, str(match.id)).ik
        except lerr.NotFoundError:
            raise lerr.NotFoundError("ledger_not_found", f"{field}.id: no ledger {match.id!r}",
                                     field=f"{field}.id") from None
    raise _bad(field, "give the ledger's ik (or id)")


def _entry_ref(ctx: Context, match: Optional[t.LedgerEntryMatchInput],
               field: str) -> tuple[Optional[str], Optional[str], Optional[str]]:
    """(id, ledger ik, ik) of an entry match: its id, or its ik within a ledger."""
    if match is None:
        raise _bad(field, "the entry is required, e.g. {\"id\": \"123\"}")
    if match.id:
        ledger_ik = _ledger_ik(ctx, match.ledger, f"{field}.ledger") if match.ledger else None
        return str(match.id), ledger_ik, None
    if not match.ik:
        raise _bad(field, "give the entry's id, or its ik and ledger")
    return None, _ledger_ik(ctx, match.ledger, f"{field}.ledger"), match.ik


def _updates(items: Optional[list]) -> Optional[list[dict]]:
    if items is None:
        return None
    return [{"key": x.key, "value": x.value} for x in items]


def _account_ref(ctx: Context, match: Optional[t.LedgerAccountMatchInput],
                 field: str) -> tuple[Optional[str], str]:
    """(ledger ik or None when the match does not name one, path)."""
    if match is None:
        raise _bad(field, "the account is required, e.g. {\"path\": \"assets/bank\"}")
    if match.id:
        return t.parse_account_id(match.id)
    if not match.path:
        raise _bad(f"{field}.path", "give the account's path (or id)")
    ledger_ik = _ledger_ik(ctx, match.ledger, f"{field}.ledger") if match.ledger else None
    return ledger_ik, match.path


def _entry_data(ctx: Context, entry: t.LedgerEntryInput, ledger_ik: str, field: str) -> dict:
    """The seeds' LedgerEntryInput as the plain dict `EntryRequest.from_input` validates."""
    data: dict = {"type": entry.type}
    if entry.parameters is not None:
        data["parameters"] = entry.parameters
    if entry.posted is not None:
        data["posted"] = entry.posted
    if entry.tags is not None:
        data["tags"] = [{"key": x.key, "value": x.value} for x in entry.tags]
    if entry.groups is not None:
        data["groups"] = [{"key": x.key, "value": x.value} for x in entry.groups]
    if entry.lines is not None:
        lines = []
        for i, line in enumerate(entry.lines):
            where = f"{field}.lines[{i}].account"
            line_ledger, path = _account_ref(ctx, line.account, where)
            if line_ledger is not None and line_ledger != ledger_ik:
                raise _bad(where, f"names ledger {line_ledger!r}, the entry posts to {ledger_ik!r}")
            item = {"key": line.key, "account": {"path": path}, "amount": str(line.amount)}
            if line.currency is not None:
                item["currency"] = {"code": line.currency.code}
            lines.append(item)
        data["lines"] = lines
    return data


def _entry_request(ctx: Context, ik: Optional[str], entry: t.LedgerEntryInput,
                   field: str, ik_field: str) -> tuple[str, EntryRequest]:
    ik = ik or entry.ik
    if not ik:
        raise _bad(ik_field, "an idempotency key is required; reuse it when you retry")
    ledger_ik = _ledger_ik(ctx, entry.ledger, f"{field}.ledger")
    request = EntryRequest.from_input(_entry_data(ctx, entry, ledger_ik, field), field, ik=ik)
    return ledger_ik, request


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Store a new version of a schema (same content: no new version).")
    def store_schema(self, info: Info, schema: t.SchemaInput) -> t.StoreSchemaResponse:
        ctx: Context = info.context

        def run():
            document = {"key": schema.key, "chartOfAccounts": schema.chart_of_accounts}
            if schema.name is not None:
                document["name"] = schema.name
            if schema.ledger_entries is not None:
                document["ledgerEntries"] = schema.ledger_entries
            return t.StoreSchemaResult(schema=t.schema_type(service.store_schema(ctx.db, document)))

        return _mutate(info, run)

    @strawberry.mutation(description="Create a ledger from a stored schema; idempotent on ik.")
    def create_ledger(self, info: Info, ik: SafeString, ledger: t.CreateLedgerInput,
                      schema: Optional[t.SchemaMatchInput] = None) -> t.CreateLedgerResponse:
        ctx: Context = info.context

        def run():
            if schema is None:
                raise _bad("schema", "the schema to build the ledger from is required, "
                                     "e.g. {\"key\": \"my-schema\"}")
            kwargs = {}
            if ledger.balance_utc_offset is not None:
                kwargs["balance_utc_offset"] = ledger.balance_utc_offset
            created = service.create_ledger(ctx.db, ik, ledger.name, schema.key, **kwargs)
            return t.CreateLedgerResult(ledger=t.ledger_type(created.ledger),
                                        is_ik_replay=created.is_ik_replay)

        return _mutate(info, run)

    @strawberry.mutation(description="Post one ledger entry; the same ik never posts twice.")
    def add_ledger_entry(self, info: Info, entry: t.LedgerEntryInput,
                         ik: Optional[SafeString] = None) -> t.AddLedgerEntryResponse:
        ctx: Context = info.context

        def run():
            ledger_ik, request = _entry_request(ctx, ik, entry, "entry", "ik")
            return t.add_entry_result(service.add_ledger_entry(ctx.db, ledger_ik, request))

        return _mutate(info, run)

    @strawberry.mutation(description="Post several entries of one ledger atomically: all or none.")
    def add_ledger_entries(self, info: Info,
                           entries: list[t.AddLedgerEntryInput]) -> t.AddLedgerEntriesResponse:
        ctx: Context = info.context

        def run():
            if not entries:
                raise _bad("entries", "at least one entry is required")
            ledger_ik = None
            requests = []
            for i, item in enumerate(entries):
                field = f"entries[{i}].entry"
                this_ledger, request = _entry_request(ctx, item.ik, item.entry, field,
                                                      f"entries[{i}].ik")
                if ledger_ik is not None and this_ledger != ledger_ik:
                    raise _bad(f"{field}.ledger", "every entry of a batch must post to the "
                                                  f"same ledger ({ledger_ik!r})")
                ledger_ik = this_ledger
                requests.append(request)
            results = service.add_ledger_entries(ctx.db, ledger_ik, requests)
            return t.AddLedgerEntriesResult(results=[t.add_entry_result(r) for r in results])

        return _mutate(info, run)


    @strawberry.mutation(description="Reverse an entry: a new entry mirrors every line at the "
                                     "same posted time; both are then immutable and hidden "
                                     "from lists. Reversing again is a replay.")
    def reverse_ledger_entry(self, info: Info, id: Optional[strawberry.ID] = None,
                             ledger_entry: Optional[t.LedgerEntryMatchInput] = None
                             ) -> t.ReverseLedgerEntryResponse:
        ctx: Context = info.context

        def run():
            if id is not None:
                entry_id, ledger_ik, ik = str(id), None, None
            else:
                entry_id, ledger_ik, ik = _entry_ref(ctx, ledger_entry, "ledgerEntry")
            if entry_id is not None:
                result = service.reverse_ledger_entry(ctx.db, id=entry_id, ledger_ik=ledger_ik)
            else:
                result = service.reverse_ledger_entry(ctx.db, ledger_ik=ledger_ik, ik=ik)
            return t.ReverseLedgerEntryResult(
                reversed_ledger_entry=t.entry_type(result.reversed_entry),
                reversing_ledger_entry=t.entry_type(result.reversing_entry),
                is_ik_replay=result.is_ik_replay)

        return _mutate(info, run)

    @strawberry.mutation(description="Set or remove tags and groups of an entry (not of a "
                                     "reversed or reversing one); the change is recorded.")
    def update_ledger_entry(self, info: Info, ledger_entry: t.LedgerEntryMatchInput,
                            update: t.UpdateLedgerEntryInput) -> t.UpdateLedgerEntryResponse:
        ctx: Context = info.context

        def run():
            entry_id, ledger_ik, ik = _entry_ref(ctx, ledger_entry, "ledgerEntry")
            if entry_id is None:
                entry_id = service.get_ledger_entry(ctx.db, ledger_ik=ledger_ik, ik=ik).id
            result = service.update_ledger_entry(ctx.db, entry_id, _updates(update.tags),
                                                 _updates(update.groups), ledger_ik=ledger_ik)
            return t.UpdateLedgerEntryResult(
                entry=t.entry_type(result.entry),
                change=t.change_type(result.change) if result.change is not None else None)

        return _mutate(info, run)


@strawberry.type
class Query:
    @strawberry.field(description="A schema by key; its latest version unless one is asked for.")
    def schema(self, info: Info, schema: t.SchemaMatchInput) -> Optional[t.Schema]:
        ctx: Context = info.context
        return t.schema_type(service.get_schema(ctx.db, schema.key, schema.version))

    @strawberry.field
    def ledger(self, info: Info, ledger: t.LedgerMatchInput) -> Optional[t.Ledger]:
        ctx: Context = info.context
        if ledger.ik:
            return t.ledger_type(service.get_ledger(ctx.db, ledger.ik))
        if ledger.id:
            return t.ledger_type(service.get_ledger_by_id(ctx.db, str(ledger.id)))
        raise _bad("ledger", "give the ledger's ik (or id)")

    @strawberry.field
    def ledgers(self, info: Info, first: Optional[int] = None,
                after: Optional[str] = None) -> t.LedgersConnection:
        ctx: Context = info.context
        found = service.list_ledgers(ctx.db)
        start = 0
        if after:
            try:
                start = int(after)
            except ValueError:
                raise _bad("after", "not a cursor this API returned") from None
        if first is not None and first < 0:
            raise _bad("first", "must be zero or more")
        end = len(found) if first is None else min(len(found), start + first)
        page = found[start:end]
        return t.LedgersConnection(
            nodes=[t.ledger_type(x) for x in page],
            page_info=t.PageInfo(has_next_page=end < len(found), has_previous_page=start > 0,
                                 start_cursor=str(start) if page else None,
                                 end_cursor=str(end) if page else None))

    @strawberry.field(description="An account by path and ledger, or by id, with its balances.")
    def ledger_account(self, info: Info,
                       ledger_account: t.LedgerAccountMatchInput) -> Optional[t.LedgerAccount]:
        ctx: Context = info.context
        ledger_ik, path = _account_ref(ctx, ledger_account, "ledgerAccount")
        if ledger_ik is None:
            raise _bad("ledgerAccount.ledger", "the ledger is required, e.g. {\"ik\": \"my-ledger\"}")
        account = t.LedgerAccount(_ledger_ik=ledger_ik, _path=path)
        # Read now, so an unknown account is an error here rather than a null balance later.
        account.balances_now(info)
        return account

    @strawberry.field(description="An entry by id, or by ik within a ledger.")
    def ledger_entry(self, info: Info,
                     ledger_entry: t.LedgerEntryMatchInput) -> Optional[t.LedgerEntry]:
        ctx: Context = info.context
        if ledger_entry.id:
            return t.entry_type(service.get_ledger_entry(ctx.db, id=str(ledger_entry.id)))
        if not ledger_entry.ik:
            raise _bad("ledgerEntry", "give the entry's id, or its ik and ledger")
        ledger_ik = _ledger_ik(ctx, ledger_entry.ledger, "ledgerEntry.ledger")
        return t.entry_type(service.get_ledger_entry(ctx.db, ledger_ik=ledger_ik,
                                                     ik=ledger_entry.ik,
                                                     version=ledger_entry.ik_version))

    @strawberry.field(description="The entries of a ledger sharing a group key and value, "
                                  "with their net balances.")
    def ledger_entry_group(self, info: Info, ledger: t.LedgerMatchInput, key: str,
                           value: str) -> Optional[t.LedgerEntryGroup]:
        ctx: Context = info.context
        found = service.get_ledger(ctx.db, _ledger_ik(ctx, ledger, "ledger"))
        return t.LedgerEntryGroup(_ledger=found, key=key, value=value)

"""GraphQL input types, in the shapes of the seeds' API documentation, and the entry filter
as the wire form `ledger.service` validates."""
from __future__ import annotations

from datetime import datetime
from typing import Optional

import strawberry

from api.graphql.scalars import JSON, Int96, Period, SafeString


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
    # Required everywhere but reconcileTx, which picks the type its tx fits (seed 001);
    # the others refuse its absence as a BadRequestError naming entry.type.
    type: Optional[str] = None
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

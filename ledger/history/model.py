"""Values of history: entries with their versions, filters, pages, balance changes."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ledger.amounts import parse_time
from ledger.errors import BadRequestError
from ledger.posting.model import Entry
from ledger.text import check_storable, key_values


@dataclass
class AccountBalances:
    path: str
    type: str
    own: dict[str, int]
    child: dict[str, int]
    total: dict[str, int]


@dataclass
class HistoryEntry(Entry):
    """An entry with its place in history. ``ik_version`` counts reposts under one ik (1, 2,
    ...); a reversing entry carries the ik of the entry it reverses with version ``-n``.
    ``hidden`` is true for reversed and reversing entries, which lists leave out unless asked."""

    ik_version: int = 1
    reverses_id: str | None = None
    reversed_by_id: str | None = None
    reversed_at: datetime | None = None

    @property
    def hidden(self) -> bool:
        return self.reverses_id is not None or self.reversed_by_id is not None


@dataclass
class ReverseResult:
    reversed_entry: HistoryEntry
    reversing_entry: HistoryEntry
    is_ik_replay: bool


@dataclass
class TimeRange:
    """``start <= t < end`` (either side open when None), or a ``period`` such as ``2025-Q1``
    read in the ledger's balanceUTCOffset."""

    start: datetime | None = None
    end: datetime | None = None
    period: str | None = None

    @classmethod
    def from_input(cls, data: Any, field: str) -> "TimeRange":
        if isinstance(data, TimeRange):
            return data
        if isinstance(data, str):
            return cls(period=data)
        if not isinstance(data, dict) or not set(data) <= {"start", "end", "period"}:
            raise BadRequestError("invalid_input", f"{field}: expected a period like \"2025-02\" or {{\"start\": time, \"end\": time}}", field=field)
        if data.get("period") is not None:
            if not isinstance(data["period"], str) or data.get("start") or data.get("end"):
                raise BadRequestError("invalid_input", f"{field}: give a period or start/end, not both", field=field)
            return cls(period=data["period"])
        start = parse_time(data["start"], f"{field}.start") if data.get("start") is not None else None
        end = parse_time(data["end"], f"{field}.end") if data.get("end") is not None else None
        return cls(start, end)


@dataclass
class EntryFilter:
    """Filters of entry and line lists. All given filters must hold. ``tags`` and ``groups``
    match entries having every given key with its value. ``reversed``: False (default) leaves
    out reversed and reversing entries, True keeps only those, None keeps all."""

    posted: TimeRange | None = None
    created: TimeRange | None = None
    types: list[str] | None = None
    tags: dict[str, str] = field(default_factory=dict)
    groups: dict[str, str] = field(default_factory=dict)
    currency: str | None = None
    reversed: bool | None = False

    @classmethod
    def from_input(cls, data: Any, field: str = "filter") -> "EntryFilter":
        """From the wire shape ``{posted, created, type, tags, groups, currency, reversed}``:
        ``type`` a string or list, ``tags``/``groups`` as ``[{key, value}]`` or a dict,
        ``currency`` as ``"USD"`` or ``{"code": "USD"}``, ``reversed`` true/false/null."""
        if data is None:
            return cls()
        if isinstance(data, EntryFilter):
            return data
        if not isinstance(data, dict):
            raise BadRequestError("invalid_input", f"{field}: expected an object", field=field)
        known = {"posted", "created", "type", "tags", "groups", "currency", "reversed"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise BadRequestError("invalid_input", f"{field}.{unknown[0]}: unknown filter (use {', '.join(sorted(known))})", field=f"{field}.{unknown[0]}")
        types = data.get("type")
        if types is not None:
            types = [types] if isinstance(types, str) else types
            if not isinstance(types, list) or not types or not all(isinstance(x, str) and x for x in types):
                raise BadRequestError("invalid_input", f"{field}.type: expected an entry type or a list of them", field=f"{field}.type")
            check_storable(types, f"{field}.type")
        currency = data.get("currency")
        if isinstance(currency, dict):
            currency = currency.get("code")
        if currency is not None and (not isinstance(currency, str) or not currency):
            raise BadRequestError("invalid_input", f"{field}.currency: expected a currency code like \"USD\"", field=f"{field}.currency")
        check_storable(currency, f"{field}.currency")
        reversed_ = data.get("reversed", False)
        if reversed_ is not None and not isinstance(reversed_, bool):
            raise BadRequestError("invalid_input", f"{field}.reversed: expected true, false or null", field=f"{field}.reversed")
        return cls(
            posted=TimeRange.from_input(data["posted"], f"{field}.posted") if data.get("posted") is not None else None,
            created=TimeRange.from_input(data["created"], f"{field}.created") if data.get("created") is not None else None,
            types=types, tags=key_values(data.get("tags"), f"{field}.tags"),
            groups=key_values(data.get("groups"), f"{field}.groups"), currency=currency,
            reversed=reversed_)


@dataclass
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@dataclass
class Page:
    """One page of a list, newest first (``posted`` descending, then id descending)."""

    nodes: list
    page_info: PageInfo


@dataclass
class BalanceChange:
    """How an account's balances changed over ``[start, end)``, per currency."""

    path: str
    type: str
    period: str
    start: datetime
    end: datetime
    own: dict[str, int]
    child: dict[str, int]
    total: dict[str, int]


@dataclass
class EntryChange:
    id: str
    entry_id: str
    changed: datetime
    tags_before: dict[str, str]
    tags_after: dict[str, str]
    groups_before: dict[str, str]
    groups_after: dict[str, str]


@dataclass
class UpdateEntryResult:
    entry: HistoryEntry
    change: EntryChange | None  # None when the update changed nothing


@dataclass
class GroupBalance:
    account_path: str
    currency: str
    amount: int  # net change of the account's own balance by the group's entries


@dataclass
class EntryGroup:
    key: str
    value: str
    balances: list[GroupBalance]


@dataclass
class AccountInfo:
    """An account a ledger holds: one that lines were posted to (template instances and
    plain accounts alike are stored on first use)."""

    id: str
    path: str
    type: str
    consistency: str
    created: datetime

"""Ledger history in the SDK: reversals, tag and group updates, entry / line / account
lists with keyset pages, balance changes over a period and group balances.

Like ``links.py``, the methods live on both clients (``Client`` awaits them, ``SyncClient``
returns the value): each builds one operation and hands it to the client's ``_run``, which
retries and raises typed errors like every other call.

A ``filter`` is the API's ``LedgerEntriesFilter`` as a dict: ``posted`` / ``created`` as
``{"start": ..., "end": ...}`` or ``{"period": "2025-Q1"}`` (a bare period string works
too), ``type`` (a list), ``tags`` / ``groups`` (a dict or ``[{key, value}]``), ``currency``
(``"USD"`` or ``{"code": "USD"}``), ``reversed`` (True, False, or None for all).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ledger_sdk import documents as d
from ledger_sdk.errors import BadRequestError
from ledger_sdk.operations import Operations
from ledger_sdk.types import LedgerEntry, LedgerLine, as_key_values, parse_time

_ERR = d.ERROR_FIELDS
_PAGE = "pageInfo { hasNextPage hasPreviousPage startCursor endCursor }"
_LINE = d.LINE_FIELDS
_ENTRY = (f"{d.ENTRY_FIELDS} hidden reversedAt ikVersion reversedBy {{ id }} reverses {{ id }} "
          f"lines {{ nodes {{ {_LINE} }} }}")

REVERSE_LEDGER_ENTRY = f"""mutation ReverseLedgerEntry($id: ID, $ledgerEntry: LedgerEntryMatchInput) {{
  reverseLedgerEntry(id: $id, ledgerEntry: $ledgerEntry) {{
    __typename
    ... on ReverseLedgerEntryResult {{
      isIkReplay
      reversedLedgerEntry {{ {_ENTRY} }}
      reversingLedgerEntry {{ {_ENTRY} }}
    }}
    {_ERR}
  }}
}}"""

UPDATE_LEDGER_ENTRY = f"""mutation UpdateLedgerEntry($ledgerEntry: LedgerEntryMatchInput!, $update: UpdateLedgerEntryInput!) {{
  updateLedgerEntry(ledgerEntry: $ledgerEntry, update: $update) {{
    __typename
    ... on UpdateLedgerEntryResult {{ entry {{ {_ENTRY} }} change {{ id changed }} }}
    {_ERR}
  }}
}}"""

_PAGING = "$first: Int, $after: String, $last: Int, $before: String"
_PAGE_ARGS = "first: $first, after: $after, last: $last, before: $before"

LIST_LEDGER_ENTRIES = f"""query ListLedgerEntries($ledger: LedgerMatchInput!, $filter: LedgerEntriesFilter, $account: LedgerAccountMatchInput, {_PAGING}) {{
  ledger(ledger: $ledger) {{
    ledgerEntries(filter: $filter, account: $account, {_PAGE_ARGS}) {{
      nodes {{ {_ENTRY} }}
      {_PAGE}
    }}
  }}
}}"""

LIST_LINES = f"""query ListLines($ledger: LedgerMatchInput!, $filter: LedgerLinesFilter, $account: LedgerAccountMatchInput, {_PAGING}) {{
  ledger(ledger: $ledger) {{
    lines(filter: $filter, account: $account, {_PAGE_ARGS}) {{
      nodes {{ {_LINE} }}
      {_PAGE}
    }}
  }}
}}"""

LIST_LEDGER_ACCOUNTS = f"""query ListLedgerAccounts($ledger: LedgerMatchInput!, {_PAGING}) {{
  ledger(ledger: $ledger) {{
    ledgerAccounts({_PAGE_ARGS}) {{
      nodes {{ id path type }}
      {_PAGE}
    }}
  }}
}}"""

BALANCE_CHANGE = f"""query BalanceChange($ledgerAccount: LedgerAccountMatchInput!, $period: Period!) {{
  ledgerAccount(ledgerAccount: $ledgerAccount) {{
    path type
    ownBalanceChanges(period: $period) {{ {d.AMOUNTS} }}
    childBalanceChanges(period: $period) {{ {d.AMOUNTS} }}
    balanceChanges(period: $period) {{ {d.AMOUNTS} }}
  }}
}}"""

LEDGER_ENTRY_GROUP = f"""query LedgerEntryGroup($ledger: LedgerMatchInput!, $key: String!, $value: String!, $filter: LedgerEntriesFilter, {_PAGING}) {{
  ledgerEntryGroup(ledger: $ledger, key: $key, value: $value) {{
    key value
    balances(filter: $filter) {{ nodes {{ account {{ path }} currency {{ code }} ownBalance }} }}
    ledgerEntries(filter: $filter, {_PAGE_ARGS}) {{
      nodes {{ {_ENTRY} }}
      {_PAGE}
    }}
  }}
}}"""


@dataclass
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None

    @classmethod
    def from_wire(cls, data: dict) -> "PageInfo":
        return cls(data["hasNextPage"], data["hasPreviousPage"], data.get("startCursor"),
                   data.get("endCursor"))


@dataclass
class Page:
    """One page, newest first for entries and lines, by path for accounts. Pass
    ``page_info.end_cursor`` as ``after`` for the next page (``start_cursor`` as ``before``
    with ``last`` for the previous one)."""

    nodes: list
    page_info: PageInfo


@dataclass
class HistoryEntry(LedgerEntry):
    """An entry with its place in history."""

    hidden: bool = False
    reversed_at: datetime | None = None
    reversed_by_id: str | None = None
    reverses_id: str | None = None
    ik_version: int = 1

    @classmethod
    def from_wire(cls, data: dict, lines: list | None = None) -> "HistoryEntry":
        base = LedgerEntry.from_wire(data, lines)
        return cls(**base.__dict__, hidden=bool(data.get("hidden")),
                   reversed_at=parse_time(data.get("reversedAt")),
                   reversed_by_id=(data.get("reversedBy") or {}).get("id"),
                   reverses_id=(data.get("reverses") or {}).get("id"),
                   ik_version=data.get("ikVersion", 1))


@dataclass
class ReverseResult:
    reversed_entry: HistoryEntry
    reversing_entry: HistoryEntry
    is_ik_replay: bool


@dataclass
class UpdateResult:
    entry: HistoryEntry
    changed: bool  # False when the update set what was already there


@dataclass
class AccountSummary:
    id: str
    path: str
    type: str | None


@dataclass
class BalanceChange:
    path: str
    period: str
    own: dict[str, int]
    child: dict[str, int]
    total: dict[str, int]


@dataclass
class GroupBalance:
    account_path: str
    currency: str
    amount: int


@dataclass
class EntryGroup:
    key: str
    value: str
    balances: list[GroupBalance]
    entries: Page = field(default_factory=lambda: Page([], PageInfo(False, False, None, None)))


def _amounts(connection: dict | None) -> dict[str, int]:
    return {n["currency"]["code"]: int(n["amount"]) for n in (connection or {}).get("nodes", [])}


def filter_input(value: dict | None) -> dict | None:
    """A filter dict in the API's shape, accepting a few Python conveniences."""
    if value is None:
        return None
    out = dict(value)
    for name in ("posted", "created"):
        rng = out.get(name)
        if isinstance(rng, str):
            out[name] = {"period": rng}
        elif isinstance(rng, dict):
            out[name] = {k: v.isoformat() if isinstance(v, datetime) else v
                         for k, v in rng.items()}
    if isinstance(out.get("type"), str):
        out["type"] = [out["type"]]
    for name in ("tags", "groups"):
        if isinstance(out.get(name), dict):
            out[name] = as_key_values(out[name])
    if isinstance(out.get("currency"), str):
        out["currency"] = {"code": out["currency"]}
    return out


def _page(connection: dict, parse) -> Page:
    return Page([parse(n) for n in connection["nodes"]], PageInfo.from_wire(connection["pageInfo"]))


def _account(path: str | None) -> dict | None:
    return {"path": path} if path is not None else None


def _updates(values: Any) -> list[dict] | None:
    """``{key: value}`` (None removes the key) or the wire's ``[{key, value}]``."""
    if values is None:
        return None
    if isinstance(values, dict):
        return [{"key": str(k), "value": None if v is None else str(v)} for k, v in values.items()]
    return list(values)


class HistoryMixin(Operations):
    """Mixed into the SDK clients; see the module docstring."""

    def _entry_match(self, id: str | None, ik: str | None, ledger: str | None) -> dict:
        if id is not None:
            return {"id": str(id)}
        if ik is None:
            raise BadRequestError("invalid_input", "pass the entry's id=, or ik= (with ledger=)")
        return {"ik": ik, "ledger": {"ik": self._ledger(ledger)}}

    def reverse_ledger_entry(self, id: str | None = None, *, ik: str | None = None,
                             ledger: str | None = None):
        """Reverse an entry (by id, or by ik in a ledger). Reversing it again is a replay
        (``is_ik_replay``), so retries are safe. A reversal that would cross a condition
        raises ``BadRequestError`` with code ``condition_failed``."""
        variables = ({"id": str(id)} if id is not None
                     else {"ledgerEntry": self._entry_match(None, ik, ledger)})
        return self._call(
            REVERSE_LEDGER_ENTRY, variables, "reverseLedgerEntry",
            lambda v: ReverseResult(HistoryEntry.from_wire(v["reversedLedgerEntry"]),
                                    HistoryEntry.from_wire(v["reversingLedgerEntry"]),
                                    v["isIkReplay"]))

    def update_ledger_entry(self, id: str | None = None, *, ik: str | None = None,
                            ledger: str | None = None, tags: Any = None, groups: Any = None):
        """Set tags and groups of an entry (``{key: value}``; a None value removes the key);
        keys not given stay. Reversed and reversing entries refuse (``entry_reversed``)."""
        update = {k: v for k, v in (("tags", _updates(tags)), ("groups", _updates(groups)))
                  if v is not None}
        return self._call(
            UPDATE_LEDGER_ENTRY, {"ledgerEntry": self._entry_match(id, ik, ledger),
                                  "update": update}, "updateLedgerEntry",
            lambda v: UpdateResult(HistoryEntry.from_wire(v["entry"]), v["change"] is not None))

    def list_ledger_entries(self, ledger: str | None = None, *, filter: dict | None = None,
                            account: str | None = None, first: int | None = None,
                            after: str | None = None, last: int | None = None,
                            before: str | None = None):
        """One page of a ledger's entries (``Page`` of ``HistoryEntry``), newest posted
        first; ``account`` keeps those with a line in that path or pattern."""
        return self._call(
            LIST_LEDGER_ENTRIES, {"ledger": {"ik": self._ledger(ledger)},
                                  "filter": filter_input(filter), "account": _account(account),
                                  "first": first, "after": after, "last": last,
                                  "before": before},
            "ledger", lambda v: _page(v["ledgerEntries"], HistoryEntry.from_wire))

    def list_lines(self, path: str | None = None, ledger: str | None = None, *,
                   filter: dict | None = None, first: int | None = None,
                   after: str | None = None, last: int | None = None,
                   before: str | None = None):
        """One page of lines (``Page`` of ``LedgerLine``), newest posted first: of an
        account, a pattern (``liabilities/users:*/available``, ``assets/*``) or, with no
        path, the whole ledger."""
        return self._call(
            LIST_LINES, {"ledger": {"ik": self._ledger(ledger)}, "filter": filter_input(filter),
                         "account": _account(path), "first": first, "after": after,
                         "last": last, "before": before},
            "ledger", lambda v: _page(v["lines"], LedgerLine.from_wire))

    def list_ledger_accounts(self, ledger: str | None = None, *, first: int | None = None,
                             after: str | None = None, last: int | None = None,
                             before: str | None = None):
        """One page of the accounts a ledger holds (``Page`` of ``AccountSummary``), by path."""
        return self._call(
            LIST_LEDGER_ACCOUNTS, {"ledger": {"ik": self._ledger(ledger)}, "first": first,
                                   "after": after, "last": last, "before": before},
            "ledger", lambda v: _page(v["ledgerAccounts"],
                                      lambda n: AccountSummary(n["id"], n["path"], n.get("type"))))

    def get_balance_change(self, path: str, period: str, ledger: str | None = None):
        """How an account's own, child and total balances changed over ``period`` (``2025``,
        ``2025-Q1``, ``2025-02``, ``2025-02-03``, ``2025-02-03T04``), per currency."""
        return self._call(
            BALANCE_CHANGE, {"ledgerAccount": {"path": path, "ledger": {"ik": self._ledger(ledger)}},
                             "period": period}, "ledgerAccount",
            lambda v: BalanceChange(v["path"], period, _amounts(v["ownBalanceChanges"]),
                                    _amounts(v["childBalanceChanges"]),
                                    _amounts(v["balanceChanges"])))

    def get_ledger_entry_group(self, key: str, value: str, ledger: str | None = None, *,
                               filter: dict | None = None, first: int | None = None,
                               after: str | None = None, last: int | None = None,
                               before: str | None = None):
        """A group's net balances per account and currency, and one page of its entries."""
        def parse(v):
            return EntryGroup(v["key"], v["value"],
                              [GroupBalance(n["account"]["path"], n["currency"]["code"],
                                            int(n["ownBalance"])) for n in v["balances"]["nodes"]],
                              _page(v["ledgerEntries"], HistoryEntry.from_wire))
        return self._call(
            LEDGER_ENTRY_GROUP, {"ledger": {"ik": self._ledger(ledger)}, "key": key,
                                 "value": value, "filter": filter_input(filter), "first": first,
                                 "after": after, "last": last, "before": before},
            "ledgerEntryGroup", parse)

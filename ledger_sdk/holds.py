"""Holds in the SDK (two-phase posting): post an entry as a hold, commit it (all or a part)
or void it, and read pending and available balances. On both clients, like the other
mixins: ``Client`` awaits these methods, ``SyncClient`` returns their value."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ledger_sdk import documents as d
from ledger_sdk.errors import NotFoundError
from ledger_sdk.operations import Operation, Operations
from ledger_sdk.types import LedgerEntry, LedgerLine, parse_time

_HOLD = f"status expiresAt created resolvedAt lines {{ nodes {{ {d.LINE_FIELDS} }} }}"
_ENTRY = f"{d.ENTRY_FIELDS} status hold {{ {_HOLD} }} lines {{ nodes {{ {d.LINE_FIELDS} }} }}"

ADD_LEDGER_HOLD = f"""mutation AddLedgerHold($ik: SafeString!, $entry: LedgerEntryInput!, $hold: HoldInput!) {{
  addLedgerEntry(ik: $ik, entry: $entry, hold: $hold) {{
    __typename
    ... on AddLedgerEntryResult {{ isIkReplay entry {{ {_ENTRY} }} }}
    {d.ERROR_FIELDS}
  }}
}}"""

ADD_LEDGER_HOLDS = f"""mutation AddLedgerHolds($entries: [AddLedgerEntryInput!]!, $hold: HoldInput!) {{
  addLedgerEntries(entries: $entries, hold: $hold) {{
    __typename
    ... on AddLedgerEntriesResult {{ results {{ isIkReplay entry {{ {_ENTRY} }} }} }}
    {d.ERROR_FIELDS}
  }}
}}"""

COMMIT_LEDGER_ENTRY = f"""mutation CommitLedgerEntry($id: ID, $ledgerEntry: LedgerEntryMatchInput, $amount: Int96, $parameters: JSON) {{
  commitLedgerEntry(id: $id, ledgerEntry: $ledgerEntry, amount: $amount, parameters: $parameters) {{
    __typename
    ... on HoldResult {{ isIkReplay entry {{ {_ENTRY} }} }}
    {d.ERROR_FIELDS}
  }}
}}"""

VOID_LEDGER_ENTRY = f"""mutation VoidLedgerEntry($id: ID, $ledgerEntry: LedgerEntryMatchInput) {{
  voidLedgerEntry(id: $id, ledgerEntry: $ledgerEntry) {{
    __typename
    ... on HoldResult {{ isIkReplay entry {{ {_ENTRY} }} }}
    {d.ERROR_FIELDS}
  }}
}}"""

GET_LEDGER_HOLD = f"""query GetLedgerHold($ledgerEntry: LedgerEntryMatchInput!) {{
  ledgerEntry(ledgerEntry: $ledgerEntry) {{ {_ENTRY} }}
}}"""

GET_HOLD_BALANCES = f"""query GetHoldBalances($ledgerAccount: LedgerAccountMatchInput!, $at: LastMoment) {{
  ledgerAccount(ledgerAccount: $ledgerAccount) {{
    path
    ownBalances(at: $at) {{ {d.AMOUNTS} }}
    ownPendingBalances(at: $at) {{ {d.AMOUNTS} }}
    ownAvailableBalances(at: $at) {{ {d.AMOUNTS} }}
    pendingBalances(at: $at) {{ {d.AMOUNTS} }}
    availableBalances(at: $at) {{ {d.AMOUNTS} }}
  }}
}}"""


@dataclass
class Hold:
    status: str  # pending, committed, voided or expired
    expires_at: datetime
    created: datetime
    resolved_at: datetime | None
    lines: list[LedgerLine] = field(default_factory=list)  # what it reserved


@dataclass
class HoldResult:
    """An entry posted as a hold, committed or voided: ``entry.lines`` are its posted lines
    (none until committed), ``hold.lines`` what it reserved."""

    entry: LedgerEntry
    hold: Hold
    is_ik_replay: bool

    @classmethod
    def from_wire(cls, data: dict) -> "HoldResult":
        h = data["entry"]["hold"]
        hold = Hold(h["status"], _time(h["expiresAt"]), _time(h["created"]),
                    parse_time(h["resolvedAt"]) if h.get("resolvedAt") else None,
                    [LedgerLine.from_wire(x) for x in h["lines"]["nodes"]])
        return cls(LedgerEntry.from_wire(data["entry"]), hold, data["isIkReplay"])


@dataclass
class HoldBalances:
    """Per currency: posted (``own``), pending (posted + every pending line) and available
    (posted + pending decreases) own balances, and the pending and available totals."""

    path: str
    own: dict[str, int]
    own_pending: dict[str, int]
    own_available: dict[str, int]
    pending: dict[str, int]
    available: dict[str, int]

    @classmethod
    def from_wire(cls, data: dict) -> "HoldBalances":
        def amounts(name: str) -> dict[str, int]:
            return {n["currency"]["code"]: int(n["amount"]) for n in data[name]["nodes"]}
        return cls(data["path"], amounts("ownBalances"), amounts("ownPendingBalances"),
                   amounts("ownAvailableBalances"), amounts("pendingBalances"),
                   amounts("availableBalances"))


def _time(value: str) -> datetime:
    parsed = parse_time(value)
    if parsed is None:
        raise ValueError("a hold's times are never null")
    return parsed


def _found_hold(entry: dict | None) -> HoldResult:
    if entry is None or entry.get("hold") is None:
        raise NotFoundError("hold_not_found", "ledgerEntry: no hold with that id or ik")
    return HoldResult.from_wire({"entry": entry, "isIkReplay": False})


def _expiry(expires_at: datetime | str) -> dict:
    return {"expiresAt": expires_at.isoformat() if isinstance(expires_at, datetime)
            else expires_at}


class HoldsMixin(Operations):
    # Built by the client (client.py) from the same arguments as add_ledger_entry(ies).
    def _op_add_ledger_entry(self, *args: Any) -> Operation:
        raise NotImplementedError

    def _op_add_ledger_entries(self, entries: list[dict], ledger: str | None) -> Operation:
        raise NotImplementedError

    def add_ledger_hold(self, ik: str | None = None, type: str | None = None,
                        parameters: dict | None = None, *, expires_at: datetime | str,
                        ledger: str | None = None, tags: dict | None = None,
                        groups: dict | None = None, lines: list[dict] | None = None) -> Any:
        """Post an entry as a hold expiring at ``expires_at``: ``HoldResult``. A hold that
        does not fit raises ``BadRequestError`` ``condition_failed``; retrying with the same
        ik and expiry is a replay."""
        op = self._op_add_ledger_entry(ik, type, parameters, ledger, None, tags, groups, lines)
        return self._run(Operation(ADD_LEDGER_HOLD, {**op.variables, "hold": _expiry(expires_at)},
                                   "addLedgerEntry", HoldResult.from_wire, mutation=True))

    def add_ledger_holds(self, entries: list[dict], *, expires_at: datetime | str,
                         ledger: str | None = None) -> Any:
        """Post entries as holds, all or none: ``[HoldResult]``."""
        op = self._op_add_ledger_entries(entries, ledger)
        return self._run(Operation(
            ADD_LEDGER_HOLDS, {**op.variables, "hold": _expiry(expires_at)}, "addLedgerEntries",
            lambda v: [HoldResult.from_wire(r) for r in v["results"]], mutation=True))

    def _hold_ref(self, id: str | None, ik: str | None, ledger: str | None) -> dict:
        if id is not None:
            return {"id": str(id)}
        return {"ledgerEntry": {"ik": ik, "ledger": {"ik": self._ledger(ledger)}}}

    def commit_ledger_entry(self, id: str | None = None, *, ik: str | None = None,
                            ledger: str | None = None, amount: int | str | None = None,
                            parameters: dict | None = None) -> Any:
        """Post a pending hold (by id, or by ik in a ledger): all of it, ``amount`` (when
        its lines are one parameter) or recomputed from ``parameters``. Retrying with the
        same arguments is a replay; ``hold_voided`` / ``hold_expired`` / ``hold_exceeded``
        raise ``BadRequestError``."""
        variables = self._hold_ref(id, ik, ledger)
        if amount is not None:
            variables["amount"] = str(amount)
        if parameters is not None:
            variables["parameters"] = {k: str(v) for k, v in parameters.items()}
        return self._call(COMMIT_LEDGER_ENTRY, variables, "commitLedgerEntry",
                          HoldResult.from_wire)

    def void_ledger_entry(self, id: str | None = None, *, ik: str | None = None,
                          ledger: str | None = None) -> Any:
        """Release a pending hold; again: a replay."""
        return self._call(VOID_LEDGER_ENTRY, self._hold_ref(id, ik, ledger), "voidLedgerEntry",
                          HoldResult.from_wire)

    def get_ledger_hold(self, id: str | None = None, *, ik: str | None = None,
                        ledger: str | None = None) -> Any:
        """A hold as it is now (by entry id, or by ik in a ledger): ``HoldResult``
        (``is_ik_replay`` False). An entry posted outright, or none, raises
        ``NotFoundError`` ``hold_not_found``."""
        ref = {"id": str(id)} if id is not None else {"ik": ik, "ledger": {
            "ik": self._ledger(ledger)}}
        return self._call(GET_LEDGER_HOLD, {"ledgerEntry": ref}, "ledgerEntry", _found_hold)

    def get_hold_balances(self, path: str, *, ledger: str | None = None,
                          at: datetime | str | None = None) -> Any:
        """``HoldBalances`` of an account, now or ``at`` a time or the end of a period."""
        when = at.isoformat() if isinstance(at, datetime) else at
        return self._call(GET_HOLD_BALANCES, {
            "ledgerAccount": {"path": path, "ledger": {"ik": self._ledger(ledger)}}, "at": when},
            "ledgerAccount", HoldBalances.from_wire)

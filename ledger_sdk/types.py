"""Typed results. Amounts are Python ints (the wire's strings parsed), times are aware
datetimes in UTC."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


def parse_time(value: str | None) -> datetime | None:
    if value is None:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _kv(items: list | None) -> dict[str, str]:
    return {i["key"]: i["value"] for i in (items or [])}


@dataclass
class SchemaVersion:
    key: str
    name: str | None
    version: int
    created: datetime
    json: dict

    @classmethod
    def from_wire(cls, data: dict) -> "SchemaVersion":
        v = data["version"]
        return cls(key=data["key"], name=data.get("name"), version=v["version"],
                   created=parse_time(v["created"]), json=v.get("json") or {})


@dataclass
class Ledger:
    id: str
    ik: str
    name: str
    created: datetime
    schema_key: str | None = None
    balance_utc_offset: str | None = None

    @classmethod
    def from_wire(cls, data: dict) -> "Ledger":
        return cls(id=data["id"], ik=data["ik"], name=data["name"],
                   created=parse_time(data["created"]),
                   schema_key=(data.get("schema") or {}).get("key"),
                   balance_utc_offset=data.get("balanceUTCOffset"))


@dataclass
class CreateLedgerResult:
    ledger: Ledger
    is_ik_replay: bool


@dataclass
class LedgerLine:
    id: str
    key: str
    amount: int
    currency: str
    account_path: str
    type: str | None
    description: str | None
    posted: datetime
    created: datetime
    # The account's own balance in this currency right after the line, (posted, id) order.
    running_balance: int | None = None
    entry_id: str | None = None

    @classmethod
    def from_wire(cls, data: dict) -> "LedgerLine":
        running = data.get("runningBalance")
        return cls(id=data["id"], key=data["key"], amount=int(data["amount"]),
                   currency=data["currency"]["code"], account_path=data["account"]["path"],
                   type=data.get("type"), description=data.get("description"),
                   posted=parse_time(data["posted"]), created=parse_time(data["created"]),
                   running_balance=int(running) if running is not None else None,
                   entry_id=data.get("ledgerEntryId"))


@dataclass
class LedgerEntry:
    id: str
    ik: str
    type: str | None
    description: str | None
    posted: datetime
    created: datetime
    ledger_ik: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    groups: dict[str, str] = field(default_factory=dict)
    lines: list[LedgerLine] = field(default_factory=list)

    @classmethod
    def from_wire(cls, data: dict, lines: list | None = None) -> "LedgerEntry":
        if lines is None and isinstance(data.get("lines"), dict):
            lines = data["lines"].get("nodes")
        return cls(id=data["id"], ik=data["ik"], type=data.get("type"),
                   description=data.get("description"), posted=parse_time(data["posted"]),
                   created=parse_time(data["created"]),
                   ledger_ik=(data.get("ledger") or {}).get("ik"),
                   tags=_kv(data.get("tags")), groups=_kv(data.get("groups")),
                   lines=[LedgerLine.from_wire(l) for l in (lines or [])])


@dataclass
class AddLedgerEntryResult:
    entry: LedgerEntry
    lines: list[LedgerLine]
    is_ik_replay: bool

    @classmethod
    def from_wire(cls, data: dict) -> "AddLedgerEntryResult":
        entry = LedgerEntry.from_wire(data["entry"], data["lines"])
        return cls(entry=entry, lines=entry.lines, is_ik_replay=data["isIkReplay"])


def _amounts(connection: dict | None) -> dict[str, int]:
    return {n["currency"]["code"]: int(n["amount"]) for n in (connection or {}).get("nodes", [])}


@dataclass
class LedgerAccount:
    """An account's current balances, per currency (own, children's, and both)."""

    id: str
    path: str
    type: str | None
    own_balances: dict[str, int]
    child_balances: dict[str, int]
    balances: dict[str, int]

    @classmethod
    def from_wire(cls, data: dict) -> "LedgerAccount":
        return cls(id=data["id"], path=data["path"], type=data.get("type"),
                   own_balances=_amounts(data.get("ownBalances")),
                   child_balances=_amounts(data.get("childBalances")),
                   balances=_amounts(data.get("balances")))

    def _one(self, amounts: dict[str, int], currency: str | None) -> int:
        if currency is not None:
            return amounts.get(currency, 0)
        nonzero = [a for a in amounts.values() if a]
        if len(nonzero) > 1:
            raise ValueError(f"{self.path} holds several currencies; pass currency=")
        return nonzero[0] if nonzero else 0

    def own_balance(self, currency: str | None = None) -> int:
        return self._one(self.own_balances, currency)

    def child_balance(self, currency: str | None = None) -> int:
        return self._one(self.child_balances, currency)

    def balance(self, currency: str | None = None) -> int:
        return self._one(self.balances, currency)


def as_key_values(values: Any) -> list[dict] | None:
    """Tags and groups: a dict, or already the wire's list of ``{key, value}``."""
    if values is None:
        return None
    if isinstance(values, dict):
        return [{"key": str(k), "value": str(v)} for k, v in values.items()]
    return list(values)

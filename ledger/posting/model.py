"""What posting returns: posted entries and their lines."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass
class Line:
    id: str
    entry_id: str
    key: str
    account_path: str
    amount: int
    currency: str
    posted: datetime
    created: datetime
    tx_external_id: str | None = None
    description: str | None = None
    # asset, liability, income or expense: lets a reader tell debit from credit without
    # looking the account up again.
    account_type: str | None = None
    # The own balance of the account in this currency right after this line, in (posted,
    # id) order (ledger.posting.rollup.running_balances). Lines read back carry it; a posting
    # result only where it came free (not for a backdated line or an eventual account's).
    running_balance: int | None = None


@dataclass
class Entry:
    id: str
    ledger_ik: str
    ik: str
    type: str
    description: str | None
    posted: datetime
    created: datetime
    tags: dict[str, str]
    groups: dict[str, str]
    lines: list[Line]


@dataclass
class PostResult:
    entry: Entry
    lines: list[Line]
    is_ik_replay: bool


@dataclass
class Posted:
    """An entry posted (or replayed), by reference only: what a posting job records."""

    entry_id: str
    is_ik_replay: bool

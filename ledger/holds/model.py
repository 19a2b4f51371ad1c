"""What hold operations return, and their typed refusals."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ledger.errors import BadRequestError
from ledger.posting.model import Entry, Line

STATUSES = ("pending", "committed", "voided", "expired")


@dataclass
class Hold:
    entry_id: str
    status: str  # one of STATUSES
    expires_at: datetime
    created: datetime
    # When it was committed, voided or expired; None while pending.
    resolved: datetime | None
    # The pending lines it reserved (kept after it resolves: the history of what was held).
    lines: list[Line]


@dataclass
class HoldResult:
    """A hold created, committed or voided: its entry (with the lines posted so far: none
    until it is committed), the hold, and whether the call was a replay."""

    entry: Entry
    hold: Hold
    is_ik_replay: bool


@dataclass
class HoldBalances:
    """Balances of an account counting holds, per currency. ``pending``: posted plus every
    pending line; ``available``: posted plus the pending decreases only."""

    path: str
    type: str
    own_pending: dict[str, int]
    own_available: dict[str, int]
    child_pending: dict[str, int]
    child_available: dict[str, int]
    total_pending: dict[str, int]
    total_available: dict[str, int]


def resolved_error(status: str, entry_id: str, field: str = "id") -> BadRequestError:
    """The refusal of a commit or void of a hold that is no longer pending."""
    what = {"committed": "was committed", "voided": "was voided",
            "expired": "expired"}[status]
    return BadRequestError(f"hold_{status}", f"{field}: hold {entry_id} {what}; it can no "
                           "longer be committed or voided", field=field)


def expired_error(entry_id: str, expires_at: datetime, field: str = "id") -> BadRequestError:
    return BadRequestError("hold_expired", f"{field}: hold {entry_id} expired at "
                           f"{expires_at.isoformat()}; nothing was posted", field=field)

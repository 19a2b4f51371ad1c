"""Values and constants of the Stripe link."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import stripe

from ledger.settings import Secret

__all__ = ["Secret"]  # the credential wrapper is the settings' own

PAGE_LIMIT = 100  # Stripe's maximum page size
WEBHOOK_TOLERANCE_SECONDS = 300
TRAILING_WINDOW = timedelta(days=3)
# A trailing backfill starts this far before the end of the last complete one, so objects
# created while it ran (and committed late at Stripe) are listed again.
OVERLAP = timedelta(hours=1)
# An event whose charge has not settled (no balance transaction yet) stays in the inbox and
# is tried again by the sweep for this long; past it, the trailing backfill is what finds
# the charge's balance transaction (and its own charge.succeeded event, if it comes).
SETTLE_WAIT = timedelta(days=7)
# Pending balance transactions are re-checked when due, and at least this often.
RECHECK_EVERY = timedelta(hours=6)
CHARGE_TYPES = ("charge", "payment")
FEE_SUFFIX = ":fee"
DEFAULT_PARAMETERS = {"user_id": "metadata.user_id"}


@dataclass
class StripeSettings:
    link_id: str
    ledger_ik: str | None
    charge_entry_type: str | None
    fee_entry_type: str | None
    parameters: dict[str, str]
    api_key: Secret | None
    webhook_secret: Secret | None
    done_until: datetime | None = None
    api_base: str | None = None


@dataclass
class Problem:
    balance_transaction: str
    source: str | None
    reason: str


@dataclass
class SyncReport:
    """What a sync did: balance transactions seen, still pending, synced as txs, charges
    reconciled (or found reconciled already), and the ones left unreconciled, with why."""

    listed: int = 0
    pending: int = 0
    synced: int = 0
    reconciled: int = 0
    already_reconciled: int = 0
    waiting: int = 0  # events whose charge has not settled yet: left in the inbox
    problems: list[Problem] = field(default_factory=list)

    def add(self, other: "SyncReport") -> "SyncReport":
        self.listed += other.listed
        self.pending += other.pending
        self.synced += other.synced
        self.reconciled += other.reconciled
        self.already_reconciled += other.already_reconciled
        self.waiting += other.waiting
        self.problems += other.problems
        return self


def plain(value: Any) -> dict:
    """A Stripe object as plain data: a ``stripe.StripeObject`` (what the package returns;
    not a dict) converted with its nested objects, a mapping (an event payload stored as
    JSON) as it is."""
    if isinstance(value, stripe.StripeObject):
        return value.to_dict()
    if isinstance(value, dict):
        return value
    raise TypeError(f"expected a Stripe object, got {type(value).__name__}")


def id_of(value: Any) -> str | None:
    """The id of an expandable Stripe field: the object's ``id``, or the id itself."""
    if isinstance(value, stripe.StripeObject):
        value = value.to_dict()
    if isinstance(value, dict):
        return value.get("id")
    return value if isinstance(value, str) and value else None


def ts(value: Any) -> datetime | None:
    """A Stripe timestamp (seconds since the epoch) as a UTC time."""
    return datetime.fromtimestamp(int(value), tz=timezone.utc) if value is not None else None

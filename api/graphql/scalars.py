"""Custom scalars of the wire format: amounts as strings, UTC times, safe identifiers."""
from __future__ import annotations

import re
from datetime import date, datetime, timezone
from typing import Any, NewType

import strawberry
from strawberry.scalars import JSON

from ledger.service import MAX_AMOUNT, is_canonical_amount

SafeString = NewType("SafeString", str)
Int96 = NewType("Int96", int)
Date = NewType("Date", date)
# A moment to read balances at: a time, or a period meaning its last moment (seed 002's
# ``at: "2025-02"`` reads the balance at the end of February in the ledger's offset).
LastMoment = NewType("LastMoment", str)
# A calendar period: 2025, 2025-Q1, 2025-02, 2025-02-03 or 2025-02-03T04.
Period = NewType("Period", str)

# Identifiers (iks, keys) end up in URLs, logs and CLI tables: refuse control characters
# rather than escape them everywhere.
_UNSAFE_RE = re.compile(r"[\x00-\x1f\x7f]")
MAX_SAFE_STRING = 512


def _parse_safe_string(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {type(value).__name__}")
    if not value:
        raise ValueError("expected a non-empty string")
    if len(value) > MAX_SAFE_STRING:
        raise ValueError(f"at most {MAX_SAFE_STRING} characters")
    if _UNSAFE_RE.search(value):
        raise ValueError("control characters are not allowed")
    return value


def _parse_int96(value: Any) -> int:
    # Floats are refused even when integral: 1e2 on the wire means someone did money math
    # in floating point before calling us.
    if isinstance(value, bool) or isinstance(value, float):
        raise ValueError("amounts are integers in minor units sent as strings, e.g. \"250\"")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and len(value) <= 40 and is_canonical_amount(value):
        number = int(value)
    else:
        # The ledger's one rule (ledger/amounts.py): 0|-?[1-9][0-9]*, nothing around it.
        raise ValueError("invalid_amount: expected an integer amount in minor units as a "
                         f"canonical string like \"250\" or \"-250\", got {value!r:.60}")
    if abs(number) > MAX_AMOUNT:
        raise ValueError("amount out of range: at most 2^120-1 in magnitude")
    return number


def _serialize_int96(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("Int96 values are integers")
    return str(value)


def serialize_datetime(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    text = value.astimezone(timezone.utc).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def _parse_datetime(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError("expected an ISO 8601 date-time string")
    text = value.strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    dt = datetime.fromisoformat(text)  # ValueError carries the reason
    if dt.tzinfo is None:
        # The seeds post times such as "1234-01-01T01:01:01": no offset means UTC.
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def _parse_short_text(value: Any) -> str:
    # The ledger parses periods and times (in the ledger's offset); here only the shape.
    if not isinstance(value, str) or not value.strip():
        raise ValueError("expected a non-empty string like 2025-02 or 2025-02-03T04:05:06Z")
    if len(value) > 64:
        raise ValueError("at most 64 characters")
    return value.strip()


def _parse_date(value: Any) -> date:
    if not isinstance(value, str):
        raise ValueError("expected an ISO 8601 date string like 2025-01-31")
    return date.fromisoformat(value.strip())


SCALAR_MAP = {
    SafeString: strawberry.scalar(
        name="SafeString",
        description="A non-empty string of at most 512 characters without control characters.",
        serialize=str, parse_value=_parse_safe_string),
    Int96: strawberry.scalar(
        name="Int96",
        description="An integer amount in minor units, as a string on the wire: \"250\" is 2.50.",
        serialize=_serialize_int96, parse_value=_parse_int96),
    datetime: strawberry.scalar(
        name="DateTime",
        description="An ISO 8601 date-time; without an offset it means UTC. Answers are UTC.",
        serialize=serialize_datetime, parse_value=_parse_datetime),
    Date: strawberry.scalar(
        name="Date", description="An ISO 8601 date, e.g. 1969-07-21.",
        serialize=lambda d: d.isoformat(), parse_value=_parse_date),
    LastMoment: strawberry.scalar(
        name="LastMoment",
        description="A time (ISO 8601; UTC without an offset), or a period standing for its "
                    "last moment in the ledger's balanceUTCOffset: 2025, 2025-Q1, 2025-02, "
                    "2025-02-03, 2025-02-03T04.",
        serialize=str, parse_value=_parse_short_text),
    Period: strawberry.scalar(
        name="Period",
        description="A period in the ledger's balanceUTCOffset: 2025, 2025-Q1, 2025-02, "
                    "2025-02-03 or 2025-02-03T04.",
        serialize=str, parse_value=_parse_short_text),
}

__all__ = ["SafeString", "Int96", "Date", "LastMoment", "Period", "JSON", "SCALAR_MAP", "serialize_datetime"]

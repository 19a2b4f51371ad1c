"""Amounts in minor units and times, as every part of the ledger reads them from callers."""
from __future__ import annotations

import re
from datetime import date, datetime, timezone
from typing import Any

from ledger.errors import BadRequestError

# Int96 on the wire, and wider: every amount we store or accept fits in 120 bits.
MAX_AMOUNT = 2**120 - 1


_INT_RE = re.compile(r"^[+-]?[0-9]+$")


CURRENCY_CODE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


def parse_amount(value: Any, field: str) -> int:
    """An amount in minor units: an int, or a string of digits. Never a float."""
    if isinstance(value, bool) or value is None:
        raise BadRequestError("invalid_amount", f"{field}: expected an integer amount in minor units, got {value!r}", field=field)
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and _INT_RE.match(value.strip()):
        number = int(value.strip())
    else:
        raise BadRequestError(
            "invalid_amount",
            f"{field}: expected an integer amount in minor units (like \"250\" for 2.50), got {value!r}",
            field=field)
    if abs(number) > MAX_AMOUNT:
        raise BadRequestError("invalid_amount", f"{field}: amount {number} is beyond ±(2^120-1)", field=field)
    return number


def parse_time(value: Any, field: str) -> datetime:
    """ISO 8601 date or date-time; a time without offset is UTC."""
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        text = value.strip()
        if text.endswith("Z") or text.endswith("z"):
            text = text[:-1] + "+00:00"
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            raise BadRequestError("invalid_input", f"{field}: expected an ISO 8601 time like 2025-01-31T12:00:00Z, got {value!r}", field=field) from None
    else:
        raise BadRequestError("invalid_input", f"{field}: expected an ISO 8601 time, got {value!r}", field=field)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)

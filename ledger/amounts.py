"""Amounts in minor units and times, as every part of the ledger reads them from callers."""
from __future__ import annotations

import re
from datetime import date, datetime, timezone
from typing import Any

from ledger.errors import BadRequestError

# Int96 on the wire, and wider: every amount we store or accept fits in 120 bits.
MAX_AMOUNT = 2**120 - 1


# The one text form of an amount: no sign on zero, no leading zeros, no spaces, no "+".
# Looser forms ("+250", "00250", " 250", "-0") would give one amount many spellings, and so
# many idempotency fingerprints and log lines for what a caller meant as one request.
CANONICAL_AMOUNT = re.compile(r"0|-?[1-9][0-9]*")


CURRENCY_CODE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


def is_canonical_amount(text: str) -> bool:
    """``0|-?[1-9][0-9]*``, whole (fullmatch: ``$`` would let a final newline through)."""
    return CANONICAL_AMOUNT.fullmatch(text) is not None


def parse_amount(value: Any, field: str) -> int:
    """An amount in minor units: an int, or its canonical decimal text. Never a float."""
    if isinstance(value, bool) or value is None:
        raise BadRequestError("invalid_amount", f"{field}: expected an integer amount in minor units, got {value!r}", field=field)
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and is_canonical_amount(value):
        if len(value) > _MAX_AMOUNT_CHARS:  # not even converted: int() of 5,000 digits raises
            raise _out_of_range(field, f"{value[:12]}... ({len(value)} characters)")
        number = int(value)
    else:
        raise BadRequestError(
            "invalid_amount",
            f"{field}: expected an integer amount in minor units in its canonical form "
            f"(like \"250\" for 2.50: digits, an optional leading \"-\", no leading zeros, "
            f"no spaces), got {_shown(value)}",
            field=field)
    if abs(number) > MAX_AMOUNT:
        raise _out_of_range(field, number)
    return number


_MAX_AMOUNT_CHARS = len(str(-MAX_AMOUNT))


def _shown(value: Any) -> str:
    """A refused value as the error shows it: enough to recognise, never the whole of a
    500,000-character string."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:50]}... ({len(text)} characters)"


def _out_of_range(field: str, shown: Any) -> BadRequestError:
    return BadRequestError("invalid_amount", f"{field}: amount {shown} is beyond ±(2^120-1)", field=field)


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

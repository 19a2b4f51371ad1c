"""Periods (``2025``, ``2025-Q1``, ``2025-02-03T04``) read in a ledger's balanceUTCOffset."""
from __future__ import annotations

import re
from calendar import monthrange
from datetime import datetime, timedelta, timezone
from typing import Any

from ledger.amounts import parse_time
from ledger.errors import BadRequestError
from ledger.history.model import TimeRange

_PERIOD = re.compile(r"^(\d{4})(?:-Q([1-4])|-(\d{2})(?:-(\d{2})(?:T(\d{2}))?)?)?$", re.IGNORECASE)


_OFFSET = re.compile(r"^([+-])(\d{2}):00$")


_END_OF_TIME = datetime.max.replace(tzinfo=timezone.utc)


def ledger_timezone(offset: str) -> timezone:
    m = _OFFSET.match(offset or "+00:00")
    if not m:
        return timezone.utc
    hours = int(m.group(2)) * (-1 if m.group(1) == "-" else 1)
    return timezone(timedelta(hours=hours))


def _local(tz: timezone, year: int, month: int = 1, day: int = 1, hour: int = 0) -> datetime:
    if year > 9999:
        return _END_OF_TIME
    return datetime(year, month, day, hour, tzinfo=tz).astimezone(timezone.utc)


def is_period(text: Any) -> bool:
    return isinstance(text, str) and _PERIOD.match(text.strip()) is not None


def period_range(period: str, offset: str, field: str = "period") -> tuple[datetime, datetime]:
    """``[start, end)`` in UTC of ``2025``, ``2025-Q1``, ``2025-02``, ``2025-02-03`` or
    ``2025-02-03T04``, whose calendar is the ledger's balanceUTCOffset."""
    m = _PERIOD.match(period.strip()) if isinstance(period, str) else None
    bad = BadRequestError(
        "invalid_input", f"{field}: expected a period like 2025, 2025-Q1, 2025-02, 2025-02-03 "
        f"or 2025-02-03T04, got {period!r}", field=field)
    if m is None:
        raise bad
    tz = ledger_timezone(offset)
    year, quarter, month, day, hour = m.groups()
    y = int(year)
    if y < 1:
        raise bad
    if quarter:
        q = int(quarter)
        start = _local(tz, y, 3 * q - 2)
        end = _local(tz, y + 1) if q == 4 else _local(tz, y, 3 * q + 1)
        return start, end
    if month is None:
        return _local(tz, y), _local(tz, y + 1)
    mo = int(month)
    if not 1 <= mo <= 12:
        raise bad
    if day is None:
        return _local(tz, y, mo), (_local(tz, y + 1) if mo == 12 else _local(tz, y, mo + 1))
    d = int(day)
    if not 1 <= d <= monthrange(y, mo)[1]:
        raise bad
    try:
        if hour is None:
            start = _local(tz, y, mo, d)
            return start, _after(start, timedelta(days=1))
        h = int(hour)
        if not 0 <= h <= 23:
            raise bad
        start = _local(tz, y, mo, d, h)
        return start, _after(start, timedelta(hours=1))
    except (OverflowError, ValueError):
        raise bad from None


def _after(start: datetime, step: timedelta) -> datetime:
    try:
        return start + step
    except OverflowError:
        return _END_OF_TIME


def resolve_at(at: Any, offset: str, field: str = "at") -> tuple[datetime, bool]:
    """The moment a balance is read at, and whether a line posted exactly then counts.

    A period string (``2025-02``) means the end of that period in the ledger's offset: every
    line posted before the next period starts. A time (a datetime or an ISO 8601 string
    with a time) counts every line posted at or before it."""
    if isinstance(at, str) and is_period(at):
        return period_range(at, offset, field)[1], False
    return parse_time(at, field), True


def _range(r: TimeRange | None, offset: str, field: str) -> tuple[datetime | None, datetime | None]:
    if r is None:
        return None, None
    if r.period is not None:
        return period_range(r.period, offset, field)
    return r.start, r.end

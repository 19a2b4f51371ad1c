"""Values that cross the boundary of the ledger package: requests in, results out."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any

from ledger.errors import BadRequestError

# Int96 on the wire, and wider: every amount we store or accept fits in 120 bits.
MAX_AMOUNT = 2**120 - 1

_INT_RE = re.compile(r"^[+-]?[0-9]+$")


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


def _key_values(value: Any, field: str) -> dict[str, str]:
    """Tags and groups arrive as ``[{"key": k, "value": v}]`` (the seeds) or as a dict."""
    if value is None:
        return {}
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = []
        for i, item in enumerate(value):
            if not isinstance(item, dict) or "key" not in item or "value" not in item:
                raise BadRequestError("invalid_input", f"{field}[{i}]: expected {{\"key\": ..., \"value\": ...}}", field=f"{field}[{i}]")
            items.append((item["key"], item["value"]))
    else:
        raise BadRequestError("invalid_input", f"{field}: expected a list of {{key, value}}", field=field)
    out: dict[str, str] = {}
    for k, v in items:
        if not isinstance(k, str) or not k:
            raise BadRequestError("invalid_input", f"{field}: a key must be a non-empty string", field=field)
        if not isinstance(v, (str, int)) or isinstance(v, bool):
            raise BadRequestError("invalid_input", f"{field}.{k}: value must be a string", field=f"{field}.{k}")
        if k in out:
            raise BadRequestError("invalid_input", f"{field}: key {k!r} given twice", field=field)
        out[k] = str(v)
    return out


@dataclass
class EntryRequest:
    """One entry to post: an entry type and its parameters, or runtime lines."""

    ik: str
    type: str
    parameters: dict[str, Any] = field(default_factory=dict)
    posted: datetime | None = None
    tags: dict[str, str] = field(default_factory=dict)
    groups: dict[str, str] = field(default_factory=dict)
    lines: list[dict] | None = None

    @classmethod
    def from_input(cls, data: Any, field: str = "entry", ik: str | None = None) -> "EntryRequest":
        if not isinstance(data, dict):
            raise BadRequestError("invalid_input", f"{field}: expected an object", field=field)
        ik = ik if ik is not None else data.get("ik")
        if not isinstance(ik, str) or not ik.strip():
            raise BadRequestError("invalid_input", f"{field}.ik: an idempotency key (non-empty string) is required", field=f"{field}.ik")
        if len(ik) > 512:
            raise BadRequestError("invalid_input", f"{field}.ik: at most 512 characters", field=f"{field}.ik")
        etype = data.get("type")
        if not isinstance(etype, str) or not etype:
            raise BadRequestError("invalid_input", f"{field}.type: the entry type is required", field=f"{field}.type")
        params = data.get("parameters") or {}
        if not isinstance(params, dict):
            raise BadRequestError("invalid_input", f"{field}.parameters: expected an object", field=f"{field}.parameters")
        for k, v in params.items():
            if isinstance(v, float):
                raise BadRequestError("invalid_amount", f"{field}.parameters.{k}: floats are refused; send integers in minor units as strings", field=f"{field}.parameters.{k}")
            if not isinstance(v, (str, int)) or isinstance(v, bool):
                raise BadRequestError("invalid_parameter", f"{field}.parameters.{k}: expected a string or integer, got {v!r}", field=f"{field}.parameters.{k}")
        posted = data.get("posted")
        lines = data.get("lines")
        if lines is not None and not isinstance(lines, list):
            raise BadRequestError("invalid_input", f"{field}.lines: expected a list", field=f"{field}.lines")
        return cls(
            ik=ik,
            type=etype,
            parameters=dict(params),
            posted=parse_time(posted, f"{field}.posted") if posted is not None else None,
            tags=_key_values(data.get("tags"), f"{field}.tags"),
            groups=_key_values(data.get("groups"), f"{field}.groups"),
            lines=lines,
        )


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
class SchemaVersion:
    key: str
    name: str | None
    version: int
    created: datetime
    json: dict


@dataclass
class SchemaIssue:
    path: str
    message: str


@dataclass
class Ledger:
    id: int
    ik: str
    name: str
    schema_key: str
    created: datetime
    balance_utc_offset: str


@dataclass
class CreateLedgerResult:
    ledger: Ledger
    is_ik_replay: bool


@dataclass
class AccountBalances:
    path: str
    type: str
    own: dict[str, int]
    child: dict[str, int]
    total: dict[str, int]

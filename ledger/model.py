"""Values that cross the boundary of the ledger package: requests in, results out."""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
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


def _unstorable(text: str) -> bool:
    """PostgreSQL text holds neither NUL nor a lone surrogate (JSON lets a caller send both,
    as \\u0000 and \\ud800)."""
    if "\x00" in text:
        return True
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _not_storable(field: str) -> BadRequestError:
    return BadRequestError(
        "invalid_input", f"{field}: contains a NUL character or a lone surrogate "
        "(\\u0000, \\ud800-\\udfff), which cannot be stored", field=field)


def _key_name(key: Any) -> str:
    return key.encode("unicode_escape").decode() if isinstance(key, str) else str(key)


def check_storable(value: Any, field: str) -> None:
    """Refuse, naming the field, any string in ``value`` (keys too) that the database cannot
    store. Requests are checked where they are read, so that no job is accepted that a
    worker could never write: it would fail its whole batch on every retry."""
    if isinstance(value, str):
        if _unstorable(value):
            raise _not_storable(field)
    elif isinstance(value, dict):
        for k, v in value.items():
            name = f"{field}.{_key_name(k)}"
            if isinstance(k, str) and _unstorable(k):
                raise _not_storable(name)
            check_storable(v, name)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            check_storable(v, f"{field}[{i}]")


def _key_values(value: Any, field: str) -> dict[str, str]:
    """Tags and groups arrive as ``[{"key": k, "value": v}]`` (the seeds), as (key, value)
    pairs (typed callers) or as a dict."""
    if value is None:
        return {}
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, (list, tuple)):
        items = []
        for i, item in enumerate(value):
            if isinstance(item, tuple) and len(item) == 2:
                items.append(item)
                continue
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
        if _unstorable(k) or (type(v) is str and _unstorable(v)):
            raise _not_storable(f"{field}.{_key_name(k)}")
        out[k] = str(v)
    return out


@dataclass(frozen=True)
class LineInput:
    """One line of an entry of a runtime entry type, as the caller gives it. ``amount`` is
    an int once the request is built (``EntryRequest.build`` parses a str); ``tx`` names the
    external tx the line reconciles (reconcileTx only)."""

    key: str
    account_path: str
    amount: int | None = None
    currency: str | None = None
    description: str | None = None
    tx: str | None = None

    def to_json(self) -> dict:
        """The wire form (the seeds' LedgerLineInput), which the outbox stores and the
        idempotency fingerprint hashes."""
        out: dict[str, Any] = {"key": self.key, "account": {"path": self.account_path}}
        if self.amount is not None:
            out["amount"] = str(self.amount)
        if self.currency is not None:
            out["currency"] = {"code": self.currency}
        if self.description is not None:
            out["description"] = self.description
        if self.tx is not None:
            out["tx"] = {"externalId": self.tx}
        return out

    @classmethod
    def from_wire(cls, raw: Any, field: str) -> "LineInput":
        """A line of the JSON wire form; checks what only that form can get wrong (the
        types of its nesting). ``EntryRequest.build`` checks the values."""
        if not isinstance(raw, dict):
            raise BadRequestError("invalid_input", f"{field}: a line must be an object", field=field)
        account = raw.get("account")
        cur = raw.get("currency")
        code = cur.get("code") if isinstance(cur, dict) else cur
        if code is not None and (not isinstance(code, str) or not CURRENCY_CODE.match(code)):
            raise BadRequestError("invalid_input", f"{field}.currency: invalid currency {cur!r}", field=f"{field}.currency")
        tx = raw.get("tx")
        ext = tx.get("externalId") if isinstance(tx, dict) else None
        if ext is not None and not isinstance(ext, str):
            raise BadRequestError("invalid_input", f"{field}.tx.externalId: expected a string", field=f"{field}.tx.externalId")
        description = raw.get("description")
        return cls(raw.get("key"), account.get("path") if isinstance(account, dict) else None,
                   raw.get("amount"), code,
                   description if isinstance(description, str) else None, ext or None)


def _check_line(line: Any, field: str, keys: set[str]) -> LineInput:
    """A line with its values checked and its amount parsed; what needs the schema (the
    account, its currency, a linked account's tx) is checked when the entry compiles."""
    if not isinstance(line, LineInput):
        raise BadRequestError("invalid_input", f"{field}: a line must be an object", field=field)
    if not isinstance(line.key, str) or not line.key:
        raise BadRequestError("invalid_input", f"{field}.key: a line needs a key", field=f"{field}.key")
    if line.key in keys:
        raise BadRequestError("invalid_input", f"{field}.key: duplicate line key {line.key!r}", field=f"{field}.key")
    keys.add(line.key)
    if not isinstance(line.account_path, str) or not line.account_path:
        raise BadRequestError("invalid_input", f"{field}.account.path: an account path is required", field=f"{field}.account.path")
    if line.currency is not None and (not isinstance(line.currency, str)
                                      or not CURRENCY_CODE.match(line.currency)):
        raise BadRequestError("invalid_input", f"{field}.currency: invalid currency {line.currency!r}", field=f"{field}.currency")
    for name, value in (("key", line.key), ("account.path", line.account_path),
                        ("description", line.description), ("tx.externalId", line.tx)):
        if isinstance(value, str) and _unstorable(value):
            raise _not_storable(f"{field}.{name}")
    if line.amount is None:
        return line
    amount = parse_amount(line.amount, f"{field}.amount")
    return line if type(line.amount) is int else replace(line, amount=amount)


def _check_ik(ik: Any, field: str) -> str:
    if not isinstance(ik, str) or not ik.strip():
        raise BadRequestError("invalid_input", f"{field}.ik: an idempotency key (non-empty string) is required", field=f"{field}.ik")
    if len(ik) > 512:
        raise BadRequestError("invalid_input", f"{field}.ik: at most 512 characters", field=f"{field}.ik")
    if _unstorable(ik):
        raise _not_storable(f"{field}.ik")
    return ik


def _check_parameters(params: Any, field: str) -> dict[str, str]:
    if not isinstance(params, dict):
        raise BadRequestError("invalid_input", f"{field}.parameters: expected an object", field=f"{field}.parameters")
    for k, v in params.items():
        if isinstance(v, float):
            raise BadRequestError("invalid_amount", f"{field}.parameters.{k}: floats are refused; send integers in minor units as strings", field=f"{field}.parameters.{k}")
        if not isinstance(v, (str, int)) or isinstance(v, bool):
            raise BadRequestError("invalid_parameter", f"{field}.parameters.{k}: expected a string or integer, got {v!r}", field=f"{field}.parameters.{k}")
        if (isinstance(k, str) and _unstorable(k)) or (type(v) is str and _unstorable(v)):
            raise _not_storable(f"{field}.parameters.{_key_name(k)}")
    return {k: str(v) for k, v in params.items()}


@dataclass
class EntryRequest:
    """One entry to post: an entry type and its parameters, or runtime lines. Built by
    ``build`` (typed callers), ``from_input`` (the JSON wire form) or ``from_json`` (the
    outbox's stored form)."""

    ik: str
    type: str
    parameters: dict[str, str] = field(default_factory=dict)
    posted: datetime | None = None
    tags: dict[str, str] = field(default_factory=dict)
    groups: dict[str, str] = field(default_factory=dict)
    lines: tuple[LineInput, ...] | None = None

    @classmethod
    def build(cls, *, ik: Any, type: Any, parameters: Any = None, posted: Any = None,
              tags: Any = None, groups: Any = None, lines: Any = None,
              field: str = "entry") -> "EntryRequest":
        """The validating constructor: parameters as str or int, ``posted`` a datetime or
        ISO 8601 text, tags and groups a dict or (key, value) pairs, lines ``LineInput``s
        (amounts as int or str). Errors name ``field`` and the part at fault."""
        ik = _check_ik(ik, field)
        if not isinstance(type, str) or not type:
            raise BadRequestError("invalid_input", f"{field}.type: the entry type is required", field=f"{field}.type")
        if _unstorable(type):
            raise _not_storable(f"{field}.type")
        params = _check_parameters(parameters or {}, field)
        if lines is not None and not isinstance(lines, (list, tuple)):
            raise BadRequestError("invalid_input", f"{field}.lines: expected a list", field=f"{field}.lines")
        keys: set[str] = set()
        checked = tuple(_check_line(line, f"{field}.lines[{i}]", keys)
                        for i, line in enumerate(lines)) if lines is not None else None
        return cls(
            ik=ik, type=type, parameters=params,
            posted=parse_time(posted, f"{field}.posted") if posted is not None else None,
            tags=_key_values(tags, f"{field}.tags"),
            groups=_key_values(groups, f"{field}.groups"),
            lines=checked)

    @classmethod
    def from_input(cls, data: Any, field: str = "entry", ik: str | None = None) -> "EntryRequest":
        """From the JSON wire form (the seeds' LedgerEntryInput, as REST sends it)."""
        if not isinstance(data, dict):
            raise BadRequestError("invalid_input", f"{field}: expected an object", field=field)
        lines = data.get("lines")
        if lines is not None:
            if not isinstance(lines, list):
                raise BadRequestError("invalid_input", f"{field}.lines: expected a list", field=f"{field}.lines")
            # Checked on the raw form too: a key the typed line leaves out could hold it.
            check_storable(lines, f"{field}.lines")
            lines = [LineInput.from_wire(raw, f"{field}.lines[{i}]") for i, raw in enumerate(lines)]
        return cls.build(ik=ik if ik is not None else data.get("ik"), type=data.get("type"),
                         parameters=data.get("parameters"), posted=data.get("posted"),
                         tags=data.get("tags"), groups=data.get("groups"), lines=lines,
                         field=field)

    def to_json(self) -> dict:
        """The outbox's stored form (``posting_jobs.request``): two submissions of one
        request store equal documents, and ``from_json`` reads it back."""
        out: dict[str, Any] = {"ik": self.ik, "type": self.type,
                               "parameters": dict(self.parameters)}
        if self.posted is not None:
            out["posted"] = self.posted.isoformat()
        if self.tags:
            out["tags"] = dict(self.tags)
        if self.groups:
            out["groups"] = dict(self.groups)
        if self.lines is not None:
            out["lines"] = [line.to_json() for line in self.lines]
        return out

    @classmethod
    def from_json(cls, doc: dict) -> "EntryRequest":
        """A request ``to_json`` stored (or an older row, whose lines and parameters are
        still in the wire form). It was checked when accepted, so it is not checked again;
        only runtime lines are read as typed lines, which refuses a shape no version wrote."""
        try:
            raw_lines = doc.get("lines")
            lines = None
            if raw_lines is not None:
                keys: set[str] = set()
                lines = tuple(_check_line(LineInput.from_wire(raw, f"entry.lines[{i}]"),
                                          f"entry.lines[{i}]", keys)
                              for i, raw in enumerate(raw_lines))
            posted = doc.get("posted")
            return cls(ik=doc["ik"], type=doc["type"],
                       parameters={k: str(v) for k, v in (doc.get("parameters") or {}).items()},
                       posted=parse_time(posted, "entry.posted") if posted is not None else None,
                       tags=dict(doc.get("tags") or {}), groups=dict(doc.get("groups") or {}),
                       lines=lines)
        except (KeyError, TypeError, AttributeError, ValueError):
            raise BadRequestError("invalid_input", "entry: the stored request is not an "
                                  "entry request", field="entry") from None


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


# ---------------------------------------------------------------- history (ledger/history.py)

@dataclass
class HistoryEntry(Entry):
    """An entry with its place in history. ``ik_version`` counts reposts under one ik (1, 2,
    ...); a reversing entry carries the ik of the entry it reverses with version ``-n``.
    ``hidden`` is true for reversed and reversing entries, which lists leave out unless asked."""

    ik_version: int = 1
    reverses_id: str | None = None
    reversed_by_id: str | None = None
    reversed_at: datetime | None = None

    @property
    def hidden(self) -> bool:
        return self.reverses_id is not None or self.reversed_by_id is not None


@dataclass
class ReverseResult:
    reversed_entry: HistoryEntry
    reversing_entry: HistoryEntry
    is_ik_replay: bool


@dataclass
class TimeRange:
    """``start <= t < end`` (either side open when None), or a ``period`` such as ``2025-Q1``
    read in the ledger's balanceUTCOffset."""

    start: datetime | None = None
    end: datetime | None = None
    period: str | None = None

    @classmethod
    def from_input(cls, data: Any, field: str) -> "TimeRange":
        if isinstance(data, TimeRange):
            return data
        if isinstance(data, str):
            return cls(period=data)
        if not isinstance(data, dict) or not set(data) <= {"start", "end", "period"}:
            raise BadRequestError("invalid_input", f"{field}: expected a period like \"2025-02\" or {{\"start\": time, \"end\": time}}", field=field)
        if data.get("period") is not None:
            if not isinstance(data["period"], str) or data.get("start") or data.get("end"):
                raise BadRequestError("invalid_input", f"{field}: give a period or start/end, not both", field=field)
            return cls(period=data["period"])
        start = parse_time(data["start"], f"{field}.start") if data.get("start") is not None else None
        end = parse_time(data["end"], f"{field}.end") if data.get("end") is not None else None
        return cls(start, end)


@dataclass
class EntryFilter:
    """Filters of entry and line lists. All given filters must hold. ``tags`` and ``groups``
    match entries having every given key with its value. ``reversed``: False (default) leaves
    out reversed and reversing entries, True keeps only those, None keeps all."""

    posted: TimeRange | None = None
    created: TimeRange | None = None
    types: list[str] | None = None
    tags: dict[str, str] = field(default_factory=dict)
    groups: dict[str, str] = field(default_factory=dict)
    currency: str | None = None
    reversed: bool | None = False

    @classmethod
    def from_input(cls, data: Any, field: str = "filter") -> "EntryFilter":
        """From the wire shape ``{posted, created, type, tags, groups, currency, reversed}``:
        ``type`` a string or list, ``tags``/``groups`` as ``[{key, value}]`` or a dict,
        ``currency`` as ``"USD"`` or ``{"code": "USD"}``, ``reversed`` true/false/null."""
        if data is None:
            return cls()
        if isinstance(data, EntryFilter):
            return data
        if not isinstance(data, dict):
            raise BadRequestError("invalid_input", f"{field}: expected an object", field=field)
        known = {"posted", "created", "type", "tags", "groups", "currency", "reversed"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise BadRequestError("invalid_input", f"{field}.{unknown[0]}: unknown filter (use {', '.join(sorted(known))})", field=f"{field}.{unknown[0]}")
        types = data.get("type")
        if types is not None:
            types = [types] if isinstance(types, str) else types
            if not isinstance(types, list) or not types or not all(isinstance(x, str) and x for x in types):
                raise BadRequestError("invalid_input", f"{field}.type: expected an entry type or a list of them", field=f"{field}.type")
        currency = data.get("currency")
        if isinstance(currency, dict):
            currency = currency.get("code")
        if currency is not None and (not isinstance(currency, str) or not currency):
            raise BadRequestError("invalid_input", f"{field}.currency: expected a currency code like \"USD\"", field=f"{field}.currency")
        reversed_ = data.get("reversed", False)
        if reversed_ is not None and not isinstance(reversed_, bool):
            raise BadRequestError("invalid_input", f"{field}.reversed: expected true, false or null", field=f"{field}.reversed")
        return cls(
            posted=TimeRange.from_input(data["posted"], f"{field}.posted") if data.get("posted") is not None else None,
            created=TimeRange.from_input(data["created"], f"{field}.created") if data.get("created") is not None else None,
            types=types, tags=_key_values(data.get("tags"), f"{field}.tags"),
            groups=_key_values(data.get("groups"), f"{field}.groups"), currency=currency,
            reversed=reversed_)


@dataclass
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@dataclass
class Page:
    """One page of a list, newest first (``posted`` descending, then id descending)."""

    nodes: list
    page_info: PageInfo


@dataclass
class BalanceChange:
    """How an account's balances changed over ``[start, end)``, per currency."""

    path: str
    type: str
    period: str
    start: datetime
    end: datetime
    own: dict[str, int]
    child: dict[str, int]
    total: dict[str, int]


@dataclass
class EntryChange:
    id: str
    entry_id: str
    changed: datetime
    tags_before: dict[str, str]
    tags_after: dict[str, str]
    groups_before: dict[str, str]
    groups_after: dict[str, str]


@dataclass
class UpdateEntryResult:
    entry: HistoryEntry
    change: EntryChange | None  # None when the update changed nothing


@dataclass
class GroupBalance:
    account_path: str
    currency: str
    amount: int  # net change of the account's own balance by the group's entries


@dataclass
class EntryGroup:
    key: str
    value: str
    balances: list[GroupBalance]


@dataclass
class AccountInfo:
    """An account a ledger holds: one that lines were posted to (template instances and
    plain accounts alike are stored on first use)."""

    id: str
    path: str
    type: str
    consistency: str
    created: datetime

"""The typed commands every path posts with: an entry request and its runtime lines.

The edges build them (a GraphQL resolver with `EntryRequest.build`, a REST body with
`EntryRequest.from_input`, a stored job with `EntryRequest.from_json`); below the edge
nothing re-checks a dict."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from ledger.amounts import CURRENCY_CODE, parse_amount, parse_time
from ledger.errors import BadRequestError
from ledger.text import check_storable, key_name, key_values, not_storable, unstorable


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
        if isinstance(value, str) and unstorable(value):
            raise not_storable(f"{field}.{name}")
    if line.amount is None:
        return line
    amount = parse_amount(line.amount, f"{field}.amount")
    return line if type(line.amount) is int else replace(line, amount=amount)


def _check_ik(ik: Any, field: str) -> str:
    if not isinstance(ik, str) or not ik.strip():
        raise BadRequestError("invalid_input", f"{field}.ik: an idempotency key (non-empty string) is required", field=f"{field}.ik")
    if len(ik) > 512:
        raise BadRequestError("invalid_input", f"{field}.ik: at most 512 characters", field=f"{field}.ik")
    if unstorable(ik):
        raise not_storable(f"{field}.ik")
    return ik


def _check_parameters(params: Any, field: str) -> dict[str, str]:
    if not isinstance(params, dict):
        raise BadRequestError("invalid_input", f"{field}.parameters: expected an object", field=f"{field}.parameters")
    for k, v in params.items():
        if isinstance(v, float):
            raise BadRequestError("invalid_amount", f"{field}.parameters.{k}: floats are refused; send integers in minor units as strings", field=f"{field}.parameters.{k}")
        if not isinstance(v, (str, int)) or isinstance(v, bool):
            raise BadRequestError("invalid_parameter", f"{field}.parameters.{k}: expected a string or integer, got {v!r}", field=f"{field}.parameters.{k}")
        if (isinstance(k, str) and unstorable(k)) or (type(v) is str and unstorable(v)):
            raise not_storable(f"{field}.parameters.{key_name(k)}")
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
    # Set only on an asynchronous job (REST /entries with ``hold``): the worker posts the
    # entry as a hold expiring then (ledger/holds/), not outright.
    hold_expires_at: datetime | None = None

    @classmethod
    def build(cls, *, ik: Any, type: Any, parameters: Any = None, posted: Any = None,
              tags: Any = None, groups: Any = None, lines: Any = None,
              field: str = "entry", ik_required: bool = True,
              type_required: bool = True) -> "EntryRequest":
        """The validating constructor: parameters as str or int, ``posted`` a datetime or
        ISO 8601 text, tags and groups a dict or (key, value) pairs, lines ``LineInput``s
        (amounts as int or str). Errors name ``field`` and the part at fault. Without
        ``ik_required`` an absent ik is left empty for the caller to fill (a reconciliation
        takes its tx's external id). Likewise without ``type_required`` an absent type is
        left empty (a reconciliation picks the one its tx fits)."""
        ik = _check_ik(ik, field) if ik_required or ik not in (None, "") else ""
        if type is None and not type_required:
            type = ""
        elif not isinstance(type, str) or not type:
            raise BadRequestError("invalid_input", f"{field}.type: the entry type is required", field=f"{field}.type")
        if unstorable(type):
            raise not_storable(f"{field}.type")
        params = _check_parameters(parameters or {}, field)
        if lines is not None and not isinstance(lines, (list, tuple)):
            raise BadRequestError("invalid_input", f"{field}.lines: expected a list", field=f"{field}.lines")
        keys: set[str] = set()
        checked = tuple(_check_line(line, f"{field}.lines[{i}]", keys)
                        for i, line in enumerate(lines)) if lines is not None else None
        return cls(
            ik=ik, type=type, parameters=params,
            posted=parse_time(posted, f"{field}.posted") if posted is not None else None,
            tags=key_values(tags, f"{field}.tags"),
            groups=key_values(groups, f"{field}.groups"),
            lines=checked)

    @classmethod
    def from_input(cls, data: Any, field: str = "entry", ik: str | None = None,
                   ik_required: bool = True, type_required: bool = True) -> "EntryRequest":
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
                         field=field, ik_required=ik_required, type_required=type_required)

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
        if self.hold_expires_at is not None:
            out["hold"] = {"expiresAt": self.hold_expires_at.isoformat()}
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
            hold = doc.get("hold")
            expiry = parse_time(hold["expiresAt"], "hold.expiresAt") if hold else None
            return cls(ik=doc["ik"], type=doc["type"], hold_expires_at=expiry,
                       parameters={k: str(v) for k, v in (doc.get("parameters") or {}).items()},
                       posted=parse_time(posted, "entry.posted") if posted is not None else None,
                       tags=dict(doc.get("tags") or {}), groups=dict(doc.get("groups") or {}),
                       lines=lines)
        except (KeyError, TypeError, AttributeError, ValueError):
            raise BadRequestError("invalid_input", "entry: the stored request is not an "
                                  "entry request", field="entry") from None

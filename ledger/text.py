"""Text the database can store, and the key/value pairs (tags, groups) callers send."""
from __future__ import annotations

from typing import Any

from ledger.errors import BadRequestError


def unstorable(text: str) -> bool:
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


def not_storable(field: str) -> BadRequestError:
    return BadRequestError(
        "invalid_input", f"{field}: contains a NUL character or a lone surrogate "
        "(\\u0000, \\ud800-\\udfff), which cannot be stored", field=field)


def key_name(key: Any) -> str:
    return key.encode("unicode_escape").decode() if isinstance(key, str) else str(key)


def check_storable(value: Any, field: str) -> None:
    """Refuse, naming the field, any string in ``value`` (keys too) that the database cannot
    store. Requests are checked where they are read, so that no job is accepted that a
    worker could never write: it would fail its whole batch on every retry."""
    if isinstance(value, str):
        if unstorable(value):
            raise not_storable(field)
    elif isinstance(value, dict):
        for k, v in value.items():
            name = f"{field}.{key_name(k)}"
            if isinstance(k, str) and unstorable(k):
                raise not_storable(name)
            check_storable(v, name)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            check_storable(v, f"{field}[{i}]")


def key_values(value: Any, field: str) -> dict[str, str]:
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
        if unstorable(k) or (type(v) is str and unstorable(v)):
            raise not_storable(f"{field}.{key_name(k)}")
        out[k] = str(v)
    return out

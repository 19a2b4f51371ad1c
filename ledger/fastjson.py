"""JSON encoding of the documents we build in bulk: the batches of rows the engine and the
outbox send to PostgreSQL as one document each, and the answers to batch submissions.

orjson encodes them several times faster than the standard library, which matters at
thousands of entries a second. It refuses two things we can meet: integers beyond 64 bits
(amounts have no upper bound) and non-string keys; for those the standard library encodes
the whole document. Both give the same text for everything JSON can hold but floats
(tests/unit/test_fastjson.py), and no amount is ever a float.

Decoding (``loads``, the API's request bodies) is orjson's only for text with no run of 19
digits or more: orjson reads an integer beyond 64 bits as a float, which must never happen
to money, so such text, and anything orjson refuses (NaN, lone surrogates, other
encodings), goes to the standard library. Fingerprints (ledger.schema.canonical_json) stay
with it too: they are stored, so their text must not depend on which encoder ran.
"""
from __future__ import annotations

import json
import re
from typing import Any

import orjson


def dumps(value: Any) -> str:
    """Compact JSON text of ``value``."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def canonical(value: Any) -> str:
    """Compact JSON text with keys sorted: equal documents give equal text."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# 19 digits can already pass 2^63 (orjson keeps an integer exact only up to 64 bits).
_LONG_NUMBER = re.compile(rb"[0-9]{19}")
_LONG_NUMBER_TEXT = re.compile(r"[0-9]{19}")


def loads(text: bytes | str) -> Any:
    """The JSON value of ``text``, exactly as ``json.loads`` gives it (the same errors)."""
    long_number = _LONG_NUMBER_TEXT if isinstance(text, str) else _LONG_NUMBER
    if not long_number.search(text):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass  # the standard library's own verdict, and its message
    return json.loads(text)

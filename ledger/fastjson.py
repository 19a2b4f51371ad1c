"""JSON encoding of the documents we build in bulk: the batches of rows the engine and the
outbox send to PostgreSQL as one document each, and the answers to batch submissions.

orjson encodes them several times faster than the standard library, which matters at
thousands of entries a second. It refuses two things we can meet: integers beyond 64 bits
(amounts have no upper bound) and non-string keys; for those the standard library encodes
the whole document. Both give the same text for everything JSON can hold but floats
(tests/unit/test_fastjson.py), and no amount is ever a float.

Decoding stays with the standard library: orjson reads an integer beyond 64 bits as a
float, which must never happen to money. Fingerprints (ledger.schema.canonical_json) stay
with it too: they are stored, so their text must not depend on which encoder ran.
"""
from __future__ import annotations

import json
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

"""ledger.fastjson writes what the standard library would, for every value but floats."""
from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import fastjson
from ledger.posting.idempotency import fingerprint
from ledger.service import EntryRequest

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30)


def stdlib(value, sort_keys=False) -> str:
    return json.dumps(value, sort_keys=sort_keys, separators=(",", ":"), ensure_ascii=False)


@settings(max_examples=300)
@given(values)
def test_same_text_as_the_standard_library(value):
    assert fastjson.dumps(value) == stdlib(value)
    assert fastjson.canonical(value) == stdlib(value, sort_keys=True)


def test_what_orjson_refuses_falls_back_whole():
    big = {"amount": 10**30, "nested": [-(2**64), {"x": 2**63}]}
    assert fastjson.dumps(big) == stdlib(big)
    assert json.loads(fastjson.dumps(big)) == big  # no digit of money lost
    assert fastjson.canonical({2: "b", 1: "a"}) == '{"1":"a","2":"b"}'
    assert fastjson.dumps("lone \ud800 surrogate") == stdlib("lone \ud800 surrogate")


# What an entry request may hold: text PostgreSQL can store (model.check_storable).
stored_text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"))
requests = st.builds(
    lambda params, tags, groups, posted: EntryRequest.from_input({
        "ik": "ik", "type": "deposit", "parameters": params, "tags": tags, "groups": groups,
        **({"posted": posted} if posted else {})}),
    st.dictionaries(stored_text.filter(bool), stored_text | st.integers(), max_size=4),
    st.dictionaries(stored_text.filter(bool), stored_text, max_size=3),
    st.dictionaries(stored_text.filter(bool), stored_text, max_size=3),
    st.sampled_from([None, "2025-03-01T10:00:00+05:00"]))


@settings(max_examples=200)
@given(requests)
def test_fingerprints_are_what_the_standard_library_made(entry):
    # Fingerprints are stored: one computed now must equal one computed before orjson.
    fast = fingerprint(entry)
    original = fastjson.canonical
    fastjson.canonical = lambda value: stdlib(value, sort_keys=True)
    try:
        assert fingerprint(entry) == fast
    finally:
        fastjson.canonical = original


documents = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30)


def typed(value):
    """``value`` with the type of every leaf spelled out: 1, 1.0 and True compare equal."""
    if isinstance(value, dict):
        return {k: typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [typed(v) for v in value]
    return (type(value).__name__, repr(value))


def outcome(load, text):
    try:
        return typed(load(text))
    except ValueError:  # JSONDecodeError and UnicodeDecodeError alike
        return "refused"


@settings(max_examples=300)
@given(documents, st.booleans())
def test_loads_reads_what_the_standard_library_reads(value, spaced):
    text = json.dumps(value, ensure_ascii=False, indent=1 if spaced else None)
    for given_text in (text, text.encode()):
        assert outcome(fastjson.loads, given_text) == outcome(json.loads, given_text)


# Pieces of JSON text, right and wrong: nearly-documents find the differences bytes miss.
pieces = st.lists(st.sampled_from([
    "{", "}", "[", "]", '"', ":", ",", "0", "7", "-", ".", "e", "+", " ", "true", "nul",
    "NaN", "Infinity", "12345678901234567890", "\\u", "d800", "dc00", "\\n", "\\x", "é",
    "\ufeff", "\x01"]), max_size=12).map("".join)


@settings(max_examples=500)
@given(st.binary(max_size=40) | pieces | pieces.map(str.encode))
def test_loads_refuses_and_accepts_what_the_standard_library_does(raw):
    assert outcome(fastjson.loads, raw) == outcome(json.loads, raw)


def test_no_digit_of_a_long_number_is_lost():
    raw = b'{"amount": 123456789012345678901234567890, "small": -9223372036854775809}'
    assert fastjson.loads(raw) == {"amount": 123456789012345678901234567890,
                                   "small": -9223372036854775809}
    assert fastjson.loads(b"NaN") != fastjson.loads(b"NaN")  # the standard library's NaN
    assert fastjson.loads(b'\xef\xbb\xbf{"a": 1}') == {"a": 1}

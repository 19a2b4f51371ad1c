"""Pure logic behind the refusals of hostile input (issue 12): the JSON nesting bound,
row ids past bigint, and the index range of an account pattern's literal head."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, strategies as st

from api import jsonbody
from ledger.errors import BadRequestError
from ledger.history.queries import _after_prefix
from ledger.ledgers import parse_id


def python_depth(value) -> int:
    if isinstance(value, list):
        return 1 + max((python_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((python_depth(v) for v in value.values()), default=0)
    return 0


@pytest.mark.parametrize("text,depth", [
    ("1", 0), ('"[[[["', 0), ("[]", 1), ("{}", 1), ('{"a": [1, {"b": []}]}', 4),
    ('["\\"[", ["]"]]', 2), ('"\\\\" [[]]', 2), ("[" * 100_000 + "]" * 100_000, 100_000),
])
def test_nesting_depth(text, depth):
    assert jsonbody.nesting_depth(text) == depth
    assert jsonbody.nesting_depth(text.encode()) == depth


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=20)


@given(json_values)
def test_nesting_depth_agrees_with_the_decoded_value(value):
    for ensure_ascii in (True, False):
        text = json.dumps(value, ensure_ascii=ensure_ascii)
        assert jsonbody.nesting_depth(text.encode("utf-8", "surrogatepass")) == python_depth(value)


def test_loads_refuses_too_deep_and_not_json():
    assert jsonbody.loads(b'{"a": [[1]]}', 3) == {"a": [[1]]}
    with pytest.raises(BadRequestError) as deep:
        jsonbody.loads(b'{"a": [[1]]}', 2)
    assert (deep.value.code, deep.value.field) == ("json_too_deep", "body")
    with pytest.raises(BadRequestError) as bad:
        jsonbody.loads(b'{"a": ', 2)
    assert (bad.value.code, bad.value.field) == ("invalid_input", "body")


@pytest.mark.parametrize("value,expected", [
    (1, 1), ("42", 42), (2**63 - 1, 2**63 - 1), (str(2**63 - 1), 2**63 - 1),
    (2**63, None), ("99999999999999999999999", None), ("0", None), (0, None), (-1, None),
    ("-1", None), ("+1", None), ("1e5", None), ("", None), ("\u0663", None), ("1\x00", None),
    (True, None), (None, None), (1.0, None),
])
def test_parse_id(value, expected):
    assert parse_id(value) == expected


@pytest.mark.parametrize("prefix,upper", [
    ("users:", "users;"), ("a\ud7ff", "a\ue000"), ("a\U0010ffff", "b"), ("\U0010ffff", None),
])
def test_after_prefix_skips_surrogates_and_the_last_code_point(prefix, upper):
    assert _after_prefix(prefix) == upper
    if upper is not None:
        upper.encode("utf-8")  # storable: PostgreSQL can be sent it

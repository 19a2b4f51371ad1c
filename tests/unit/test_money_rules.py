"""Issue 12's money rules as pure functions: canonical amount text, account-name values,
parameter declarations and the values a request sends, standing bounds for the audit."""
from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.amounts import MAX_AMOUNT, parse_amount
from ledger.audit import standing_bounds
from ledger.commands import EntryRequest
from ledger.errors import BadRequestError, SchemaError
from ledger.schema.compile import compile_entry
from ledger.schema.model import is_safe_value
from ledger.schema.parse import parse_schema

amounts = st.integers(min_value=-MAX_AMOUNT, max_value=MAX_AMOUNT)


@given(amounts)
def test_canonical_amount_text_round_trips(n):
    assert parse_amount(str(n), "a") == n
    assert parse_amount(n, "a") == n


@given(st.text(alphabet="0123456789+- \n\t\u00a0\u0660", max_size=12))
def test_any_non_canonical_text_is_refused(text):
    canonical = re.fullmatch(r"0|-?[1-9][0-9]*", text) is not None
    try:
        parse_amount(text, "a")
    except BadRequestError as exc:
        assert exc.code == "invalid_amount"
        assert not canonical or len(text) > 37
    else:
        assert canonical


@pytest.mark.parametrize("text", [" 250", "250 ", "+250", "00250", "-0", "250\n", "", "-",
                                  "٢٥٠", "1_000", str(MAX_AMOUNT + 1), "9" * 5000])
def test_loose_amounts_are_invalid_amount(text):
    with pytest.raises(BadRequestError) as info:
        parse_amount(text, "entry.parameters.amount")
    assert info.value.code == "invalid_amount"
    assert info.value.field == "entry.parameters.amount"
    assert len(info.value.message) < 400


@pytest.mark.parametrize("value", ["alice", "user-1", "café", "ユーザー", "a.b_c"])
def test_safe_account_values(value):
    assert is_safe_value(value)


@pytest.mark.parametrize("value", ["", "alice\n", "ali\u200bce", "alice\u00a0", "a\u2028",
                                   "a\u2029", "a\x00", "a\x7f", "a\u0085", "\u202eali",
                                   "\ufeffalice", "a b", "a/b", "a:b", "a*", "{{a}}"])
def test_look_alike_account_values(value):
    assert not is_safe_value(value)


def wallet(declared=None, extra_types=()) -> dict:
    deposit = {"type": "deposit", "description": "fund {{user_id}}",
               "lines": [
                   {"key": "bank", "account": {"path": "assets/bank"}, "amount": "{{amount}}"},
                   {"key": "user", "account": {"path": "liabilities/users:{{user_id}}/available"},
                    "amount": "{{amount}}"}]}
    if declared is not None:
        deposit["parameters"] = declared
    withdraw = {"type": "withdraw",
                "lines": [
                    {"key": "bank", "account": {"path": "assets/bank"}, "amount": "-{{amount}}"},
                    {"key": "user", "account": {"path": "liabilities/users:{{user_id}}/available"},
                     "amount": "-{{amount}}"}],
                "conditions": [{"account": {"path": "liabilities/users:{{user_id}}/available"},
                                "postcondition": {"ownBalance": {"gte": "{{floor}}"}}}]}
    return {"key": "w", "chartOfAccounts": {
        "assets": {"bank": {}}, "liabilities": {"users": {"template": True, "available": {}}}},
        "ledgerEntries": {"types": [deposit, withdraw, *extra_types]}}


def post(schema, type_, **parameters):
    return compile_entry(schema, EntryRequest.build(ik="x", type=type_, parameters=parameters))


def refusal(schema, type_, **parameters) -> BadRequestError:
    with pytest.raises(BadRequestError) as info:
        post(schema, type_, **parameters)
    return info.value


def test_amount_parameters_are_non_negative_by_default():
    schema = parse_schema(wallet())
    assert post(schema, "deposit", user_id="a", amount="0").lines[0].amount == 0
    err = refusal(schema, "deposit", user_id="a", amount="-1")
    assert (err.code, err.field) == ("invalid_parameter", "entry.parameters.amount")
    # A parameter only a condition value uses moves no money: it stays signed.
    entry = post(schema, "withdraw", user_id="a", amount="5", floor="-100")
    assert entry.conditions[0].value == -100 and entry.lines[0].amount == -5


def test_declared_bounds_and_sign():
    schema = parse_schema(wallet({"amount": {"min": "1", "max": "10"}, "memo": {}}))
    assert post(schema, "deposit", user_id="a", amount="10", memo="hi").lines[0].amount == 10
    for bad in ("0", "11", "-5"):
        assert refusal(schema, "deposit", user_id="a", amount=bad).code == "invalid_parameter"
    signed = parse_schema(wallet({"amount": {"signed": True, "min": "-3"}}))
    assert post(signed, "deposit", user_id="a", amount="-3").lines[1].amount == -3
    assert refusal(signed, "deposit", user_id="a", amount="-4").code == "invalid_parameter"


def test_unused_parameters_are_refused_unless_declared():
    schema = parse_schema(wallet())
    err = refusal(schema, "deposit", user_id="a", amount="1", memo="x" * 10_000)
    assert (err.code, err.field) == ("invalid_parameter", "entry.parameters.memo")
    assert len(err.message) < 300


@pytest.mark.parametrize("declared, path", [
    ({"ghost": {"max": "1"}}, "parameters.ghost"),
    ({"amount": {"min": "1", "limit": "2"}}, "parameters.amount.limit"),
    ({"amount": {"max": " 5"}}, "parameters.amount.max"),
    ({"amount": {"min": "5", "max": "4"}}, "parameters.amount"),
    ({"amount": {"min": "-5"}}, "parameters.amount.min"),
    ({"amount": {"signed": "yes"}}, "parameters.amount.signed"),
    ({"user_id": {"min": "0"}}, "parameters.user_id"),
    ({"amount": 5}, "parameters.amount"),
    (["amount"], "parameters"),
])
def test_bad_declarations_are_schema_errors(declared, path):
    with pytest.raises(SchemaError) as info:
        parse_schema(wallet(declared))
    assert [p for p, _ in info.value.issues] == [f"ledgerEntries.types[0].{path}"]


def test_standing_bounds_are_constant_postconditions_only():
    doc = wallet(extra_types=[
        {"type": "spend", "lines": [
            {"key": "bank", "account": {"path": "assets/bank"}, "amount": "-{{amount}}"},
            {"key": "user", "account": {"path": "liabilities/users:{{u}}/available"},
             "amount": "-{{amount}}"}],
         "conditions": [
             {"account": {"path": "liabilities/users:{{u}}/available"},
              "precondition": {"ownBalance": {"gte": "0"}},
              "postcondition": {"ownBalance": {"gte": "0", "eq": "0"}}}]}])
    bounds = standing_bounds(parse_schema(doc))
    assert [(c.when, c.op, c.value.const, etype) for c, etype in bounds] == [
        ("post", "gte", 0, "spend")]

"""Every rule a schema is checked against when stored: a failing document per rule, and
the error names the offending path in the document."""
from __future__ import annotations

import copy

import pytest

from ledger.commands import EntryRequest
from ledger.errors import BadRequestError, SchemaError
from ledger.schema.compile import compile_entry
from ledger.schema.model import parse_expr
from ledger.schema.parse import parse_schema, verify


def base() -> dict:
    return {
        "key": "s",
        "chartOfAccounts": {
            "defaultCurrency": {"code": "USD"},
            "accounts": [
                {"key": "assets", "type": "asset", "children": [
                    {"key": "bank"},
                    {"key": "stripe", "linkedAccount": {"linkId": "l1", "externalId": "acct"}},
                    {"key": "fx", "currencyMode": "multi"},
                ]},
                {"key": "liabilities", "type": "liability", "children": [
                    {"key": "users", "template": True, "children": [{"key": "available"}]},
                    {"key": "hot", "consistencyConfig": {"ownBalanceUpdates": "eventual"}},
                ]},
                {"key": "income", "type": "income"},
            ],
        },
        "ledgerEntries": {"types": [
            {"type": "deposit", "description": "Fund {{user_id}} for {{amount}}", "lines": [
                {"key": "bank", "account": {"path": "assets/bank"}, "amount": "{{amount}}"},
                {"key": "user", "account": {"path": "liabilities/users:{{user_id}}/available"},
                 "amount": "{{amount}}"},
            ]},
        ]},
    }


def first_line(doc):
    return doc["ledgerEntries"]["types"][0]["lines"][0]


def issues_of(doc) -> list[tuple[str, str]]:
    with pytest.raises(SchemaError) as info:
        parse_schema(doc)
    assert info.value.code == "invalid_schema"
    return info.value.issues


def assert_issue(doc, path: str, words: str):
    issues = issues_of(doc)
    assert any(p == path and words in m for p, m in issues), issues


def test_base_document_is_valid():
    assert verify(base()) == []


def test_unbalanced_entry_type_is_refused_symbolically():
    doc = base()
    first_line(doc)["amount"] = "{{amount}} + 1"
    assert_issue(doc, "ledgerEntries.types[0].lines", "does not balance in USD")


def test_balanced_only_for_some_values_is_still_refused():
    doc = base()
    t = doc["ledgerEntries"]["types"][0]
    t["lines"][0]["amount"] = "{{a}}"
    t["lines"][1]["amount"] = "{{b}}"
    t["description"] = "x"
    assert_issue(doc, "ledgerEntries.types[0].lines", "does not balance")


def test_fee_entry_balances_symbolically():
    doc = base()
    doc["ledgerEntries"]["types"].append({"type": "fee", "lines": [
        {"key": "in", "account": {"path": "assets/bank"}, "amount": "{{funding_amount}}"},
        {"key": "user", "account": {"path": "liabilities/users:{{u}}/available"},
         "amount": "{{funding_amount}} - {{fee_amount}}"},
        {"key": "fee", "account": {"path": "income"}, "amount": "{{fee_amount}}"},
    ]})
    parse_schema(doc)


def test_unknown_account_path():
    doc = base()
    first_line(doc)["account"]["path"] = "assets/nope"
    assert_issue(doc, "ledgerEntries.types[0].lines[0].account.path", "unknown account path")


def test_template_without_instance_and_instance_of_non_template():
    doc = base()
    doc["ledgerEntries"]["types"][0]["lines"][1]["account"]["path"] = "liabilities/users/available"
    assert_issue(doc, "ledgerEntries.types[0].lines[1].account.path", "template account")
    doc = base()
    first_line(doc)["account"]["path"] = "assets/bank:{{x}}"
    assert_issue(doc, "ledgerEntries.types[0].lines[0].account.path", "not a template")


def test_condition_on_account_without_line():
    doc = base()
    doc["ledgerEntries"]["types"][0]["conditions"] = [
        {"account": {"path": "income"}, "postcondition": {"ownBalance": {"gte": "0"}}}]
    assert_issue(doc, "ledgerEntries.types[0].conditions[0].account.path", "no line of this entry type")


def test_condition_on_eventually_consistent_account():
    doc = base()
    doc["ledgerEntries"]["types"].append({"type": "hot", "lines": [
        {"key": "a", "account": {"path": "assets/bank"}, "amount": "{{x}}"},
        {"key": "b", "account": {"path": "liabilities/hot"}, "amount": "{{x}}"},
    ], "conditions": [{"account": {"path": "liabilities/hot"},
                       "precondition": {"ownBalance": {"gte": "0"}}}]})
    assert_issue(doc, "ledgerEntries.types[1].conditions[0].account.path", "eventually consistent")


def test_condition_operator_and_balance_kind():
    doc = base()
    doc["ledgerEntries"]["types"][0]["conditions"] = [
        {"account": {"path": "assets/bank"}, "postcondition": {"ownBalance": {"gt": "0"}}}]
    assert_issue(doc, "ledgerEntries.types[0].conditions[0].postcondition.ownBalance.gt", "unknown operator")
    doc["ledgerEntries"]["types"][0]["conditions"] = [
        {"account": {"path": "assets/bank"}, "postcondition": {"balance": {"gte": "0"}}}]
    assert_issue(doc, "ledgerEntries.types[0].conditions[0].postcondition.balance", "ownBalance or totalBalance")
    doc["ledgerEntries"]["types"][0]["conditions"] = [{"account": {"path": "assets/bank"}}]
    assert_issue(doc, "ledgerEntries.types[0].conditions[0]", "precondition or a postcondition")


def test_tx_on_unlinked_account_and_missing_on_linked():
    doc = base()
    first_line(doc)["tx"] = {"externalId": "{{tx_id}}"}
    assert_issue(doc, "ledgerEntries.types[0].lines[0].tx", "not linked")
    doc = base()
    first_line(doc)["account"]["path"] = "assets/stripe"
    assert_issue(doc, "ledgerEntries.types[0].lines[0].tx", "is linked")


def test_duplicate_keys():
    doc = base()
    doc["chartOfAccounts"]["accounts"][0]["children"].append({"key": "bank"})
    assert_issue(doc, "chartOfAccounts.accounts[0].children[3].key", "duplicate account key")
    doc = base()
    doc["ledgerEntries"]["types"].append(copy.deepcopy(doc["ledgerEntries"]["types"][0]))
    assert_issue(doc, "ledgerEntries.types[1].type", "duplicate entry type")
    doc = base()
    doc["ledgerEntries"]["types"][0]["lines"][1]["key"] = "bank"
    assert_issue(doc, "ledgerEntries.types[0].lines[1].key", "duplicate line key")


def test_depth_over_ten():
    doc = base()
    node = {"key": "d1"}
    root = node
    for i in range(2, 12):
        child = {"key": f"d{i}"}
        node["children"] = [child]
        node = child
    doc["chartOfAccounts"]["accounts"][0]["children"].append(root)
    issues = issues_of(doc)
    assert any("deeper than 10" in m and p.startswith("chartOfAccounts.accounts[0].children[3]")
               for p, m in issues), issues


def test_contradicting_currency_settings():
    doc = base()
    doc["chartOfAccounts"]["accounts"][0]["children"][2]["currency"] = {"code": "EUR"}
    assert_issue(doc, "chartOfAccounts.accounts[0].children[2].currency", "multi-currency account cannot")
    doc = base()
    first_line(doc)["currency"] = {"code": "EUR"}
    assert_issue(doc, "ledgerEntries.types[0].lines[0].currency", "holds only USD")
    doc = base()
    first_line(doc)["account"]["path"] = "assets/fx"
    assert_issue(doc, "ledgerEntries.types[0].lines[0].currency", "multi-currency")


def test_parameters_only_the_text_uses_are_required_and_fill_it():
    """Seed 002's linked entry type names {{funding_amount}} only in its description (the
    line's amount comes from the tx): such a parameter is legal, required, and shown."""
    doc = base()
    doc["ledgerEntries"]["types"][0]["description"] = "Fund {{user_id}} for {{amount}} via {{who}}"
    doc["ledgerEntries"]["types"][0]["tags"] = [{"key": "channel", "value": "{{channel}}"}]
    doc["ledgerEntries"]["types"][0]["lines"][1]["description"] = "Seen by {{clerk}}"
    schema = parse_schema(doc)
    assert schema.entry_types["deposit"].params >= {"who", "channel", "clerk"}
    assert schema.entry_types["deposit"].amount_params == {"amount"}
    request = EntryRequest.build(ik="x", type="deposit", parameters={
        "user_id": "ann", "amount": "7", "who": "web", "channel": "app", "clerk": "bo"})
    entry = compile_entry(schema, request)
    assert entry.description == "Fund ann for 7 via web"
    assert entry.tags == {"channel": "app"}
    assert [l.description for l in entry.lines] == [None, "Seen by bo"]
    for missing in ("who", "channel", "clerk"):
        params = {"user_id": "ann", "amount": "7", "who": "web", "channel": "app", "clerk": "bo"}
        del params[missing]
        with pytest.raises(BadRequestError) as info:
            compile_entry(schema, EntryRequest.build(ik="x", type="deposit", parameters=params))
        assert info.value.code == "missing_parameter"
        assert info.value.field == f"entry.parameters.{missing}"


def test_bad_amount_expressions():
    doc = base()
    first_line(doc)["amount"] = "{{amount}} * 2"
    assert_issue(doc, "ledgerEntries.types[0].lines[0].amount", "unexpected")
    doc = base()
    first_line(doc)["amount"] = "{{amount}} -"
    assert_issue(doc, "ledgerEntries.types[0].lines[0].amount", "ends with an operator")


def test_top_level_account_needs_a_type_and_children_inherit_it():
    doc = base()
    doc["chartOfAccounts"]["accounts"].append({"key": "misc"})
    assert_issue(doc, "chartOfAccounts.accounts[3].type", "needs a type")
    doc = base()
    doc["chartOfAccounts"]["accounts"][0]["children"][0]["type"] = "liability"
    assert_issue(doc, "chartOfAccounts.accounts[0].children[0].type", "differs from its parent")


def test_nested_form_paths_in_errors():
    doc = {"key": "n", "chartOfAccounts": {"assets": {"bank": {"currencyMode": "triple"}}}}
    assert_issue(doc, "chartOfAccounts.assets.bank.currencyMode", "single")


def test_jsonc_with_comments_and_trailing_commas():
    text = """// wallet
    {"key": "j", "chartOfAccounts": {"assets": {"cash": {},}, "liabilities": {"u": {},},},
     /* no entries yet */ }"""
    schema = parse_schema(text)
    assert set(schema.accounts) == {"assets", "assets/cash", "liabilities", "liabilities/u"}


def test_invalid_json_names_the_document():
    assert issues_of("{not json")[0][0] == "$"


@pytest.mark.parametrize("text,const,coeffs", [
    ("{{a}}", 0, {"a": 1}),
    ("-{{a}}", 0, {"a": -1}),
    ("{{a}} - {{b}}", 0, {"a": 1, "b": -1}),
    ("{{a}} + 5 - 2", 3, {"a": 1}),
    ("{{a}} - {{a}}", 0, {}),
    ("100", 100, {}),
])
def test_linear_forms(text, const, coeffs):
    expr = parse_expr(text)
    assert expr.const == const and dict(expr.coeffs) == coeffs

"""Seed 002's GraphQL documents and variables, sent verbatim over HTTP to the running app and
checked field by field against the shapes the seed shows."""
from __future__ import annotations

import copy
import re
from datetime import datetime, timezone

import pytest

from tests.e2e import seed002

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def data_of(response, field):
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    return body["data"][field]


def recent(text: str) -> bool:
    assert ISO_UTC.match(text), text
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return abs((datetime.now(timezone.utc) - moment).total_seconds()) < 3600


@pytest.fixture(scope="module")
def quickstart(gql_module):
    """The quickstart: storeSchema, createLedger (seed variables verbatim), and a ledger
    "ledger-ik" for the seed's addLedgerEntry variables, which name that ledger."""
    stored = gql_module(seed002.STORE_SCHEMA, seed002.store_schema_variables())
    created = gql_module(seed002.CREATE_LEDGER, seed002.CREATE_LEDGER_VARIABLES)
    other = copy.deepcopy(seed002.CREATE_LEDGER_VARIABLES)
    other["ik"] = "ledger-ik"
    gql_module(seed002.CREATE_LEDGER, other)
    return stored, created


@pytest.fixture(scope="module")
def gql_module(api, token):
    import httpx

    def call(query, variables=None, headers=None):
        h = {"Authorization": f"Bearer {token}", **(headers or {})}
        return httpx.post(api.graphql_url, json={"query": query, "variables": variables or {}},
                          headers=h, timeout=30)

    return call


def test_store_schema_verbatim(quickstart):
    stored, _ = quickstart
    result = data_of(stored, "storeSchema")
    schema = result["schema"]
    assert schema["key"] == "quickstart-schema"
    assert schema["name"] == "Quickstart Schema"
    version = schema["version"]
    assert isinstance(version["version"], int) and version["version"] >= 1
    assert recent(version["created"])
    sent = seed002.store_schema_variables()["schema"]
    assert version["json"]["chartOfAccounts"] == sent["chartOfAccounts"]
    assert version["json"]["ledgerEntries"] == sent["ledgerEntries"]
    # No typename asked for, so none given; error fields absent on success.
    assert set(result) == {"schema"}


def test_store_schema_again_is_the_same_version(gql):
    first = data_of(gql(seed002.STORE_SCHEMA, seed002.store_schema_variables()), "storeSchema")
    again = data_of(gql(seed002.STORE_SCHEMA, seed002.store_schema_variables()), "storeSchema")
    assert again["schema"]["version"]["version"] == first["schema"]["version"]["version"]


def test_create_ledger_verbatim(quickstart, gql):
    _, created = quickstart
    ledger = data_of(created, "createLedger")["ledger"]
    assert ledger["ik"] == "quickstart-ledger"
    assert ledger["name"] == "Quickstart Ledger"
    assert recent(ledger["created"])
    assert ledger["schema"] == {"key": "quickstart-schema"}
    again = gql("""mutation($ik: SafeString!, $ledger: CreateLedgerInput!, $schema: SchemaMatchInput) {
      createLedger(ik: $ik, ledger: $ledger, schema: $schema) {
        __typename ... on CreateLedgerResult { isIkReplay ledger { ik created } } } }""",
                seed002.CREATE_LEDGER_VARIABLES)
    replay = data_of(again, "createLedger")
    assert replay["__typename"] == "CreateLedgerResult"
    assert replay["isIkReplay"] is True
    assert replay["ledger"]["created"] == ledger["created"]


def test_add_ledger_entry_verbatim(quickstart, gql):
    r = gql(seed002.ADD_LEDGER_ENTRY, seed002.ADD_LEDGER_ENTRY_VARIABLES)
    result = data_of(r, "addLedgerEntry")
    assert result["__typename"] == "AddLedgerEntryResult"
    assert result["entry"]["type"] == "user_funds_account"
    assert result["entry"]["posted"] == "1234-01-01T01:01:01.000Z"
    assert recent(result["entry"]["created"])
    assert result["lines"] == [
        {"amount": "200", "key": "funds_arrive_in_bank",
         "description": "Funding testing-user for 200.",
         "account": {"path": "assets/banks/user-cash"}},
        {"amount": "200", "key": "increase_user_balance",
         "description": "Funding testing-user for 200.",
         "account": {"path": "liabilities/users:testing-user/available"}},
    ]
    # The same ik and values again: the original result, marked as a replay, posted once.
    again = gql(seed002.ADD_LEDGER_ENTRY_CODEGEN, seed002.ADD_LEDGER_ENTRY_VARIABLES)
    replay = data_of(again, "addLedgerEntry")
    assert replay["__typename"] == "AddLedgerEntryResult"
    assert replay["isIkReplay"] is True
    assert replay["entry"]["posted"] == "1234-01-01T01:01:01.000Z"
    assert replay["entry"]["date"] == "1234-01-01"
    assert replay["entry"]["description"] == "Funding testing-user for 200."
    assert replay["entry"]["id"]
    lines = replay["lines"]
    assert [l["amount"] for l in lines] == ["200", "200"]
    # Cash arriving is a debit to the bank (an asset) and a credit to what we owe the user.
    assert [l["type"] for l in lines] == ["debit", "credit"]
    for line in lines:
        assert line["ledgerEntryId"] == replay["entry"]["id"]
        assert line["date"] == "1234-01-01"
        assert line["posted"] == "1234-01-01T01:01:01.000Z"
        assert line["ledgerId"] and line["accountId"] and line["id"]
    balance = data_of(gql(seed002.GET_BALANCE, {"ledgerAccount": {
        "path": "liabilities/users:testing-user/available", "ledger": {"ik": "ledger-ik"}}}),
        "ledgerAccount")
    assert balance == {"balance": "200"}


def test_same_ik_different_values_is_a_bad_request(quickstart, gql):
    variables = copy.deepcopy(seed002.ADD_LEDGER_ENTRY_VARIABLES)
    variables["ik"] = "ik-conflict-check"
    data_of(gql(seed002.ADD_LEDGER_ENTRY, variables), "addLedgerEntry")
    variables["entry"]["parameters"]["funding_amount"] = "201"
    result = data_of(gql(seed002.ADD_LEDGER_ENTRY, variables), "addLedgerEntry")
    assert result["__typename"] == "BadRequestError"
    assert result["code"] == "ik_conflict"


def test_p2p_transfer_postcondition(quickstart, gql):
    ledger = {"ik": "quickstart-ledger"}
    fund = {"ik": "fund-alice", "entry": {"ledger": ledger, "type": "user_funds_account",
            "parameters": {"user_id": "alice", "funding_amount": "500"}}}
    assert data_of(gql(seed002.ADD_LEDGER_ENTRY, fund), "addLedgerEntry")["__typename"] == \
        "AddLedgerEntryResult"
    transfer = {"ik": "p2p-1", "entry": {"ledger": ledger, "type": "p2p_transfer",
                "parameters": {"from_user_id": "alice", "to_user_id": "bob",
                               "transfer_amount": "300"}}}
    ok = data_of(gql(seed002.ADD_LEDGER_ENTRY, transfer), "addLedgerEntry")
    assert ok["__typename"] == "AddLedgerEntryResult"
    assert [(l["key"], l["amount"]) for l in ok["lines"]] == [
        ("decrease_from_user", "-300"), ("increase_to_user", "300")]
    overdraft = copy.deepcopy(transfer)
    overdraft["ik"] = "p2p-2"
    refused = data_of(gql(seed002.ADD_LEDGER_ENTRY, overdraft), "addLedgerEntry")
    assert refused["__typename"] == "BadRequestError"
    assert refused["code"] == "condition_failed"
    assert "liabilities/users:alice/available" in refused["message"]

    query = """query($a: LedgerAccountMatchInput!) { ledgerAccount(ledgerAccount: $a) {
      id path type ownBalance childBalance balance
      ownBalances { nodes { amount currency { code } } } balances { nodes { amount } } } }"""
    alice = data_of(gql(query, {"a": {"path": "liabilities/users:alice/available",
                                      "ledger": ledger}}), "ledgerAccount")
    assert alice["ownBalance"] == "200" and alice["balance"] == "200"
    assert alice["childBalance"] == "0"
    assert alice["type"] == "liability"
    assert alice["ownBalances"]["nodes"] == [{"amount": "200", "currency": {"code": "USD"}}]
    # By id: the same account.
    by_id = data_of(gql(query, {"a": {"id": alice["id"]}}), "ledgerAccount")
    assert by_id == alice
    parent = data_of(gql(query, {"a": {"path": "liabilities/users:alice", "ledger": ledger}}),
                     "ledgerAccount")
    assert (parent["ownBalance"], parent["childBalance"], parent["balance"]) == ("0", "200", "200")


def test_runtime_entry(gql, unique):
    key = unique("runtime-schema")
    variables = seed002.store_schema_variables()
    variables["schema"]["key"] = key
    variables["schema"]["ledgerEntries"]["types"].append(
        {"type": "runtime_entry", "description": "Runtime-defined ledger entry"})
    assert data_of(gql(seed002.STORE_SCHEMA, variables), "storeSchema")["schema"]["key"] == key
    ledger_ik = unique("runtime-ledger")
    data_of(gql(seed002.CREATE_LEDGER, {"ik": ledger_ik, "ledger": {"name": "Runtime"},
                                        "schema": {"key": key}}), "createLedger")
    entry_vars = copy.deepcopy(seed002.ADD_RUNTIME_LEDGER_ENTRY_VARIABLES)
    # The seed's variables name no ledger (its dashboard explorer has one selected); we need it.
    entry_vars["entry"]["ledger"] = {"ik": ledger_ik}
    result = data_of(gql(seed002.ADD_RUNTIME_LEDGER_ENTRY, entry_vars), "addLedgerEntry")
    assert result["entry"]["type"] == "runtime_entry"
    assert [(l["key"], l["amount"], l["account"]["path"]) for l in result["lines"]] == [
        ("funds_arrive_in_bank", "100", "assets/banks/user-cash"),
        ("increase_user_balance", "100", "liabilities/users:test-user/available")]
    missing = copy.deepcopy(seed002.ADD_RUNTIME_LEDGER_ENTRY_VARIABLES)
    missing["ik"] = "runtime-without-ledger"
    refused = data_of(gql(seed002.ADD_LEDGER_ENTRY, missing), "addLedgerEntry")
    assert refused["__typename"] == "BadRequestError"
    assert "entry.ledger" in refused["message"]

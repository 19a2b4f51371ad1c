"""Balance monitors through the running API: GraphQL create/list/update/delete with typed
errors naming fields, the SDK (a read-only client may list but not create), and the
``ledger monitors`` CLI; a post through the API raises ``balance.crossed``."""
from __future__ import annotations

import json

import pytest

from ledger import service
from ledger_sdk import BadRequestError, NotFoundError, PermissionDeniedError, SyncClient
from tests.e2e.test_cli import cli_env, ledger, logged_in  # noqa: F401 (fixtures)
from tests.e2e.test_graphql_api import result_of as data
from tests.integration.test_monitors import SCHEMA, crossings

MONITOR = "id account balance description ledgerIk condition { op amount currency { code } }"
CREATE = f"""mutation($ledger: LedgerMatchInput!, $account: String!, $balance: String!,
  $condition: BalanceMonitorConditionInput!, $description: String) {{
  createBalanceMonitor(ledger: $ledger, account: $account, balance: $balance,
                       condition: $condition, description: $description) {{
    __typename ... on BalanceMonitorResult {{ balanceMonitor {{ {MONITOR} }} }}
    ... on Error {{ code message retryable }} }} }}"""
UPDATE = f"""mutation($id: ID!, $condition: BalanceMonitorConditionInput, $balance: String) {{
  updateBalanceMonitor(id: $id, condition: $condition, balance: $balance) {{
    __typename ... on BalanceMonitorResult {{ balanceMonitor {{ {MONITOR} }} }}
    ... on Error {{ code message }} }} }}"""
DELETE = """mutation($id: ID!) { deleteBalanceMonitor(id: $id) {
    __typename ... on BalanceMonitorResult { balanceMonitor { id } } ... on Error { code message } } }"""
LIST = f"query($l: LedgerMatchInput!) {{ balanceMonitors(ledger: $l) {{ {MONITOR} }} }}"
ADD = """mutation($ik: SafeString, $entry: LedgerEntryInput!) { addLedgerEntry(ik: $ik, entry: $entry) {
    __typename ... on Error { code message } } }"""


@pytest.fixture
def wallet(db, unique):
    key = unique("monitors-api")
    service.store_schema(db, {**SCHEMA, "key": key})
    ik = unique("monitors-api-ledger")
    service.create_ledger(db, ik, "Monitors", key)
    return ik


def test_graphql_crud_and_a_crossing(gql, db, wallet):
    made = data(gql(CREATE, {"ledger": {"ik": wallet}, "account": "liabilities/users:*/available",
                             "balance": "own", "condition": {"gte": "100", "currency": {"code": "USD"}},
                             "description": "rich"}), "createBalanceMonitor")
    m = made["balanceMonitor"]
    assert m["condition"] == {"op": "gte", "amount": "100", "currency": {"code": "USD"}}
    assert m["ledgerIk"] == wallet and m["description"] == "rich"
    r = data(gql(ADD, {"ik": "d1", "entry": {"ledger": {"ik": wallet}, "type": "deposit",
                                              "parameters": {"user": "ann", "amount": "150"}}}),
             "addLedgerEntry")
    assert r["__typename"] == "AddLedgerEntryResult"
    got = crossings(db, wallet, m["id"])
    assert [(p["account"], p["after"], p["isTrue"]) for p in got] == [
        ("liabilities/users:ann/available", "150", True)]

    changed = data(gql(UPDATE, {"id": m["id"], "condition": {"lt": "0"}}),
                   "updateBalanceMonitor")["balanceMonitor"]
    assert changed["condition"] == {"op": "lt", "amount": "0", "currency": None}
    assert [x["id"] for x in data(gql(LIST, {"l": {"ik": wallet}}), "balanceMonitors")] == [m["id"]]
    assert data(gql(DELETE, {"id": m["id"]}), "deleteBalanceMonitor")["balanceMonitor"] == {"id": m["id"]}
    gone = data(gql(DELETE, {"id": m["id"]}), "deleteBalanceMonitor")
    assert gone["__typename"] == "BadRequestError" and gone["code"] == "monitor_not_found"
    assert data(gql(LIST, {"l": {"ik": wallet}}), "balanceMonitors") == []


@pytest.mark.parametrize("variables, field", [
    ({"account": "liabilities/nobody"}, "account"),
    ({"balance": "sideways"}, "balance"),
    ({"condition": {"lt": "1", "gt": "2"}}, "condition"),
    ({"condition": {}}, "condition"),
    ({"description": "x" * 1001}, "description"),
])
def test_graphql_bad_input_is_a_typed_error_naming_the_field(gql, wallet, variables, field):
    base = {"ledger": {"ik": wallet}, "account": "liabilities/users:ann/available",
            "balance": "own", "condition": {"lt": "1"}}
    r = data(gql(CREATE, {**base, **variables}), "createBalanceMonitor")
    assert r["__typename"] == "BadRequestError" and r["retryable"] is False
    assert r["message"].startswith(f"{field}:"), r["message"]
    assert data(gql(LIST, {"l": {"ik": wallet}}), "balanceMonitors") == []


def test_sdk_and_scopes(api, full_client, read_client, wallet):
    options = {"api_url": api.url, "ledger_ik": wallet}
    with SyncClient(client_id=full_client.client_id, client_secret=full_client.client_secret,
                    **options) as client:
        m = client.create_balance_monitor("liabilities/users", "child", "gt", 1000,
                                          currency="USD", description="all users")
        assert (m.balance, m.op, m.amount, m.currency) == ("child", "gt", 1000, "USD")
        assert client.get_balance_monitor(m.id) == m
        with pytest.raises(BadRequestError) as exc:
            client.create_balance_monitor("liabilities/users", "own", "gt", 1)
        assert exc.value.code == "invalid_input" and "balance:" in exc.value.message
        with pytest.raises(NotFoundError):
            client.get_balance_monitor("987654321")
    with SyncClient(client_id=read_client.client_id, client_secret=read_client.client_secret,
                    **options) as reader:
        assert [x.id for x in reader.list_balance_monitors()] == [m.id]
        with pytest.raises(PermissionDeniedError):
            reader.create_balance_monitor("liabilities/users", "child", "gt", 5)


def test_cli(logged_in, wallet):
    env, _, _ = logged_in
    made = json.loads(ledger(env, "monitors", "create", "liabilities/users:*", "--ledger", wallet,
                             "--balance", "total", "--lte", "-5", "--currency", "USD",
                             "--description", "overdrawn", "--json").stdout)["monitors"][0]
    assert made["condition"] == {"lte": "-5", "currency": "USD"} and made["balance"] == "total"
    listed = ledger(env, "monitors", "list", "--ledger", wallet).stdout
    assert "liabilities/users:*" in listed and "lte -5 USD" in listed
    changed = json.loads(ledger(env, "monitors", "update", made["id"], "--gt", "10",
                                "--json").stdout)["monitors"][0]
    assert changed["condition"] == {"gt": "10", "currency": None}
    usage = ledger(env, "monitors", "create", "x", "--ledger", wallet, "--lt", "1", "--gt", "2",
                   check=2)
    assert "only one of" in usage.stderr
    refused = ledger(env, "monitors", "create", "liabilities/users", "--ledger", wallet,
                     "--lt", "1", check=None)
    assert refused.returncode != 0 and "balance:" in refused.stderr
    ledger(env, "monitors", "delete", made["id"])
    assert json.loads(ledger(env, "monitors", "list", "--ledger", wallet,
                             "--json").stdout) == {"monitors": []}

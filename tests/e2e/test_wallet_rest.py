"""The REST wallet reads (api/wallet.py) through the running app: they agree with GraphQL
on the same ledger, lines carry their running balance, and opening an account is
idempotent and refused where the schema does not allow it."""
from __future__ import annotations

import httpx
import pytest

from ledger import service
from tests.integration.test_history import ALICE, BOB, day, history_schema, post

LINES = """query($l: LedgerMatchInput!, $a: LedgerAccountMatchInput!) {
  ledger(ledger: $l) { lines(account: $a, first: 50, filter: {reversed: null}) {
    nodes { id amount runningBalance posted description currency { code } ledgerEntryId } } }
  ledgerAccount(ledgerAccount: $a) {
    ownBalances { nodes { amount currency { code } } }
    childBalances { nodes { amount currency { code } } }
    balances { nodes { amount currency { code } } }
    lines(first: 50, filter: {reversed: null}) { nodes { id runningBalance } } } }"""

ENTRY = """query($e: LedgerEntryMatchInput!) { ledgerEntry(ledgerEntry: $e) {
  id ik type description lines { nodes { id amount runningBalance account { path } } } } }"""


@pytest.fixture
def rest(api, token):
    with httpx.Client(base_url=f"{api.url}/v1/ledgers",
                      headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        yield client


@pytest.fixture
def ledger(db, unique):
    key = service.store_schema(db, history_schema(unique("wallet"))).key
    ik = unique("wallet-ledger")
    service.create_ledger(db, ik, "Wallet", key)
    return ik


def _by_currency(connection: dict) -> dict[str, str]:
    return {n["currency"]["code"]: n["amount"] for n in connection["nodes"]}


def test_rest_reads_agree_with_graphql(db, gql, rest, ledger):
    post(db, ledger, "deposit", posted=day(1), user="alice", amount=500)
    later = post(db, ledger, "deposit", posted=day(5), user="alice", amount=70, ik="dep-late")
    transfer = post(db, ledger, "transfer", posted=day(3),
                    **{"from": "alice", "to": "bob", "amount": 120})
    service.reverse_ledger_entry(db, id=transfer.entry.id)
    post(db, ledger, "deposit", posted=day(2), user="alice", amount=9)  # backdated

    data = gql(LINES, {"l": {"ik": ledger}, "a": {"ledger": {"ik": ledger}, "path": ALICE}}).json()["data"]
    r = rest.get(f"/{ledger}/accounts/{ALICE}/lines", params={"first": 50})
    assert r.status_code == 200, r.text
    lines = r.json()["lines"]
    graph = data["ledger"]["lines"]["nodes"]
    assert [(x["id"], x["amount"], x["runningBalance"], x["currency"], x["entry"]["id"])
            for x in lines] == [(g["id"], g["amount"], g["runningBalance"],
                                 g["currency"]["code"], g["ledgerEntryId"]) for g in graph]
    assert [g["runningBalance"] for g in data["ledgerAccount"]["lines"]["nodes"]] \
        == [x["runningBalance"] for x in lines]
    # Newest first; each running balance is the next older one plus the line's amount.
    assert [x["runningBalance"] for x in lines] == ["579", "509", "389", "509", "500"]
    for newer, older in zip(lines, lines[1:]):
        assert int(newer["runningBalance"]) == int(older["runningBalance"]) + int(newer["amount"])
    assert lines[0]["entry"] == {"id": later.entry.id, "ik": "dep-late", "type": "deposit"}
    assert lines[0]["description"] == "alice deposits 70"

    account = rest.get(f"/{ledger}/accounts/{ALICE}").json()
    assert account["ownBalances"] == _by_currency(data["ledgerAccount"]["ownBalances"]) \
        == {"USD": "579"}
    assert account["childBalances"] == _by_currency(data["ledgerAccount"]["childBalances"])
    assert account["balances"] == _by_currency(data["ledgerAccount"]["balances"])
    assert rest.get(f"/{ledger}/accounts/{ALICE}", params={"at": "2025-03-02"}).json()[
        "ownBalances"] == {"USD": "509"}
    users = rest.get(f"/{ledger}/accounts/liabilities/users").json()
    assert users["childBalances"] == {"USD": "579"}  # bob got nothing: reversed

    entry = rest.get(f"/{ledger}/entries/dep-late").json()
    graph_entry = gql(ENTRY, {"e": {"ik": "dep-late", "ledger": {"ik": ledger}}}).json()[
        "data"]["ledgerEntry"]
    assert entry["id"] == graph_entry["id"] and entry["type"] == "deposit"
    assert [(x["id"], x["amount"], x["runningBalance"], x["account"]["path"])
            for x in entry["lines"]] == [
        (g["id"], g["amount"], g["runningBalance"], g["account"]["path"])
        for g in graph_entry["lines"]["nodes"]]


def test_lines_pages_and_period(db, rest, ledger):
    for n in range(1, 6):
        post(db, ledger, "deposit", posted=day(n), user="bob", amount=n)
    first = rest.get(f"/{ledger}/accounts/{BOB}/lines", params={"first": 2}).json()
    assert [x["amount"] for x in first["lines"]] == ["5", "4"]
    assert first["pageInfo"]["hasNextPage"] is True
    rest_ = rest.get(f"/{ledger}/accounts/{BOB}/lines",
                     params={"first": 10, "after": first["pageInfo"]["endCursor"]}).json()
    assert [x["runningBalance"] for x in rest_["lines"]] == ["6", "3", "1"]
    march = rest.get(f"/{ledger}/accounts/{BOB}/lines", params={"period": "2025-03-02"}).json()
    assert [x["amount"] for x in march["lines"]] == ["2"]
    bad = rest.get(f"/{ledger}/accounts/{BOB}/lines", params={"period": "March"})
    assert bad.status_code == 422 and bad.json()["field"] == "period"
    bad = rest.get(f"/{ledger}/accounts/{BOB}/lines", params={"after": "nope"})
    assert bad.status_code == 422 and bad.json()["field"] == "after"


def test_open_account_twice_is_one_account(db, gql, rest, ledger):
    body = {"path": "liabilities/users:carol/available", "currency": "USD"}
    first = rest.post(f"/{ledger}/accounts", json=body)
    assert first.status_code == 201, first.text
    assert first.json()["path"] == body["path"] and first.json()["type"] == "liability"
    again = rest.post(f"/{ledger}/accounts", json=body)
    assert again.status_code == 200 and again.json() == first.json()
    assert rest.post(f"/{ledger}/accounts", json={"path": body["path"]}).status_code == 200
    held = [a.path for a in service.list_ledger_accounts(db, ledger).nodes]
    assert held.count(body["path"]) == 1
    account = rest.get(f"/{ledger}/accounts/{body['path']}").json()
    assert account["ownBalances"] == {"USD": "0"}
    assert rest.get(f"/{ledger}/accounts/{body['path']}/lines").json()["lines"] == []
    # Its first entry finds it open, and the books hold.
    post(db, ledger, "deposit", user="carol", amount=25)
    assert rest.get(f"/{ledger}/accounts/{body['path']}").json()["ownBalances"] == {"USD": "25"}
    assert service.audit(db, ledger) == []


@pytest.mark.parametrize("body,field", [
    ({"path": "liabilities/strangers:x/available", "currency": "USD"}, "path"),
    ({"path": "liabilities/users/available", "currency": "USD"}, "path"),
    ({"path": "liabilities/users:alice/available", "currency": "EUR"}, "currency"),
    ({"path": "liabilities/users:alice/available", "currency": 5}, "currency"),
    ({"currency": "USD"}, "path"),
    ({"path": "income/fees", "owner": "me"}, "owner"),
    (["income/fees"], "body"),
])
def test_open_account_refuses_what_the_schema_does_not_allow(db, rest, ledger, body, field):
    r = rest.post(f"/{ledger}/accounts", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["__typename"] == "BadRequestError" and r.json()["field"] == field
    assert service.list_ledger_accounts(db, ledger).nodes == []


def test_wallet_routes_share_the_auth_and_errors_of_v1(api, rest, read_token, ledger):
    assert httpx.get(f"{api.url}/v1/ledgers/{ledger}/accounts/income/fees").status_code == 401
    read_only = {"Authorization": f"Bearer {read_token}"}
    assert httpx.get(f"{api.url}/v1/ledgers/{ledger}/accounts/income/fees",
                     headers=read_only).status_code == 200
    assert httpx.post(f"{api.url}/v1/ledgers/{ledger}/accounts", json={"path": "income/fees"},
                      headers=read_only).status_code == 403
    missing = rest.get("/no-such-ledger/accounts/income/fees")
    assert missing.status_code == 404 and missing.json()["__typename"] == "NotFoundError"
    assert rest.get(f"/{ledger}/entries/never-posted").status_code == 404
    assert rest.get(f"/{ledger}/accounts/income/fees", params={"at": "soon"}).status_code == 422
    paths = rest.get(f"{api.url}/openapi.json").json()["paths"]
    for path in ("/v1/ledgers/{ledger_ik}/accounts/{path}",
                 "/v1/ledgers/{ledger_ik}/accounts/{path}/lines",
                 "/v1/ledgers/{ledger_ik}/entries/{entry_ik}", "/v1/ledgers/{ledger_ik}/accounts"):
        assert path in paths


ADD = """mutation($ik: SafeString!, $entry: LedgerEntryInput!) { addLedgerEntry(ik: $ik, entry: $entry) {
  ... on AddLedgerEntryResult { lines { account { path } amount runningBalance } } } }"""


def test_mutation_results_carry_the_running_balance_backdated_too(db, gql, ledger):
    def add(ik, posted, amount):
        entry = {"ledger": {"ik": ledger}, "type": "deposit", "posted": posted,
                 "parameters": {"user": "dora", "amount": str(amount)}}
        lines = gql(ADD, {"ik": ik, "entry": entry}).json()["data"]["addLedgerEntry"]["lines"]
        return {x["account"]["path"]: x["runningBalance"] for x in lines}

    assert add("m-1", "2025-03-01T00:00:00Z", 10)["liabilities/users:dora/available"] == "10"
    assert add("m-2", "2025-03-03T00:00:00Z", 20)["liabilities/users:dora/available"] == "30"
    # Backdated between the two: the balance as of its time.
    assert add("m-3", "2025-03-02T00:00:00Z", 5)["liabilities/users:dora/available"] == "15"

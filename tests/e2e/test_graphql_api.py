"""The rest of the GraphQL surface: reads, batches, forced errors, bad requests, masking,
introspection, OpenAPI and the body size limit."""
from __future__ import annotations

import httpx
import pytest

from ledger import service
from tests.e2e import seed002
from tests.e2e.conftest import E2E_MAX_BODY_BYTES

FX_SCHEMA_ACCOUNTS = {"defaultCurrency": {"code": "USD"}, "accounts": [
    {"key": "assets", "type": "asset", "children": [{"key": "fx-bank", "currencyMode": "multi"}]},
    {"key": "liabilities", "type": "liability", "children": [
        {"key": "users", "template": True, "currencyMode": "multi",
         "children": [{"key": "available"}]}]},
]}
FX_ENTRY_TYPES = {"types": [
    {"type": "fx_deposit", "description": "{{user_id}} deposits {{amount}} {{currency}}",
     "lines": [
         {"key": "bank", "account": {"path": "assets/fx-bank"}, "amount": "{{amount}}",
          "currency": {"code": "{{currency}}"}},
         {"key": "user", "account": {"path": "liabilities/users:{{user_id}}/available"},
          "amount": "{{amount}}", "currency": {"code": "{{currency}}"}}]},
]}

ADD = """mutation($ik: SafeString, $entry: LedgerEntryInput!) {
  addLedgerEntry(ik: $ik, entry: $entry) {
    __typename
    ... on AddLedgerEntryResult { isIkReplay entry { id ik type } lines { key amount currency { code } } }
    ... on Error { code message retryable }
  } }"""

ADD_MANY = """mutation($entries: [AddLedgerEntryInput!]!) {
  addLedgerEntries(entries: $entries) {
    __typename
    ... on AddLedgerEntriesResult { results { isIkReplay entry { ik } lines { amount } } }
    ... on Error { code message retryable }
  } }"""

ENTRY = """query($e: LedgerEntryMatchInput!) { ledgerEntry(ledgerEntry: $e) {
  id ik type description posted date ledger { ik } tags { key value } groups { key value }
  lines { nodes { key amount type currency { code } account { path } } } } }"""


@pytest.fixture(scope="module")
def wallet(db, unique):
    """A ledger of the quickstart schema, under fresh keys."""
    doc = seed002.store_schema_variables()["schema"]
    doc["key"] = unique("api-schema")
    service.store_schema(db, doc)
    ik = unique("api-ledger")
    service.create_ledger(db, ik, "API ledger", doc["key"])
    return ik


def fund(user, amount, ik, ledger, **extra):
    entry = {"ledger": {"ik": ledger}, "type": "user_funds_account",
             "parameters": {"user_id": user, "funding_amount": amount}, **extra}
    return {"ik": ik, "entry": entry}


def result_of(r, field):
    assert r.status_code == 200, r.text
    assert "errors" not in r.json(), r.json()
    return r.json()["data"][field]


def balance(gql, ledger, path):
    r = gql("query($a: LedgerAccountMatchInput!) { ledgerAccount(ledgerAccount: $a) { ownBalance } }",
            {"a": {"path": path, "ledger": {"ik": ledger}}})
    return int(result_of(r, "ledgerAccount")["ownBalance"])


def test_entry_reads_by_id_and_ik(gql, wallet):
    posted = result_of(gql(ADD, fund("reader", "75", "read-me", wallet, posted="2024-02-29T12:00:00Z",
                                     tags=[{"key": "source", "value": "test"}],
                                     groups=[{"key": "batch", "value": "b1"}])),
                       "addLedgerEntry")
    by_id = result_of(gql(ENTRY, {"e": {"id": posted["entry"]["id"]}}), "ledgerEntry")
    by_ik = result_of(gql(ENTRY, {"e": {"ik": "read-me", "ledger": {"ik": wallet}}}), "ledgerEntry")
    assert by_id == by_ik
    assert by_id["ik"] == "read-me" and by_id["type"] == "user_funds_account"
    assert by_id["posted"] == "2024-02-29T12:00:00.000Z" and by_id["date"] == "2024-02-29"
    assert by_id["ledger"] == {"ik": wallet}
    assert by_id["tags"] == [{"key": "source", "value": "test"}]
    assert by_id["groups"] == [{"key": "batch", "value": "b1"}]
    assert by_id["lines"]["nodes"] == [
        {"key": "funds_arrive_in_bank", "amount": "75", "type": "debit",
         "currency": {"code": "USD"}, "account": {"path": "assets/banks/user-cash"}},
        {"key": "increase_user_balance", "amount": "75", "type": "credit",
         "currency": {"code": "USD"}, "account": {"path": "liabilities/users:reader/available"}}]
    missing = gql(ENTRY, {"e": {"ik": "never-posted", "ledger": {"ik": wallet}}})
    assert missing.status_code == 200
    body = missing.json()
    assert body["data"] == {"ledgerEntry": None}
    assert body["errors"][0]["extensions"]["code"] == "entry_not_found"


def test_schema_ledger_and_ledgers_queries(gql, wallet):
    q = """query($l: LedgerMatchInput!) { ledger(ledger: $l) { id ik name created balanceUTCOffset
      schema { key name version { version json } versions { nodes { version } } } } }"""
    ledger = result_of(gql(q, {"l": {"ik": wallet}}), "ledger")
    assert ledger["ik"] == wallet and ledger["name"] == "API ledger"
    assert ledger["balanceUTCOffset"] == "+00:00"
    assert ledger["schema"]["name"] == "Quickstart Schema"
    assert ledger["schema"]["version"]["version"] == 1
    assert ledger["schema"]["versions"]["nodes"] == [{"version": 1}]
    by_id = result_of(gql(q, {"l": {"id": ledger["id"]}}), "ledger")
    assert by_id == ledger
    listed = result_of(gql("{ ledgers { nodes { ik } pageInfo { hasNextPage } } }"), "ledgers")
    assert wallet in [n["ik"] for n in listed["nodes"]]
    first = result_of(gql("{ ledgers(first: 1) { nodes { ik } pageInfo { hasNextPage endCursor } } }"),
                      "ledgers")
    assert len(first["nodes"]) == 1
    unknown = gql(q, {"l": {"ik": "no-such-ledger"}})
    assert unknown.status_code == 200
    assert unknown.json()["data"] == {"ledger": None}
    assert unknown.json()["errors"][0]["extensions"] == {
        "code": "ledger_not_found", "typename": "NotFoundError", "retryable": False}


def test_add_ledger_entries_is_atomic(gql, wallet):
    good = fund("batcher", "10", "batch-1", wallet)
    bad = fund("batcher", "12.5", "batch-2", wallet)
    refused = result_of(gql(ADD_MANY, {"entries": [good, bad]}), "addLedgerEntries")
    assert refused["__typename"] == "BadRequestError"
    assert "entries[1]" in refused["message"] and "funding_amount" in refused["message"]
    assert balance(gql, wallet, "liabilities/users:batcher/available") == 0
    ok = result_of(gql(ADD_MANY, {"entries": [good, fund("batcher", "5", "batch-3", wallet)]}),
                   "addLedgerEntries")
    assert ok["__typename"] == "AddLedgerEntriesResult"
    assert [(r["entry"]["ik"], r["isIkReplay"]) for r in ok["results"]] == [
        ("batch-1", False), ("batch-3", False)]
    assert balance(gql, wallet, "liabilities/users:batcher/available") == 15
    replay = result_of(gql(ADD_MANY, {"entries": [good]}), "addLedgerEntries")
    assert replay["results"][0]["isIkReplay"] is True
    assert balance(gql, wallet, "liabilities/users:batcher/available") == 15


@pytest.mark.parametrize("header, typename, retryable", [
    ("internalError", "InternalError", True), ("badRequestError", "BadRequestError", False)])
def test_forced_error_header(gql, wallet, header, typename, retryable):
    ik = f"forced-{header}"
    r = gql(ADD, fund("forced", "1", ik, wallet), headers={"X-Fragment-Return-Error": header})
    result = result_of(r, "addLedgerEntry")
    assert result["__typename"] == typename
    assert result["retryable"] is retryable
    assert "X-Fragment-Return-Error" in result["message"]
    # Skipped, not processed: nothing posted.
    missing = gql(ENTRY, {"e": {"ik": ik, "ledger": {"ik": wallet}}})
    assert missing.json()["data"] == {"ledgerEntry": None}


def test_bad_input_names_the_field_and_writes_nothing(gql, wallet):
    result = result_of(gql(ADD, fund("floaty", 12.5, "float-param", wallet)), "addLedgerEntry")
    assert result["__typename"] == "BadRequestError"
    assert result["code"] == "invalid_amount"
    assert "entry.parameters.funding_amount" in result["message"]
    missing_param = {"ik": "no-param", "entry": {"ledger": {"ik": wallet},
                                                  "type": "user_funds_account",
                                                  "parameters": {"user_id": "x"}}}
    result = result_of(gql(ADD, missing_param), "addLedgerEntry")
    assert result["code"] == "missing_parameter" and "funding_amount" in result["message"]
    no_ik = fund("x", "1", None, wallet)
    result = result_of(gql(ADD, no_ik), "addLedgerEntry")
    assert result["__typename"] == "BadRequestError" and result["message"].startswith("ik:")
    unknown_ledger = result_of(gql(ADD, fund("x", "1", "nl", "no-such-ledger")), "addLedgerEntry")
    assert unknown_ledger["code"] == "ledger_not_found"
    unknown_type = fund("x", "1", "nt", wallet)
    unknown_type["entry"]["type"] = "no_such_type"
    assert result_of(gql(ADD, unknown_type), "addLedgerEntry")["code"] == "entry_type_not_found"
    assert balance(gql, wallet, "liabilities/users:floaty/available") == 0
    assert balance(gql, wallet, "liabilities/users:x/available") == 0


def test_float_amount_in_a_runtime_line_is_refused(gql, wallet):
    entry = {"ik": "rt-float", "entry": {"ledger": {"ik": wallet}, "type": "user_funds_account",
             "lines": [{"key": "a", "account": {"path": "assets/banks/user-cash"}, "amount": 1.5}]}}
    r = gql(ADD, entry)
    assert r.status_code == 400
    message = r.json()["errors"][0]["message"]
    assert "amount" in message and "minor units" in message


@pytest.mark.parametrize("query, variables, fragment", [
    ("mutation { addLedgerEntry(", None, "Syntax Error"),
    ("{ ledgers { nodes { nonexistent } } }", None, "nonexistent"),
    (ADD, {"ik": "x"}, "$entry"),
])
def test_requests_that_break_the_graphql_spec_are_400(gql, query, variables, fragment):
    r = gql(query, variables)
    assert r.status_code == 400
    body = r.json()
    assert "data" not in body or body["data"] is None
    assert fragment in body["errors"][0]["message"]


def test_unexpected_failures_are_masked(gql, wallet, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("psycopg.errors.Oops: SELECT secret FROM api_clients at /srv/x.py")

    async def explode_on_loop(*args, **kwargs):
        explode()

    monkeypatch.setattr(service, "add_ledger_entries", explode)
    monkeypatch.setattr(service, "add_ledger_entry", explode)
    monkeypatch.setattr(service, "add_ledger_entries_async", explode_on_loop)
    monkeypatch.setattr(service, "add_ledger_entry_async", explode_on_loop)
    monkeypatch.setattr(service, "get_ledger", explode)
    r = gql(ADD, fund("m", "1", "masked", wallet))
    result = result_of(r, "addLedgerEntry")
    assert result["__typename"] == "InternalError" and result["retryable"] is True
    q = gql("query($l: LedgerMatchInput!) { ledger(ledger: $l) { ik } }", {"l": {"ik": wallet}})
    for text in (r.text, q.text):
        assert "SELECT" not in text and "psycopg" not in text and "Traceback" not in text
    assert q.json()["errors"][0]["extensions"]["code"] == "internal_error"


def test_multi_currency_balances(gql, db, unique):
    key = unique("fx-schema")
    service.store_schema(db, {"key": key, "chartOfAccounts": FX_SCHEMA_ACCOUNTS,
                              "ledgerEntries": FX_ENTRY_TYPES})
    ledger = unique("fx-ledger")
    service.create_ledger(db, ledger, "FX", key)
    for ik, amount, currency in (("fx-1", "500", "EUR"), ("fx-2", "7", "JPY")):
        r = gql(ADD, {"ik": ik, "entry": {"ledger": {"ik": ledger}, "type": "fx_deposit",
                "parameters": {"user_id": "u1", "amount": amount, "currency": currency}}})
        assert result_of(r, "addLedgerEntry")["lines"][0]["currency"] == {"code": currency}
    q = """query($a: LedgerAccountMatchInput!) { ledgerAccount(ledgerAccount: $a) {
      eur: ownBalance(currency: {code: "EUR"}) jpy: balance(currency: {code: "JPY"})
      usd: ownBalance(currency: {code: "USD"})
      ownBalances { nodes { amount currency { code } } } childBalances { nodes { amount } } } }"""
    account = result_of(gql(q, {"a": {"path": "liabilities/users:u1/available",
                                      "ledger": {"ik": ledger}}}), "ledgerAccount")
    assert (account["eur"], account["jpy"], account["usd"]) == ("500", "7", "0")
    assert account["ownBalances"]["nodes"] == [
        {"amount": "500", "currency": {"code": "EUR"}}, {"amount": "7", "currency": {"code": "JPY"}}]
    assert account["childBalances"]["nodes"] == []
    ambiguous = gql("query($a: LedgerAccountMatchInput!) { ledgerAccount(ledgerAccount: $a) { ownBalance } }",
                    {"a": {"path": "liabilities/users:u1/available", "ledger": {"ik": ledger}}})
    assert "several currencies" in ambiguous.json()["errors"][0]["message"]


def test_introspection_describes_the_schema(gql):
    r = gql("""{ __schema { mutationType { fields { name } } }
      error: __type(name: "Error") { kind possibleTypes { name } fields { name } }
      response: __type(name: "AddLedgerEntryResponse") { possibleTypes { name } }
      int96: __type(name: "Int96") { kind } }""")
    data = result_of(r, "__schema") and r.json()["data"]
    mutations = {f["name"] for f in data["__schema"]["mutationType"]["fields"]}
    assert {"storeSchema", "createLedger", "addLedgerEntry", "addLedgerEntries"} <= mutations
    assert data["error"]["kind"] == "INTERFACE"
    assert {f["name"] for f in data["error"]["fields"]} == {"code", "message", "retryable"}
    assert {t["name"] for t in data["error"]["possibleTypes"]} == {
        "BadRequestError", "InternalError", "NotFoundError"}
    assert {t["name"] for t in data["response"]["possibleTypes"]} == {
        "AddLedgerEntryResult", "BadRequestError", "InternalError"}
    assert data["int96"]["kind"] == "SCALAR"


def test_openapi_lists_the_rest_endpoints(api, token):
    auth = {"Authorization": f"Bearer {token}"}
    for path in ("/openapi.json", "/schema.graphql"):
        assert httpx.get(f"{api.url}{path}").status_code == 401
    assert httpx.get(f"{api.url}/docs").status_code == 404
    spec = httpx.get(f"{api.url}/openapi.json", headers=auth).json()
    paths = spec["paths"]
    assert "/oauth2/token" in paths and "/graphql" in paths
    assert "/healthz" in paths and "/metrics" in paths
    rest = [p for p in paths if p.startswith("/v1/")]
    assert rest, sorted(paths)
    sdl = httpx.get(f"{api.url}/schema.graphql", headers=auth).text
    assert "union AddLedgerEntryResponse" in sdl


def test_body_over_the_limit_is_413(api, token, wallet, gql):
    big = "x" * (E2E_MAX_BODY_BYTES + 1)
    r = httpx.post(api.graphql_url, headers={"Authorization": f"Bearer {token}"},
                   json={"query": "{ ledgers { nodes { ik } } }", "variables": {"pad": big}})
    assert r.status_code == 413
    assert r.json()["code"] == "payload_too_large"

    # A chunked body (no Content-Length) is cut off as it streams past the limit.
    def chunks():
        yield b'{"query": "{ ledgers { nodes { ik } } }", "variables": {"pad": "'
        for _ in range(E2E_MAX_BODY_BYTES // 1024 + 2):
            yield b"y" * 1024
        yield b'"}}'

    r = httpx.post(api.graphql_url, content=chunks(),
                   headers={"Authorization": f"Bearer {token}",
                            "Content-Type": "application/json"})
    assert r.status_code == 413
    # Under the limit is fine.
    assert gql("{ ledgers { nodes { ik } } }").status_code == 200


def test_invalid_schema_and_unknown_schema_are_bad_requests(gql, unique):
    variables = seed002.store_schema_variables()
    variables["schema"]["key"] = unique("broken-schema")
    lines = variables["schema"]["ledgerEntries"]["types"][0]["lines"]
    lines[1]["account"]["path"] = "liabilities/nowhere"
    result = result_of(gql(seed002.STORE_SCHEMA.replace("... on Error {",
                                                        "__typename ... on Error { retryable"),
                           variables), "storeSchema")
    assert result["__typename"] == "BadRequestError" and result["retryable"] is False
    assert result["code"] == "invalid_schema"
    assert "ledgerEntries.types[0].lines[1].account.path" in result["message"]
    missing = result_of(gql(seed002.CREATE_LEDGER, {"ik": unique("l"), "ledger": {"name": "x"},
                                                    "schema": {"key": "never-stored"}}),
                        "createLedger")
    assert missing == {"code": "schema_not_found", "message": missing["message"]}
    assert "never-stored" in missing["message"]

"""Hostile input that once answered 5xx or a masked ``InternalError`` (issue 12, "5xx and
masked internal errors on bad input"): each case is a 4xx or a typed ``BadRequestError`` /
``NotFoundError`` naming what is wrong, and a genuine 500 leaves the connection usable."""
from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit

import httpx
import pytest

from api import v1
from ledger import service
from tests.e2e import seed002

DEEP = 100_000


@pytest.fixture(scope="module")
def ledger_ik(db, unique):
    doc = seed002.store_schema_variables()["schema"]
    doc["key"] = unique("hostile-errors-schema")
    service.store_schema(db, doc)
    ik = unique("hostile-errors-ledger")
    service.create_ledger(db, ik, "Hostile errors", doc["key"])
    return ik


@pytest.fixture
def gql(api, token):
    """POST /graphql with a full token; the JSON is ASCII with escapes (as a browser's
    JSON.stringify sends it), so lone surrogates travel as ``\\ud800``."""

    def call(query: str, variables: dict | None = None) -> httpx.Response:
        return httpx.post(api.graphql_url, timeout=30,
                          content=json.dumps({"query": query, "variables": variables or {}}),
                          headers={"Authorization": f"Bearer {token}",
                                   "content-type": "application/json"})

    return call


@pytest.fixture
def rest(api, token):
    with httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {token}"},
                      timeout=30) as client:
        yield client


def assert_typed(r: httpx.Response, typename: str, code: str | None = None, status=None):
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:500])
    if status is not None:
        assert r.status_code == status, r.text[:500]
    body = r.json()
    assert body["__typename"] == typename, body
    assert body["retryable"] is False, body
    if code is not None:
        assert body["code"] == code, body
    return body


def gql_error(r: httpx.Response) -> dict:
    """The one error of a GraphQL answer that ran: typed, never masked."""
    assert r.status_code == 200, r.text[:500]
    errors = r.json().get("errors") or []
    assert len(errors) == 1, r.json()
    ext = errors[0].get("extensions") or {}
    assert ext.get("typename") in ("BadRequestError", "NotFoundError"), errors[0]
    assert ext.get("retryable") is False, errors[0]
    return errors[0]


# ------------------------------------------------------------------ deeply nested JSON

def test_deeply_nested_json_body_to_rest(rest, ledger_ik):
    r = rest.post(f"/v1/ledgers/{ledger_ik}/entries", content="[" * DEEP + "]" * DEEP,
                  headers={"content-type": "application/json"})
    body = assert_typed(r, "BadRequestError", "json_too_deep", status=400)
    assert body["field"] == "body" and "64" in body["message"]


def test_deeply_nested_json_body_to_graphql(gql, api, token):
    r = httpx.post(api.graphql_url, content="[" * DEEP + "]" * DEEP,
                   headers={"Authorization": f"Bearer {token}",
                            "content-type": "application/json"}, timeout=30)
    assert r.status_code == 400, r.text[:500]
    assert r.json()["code"] == "json_too_deep"


def test_deeply_nested_graphql_variables(api, token):
    body = ('{"query": "query($l: LedgerMatchInput!) { ledger(ledger: $l) { ik } }", '
            '"variables": {"l": {"ik": ' + "[" * DEEP + "]" * DEEP + "}}}")
    r = httpx.post(api.graphql_url, content=body, timeout=30,
                   headers={"Authorization": f"Bearer {token}",
                            "content-type": "application/json"})
    assert r.status_code == 400, r.text[:500]
    assert r.json()["code"] == "json_too_deep"


def test_nesting_at_the_limit_still_reads(rest, ledger_ik):
    # 64 levels: read, then refused for what it is (not an entry), not for its depth.
    r = rest.post(f"/v1/ledgers/{ledger_ik}/entries", content="[" * 64 + "]" * 64,
                  headers={"content-type": "application/json"})
    body = assert_typed(r, "BadRequestError")
    assert body["code"] != "json_too_deep"


# ------------------------------------------------------------------ NUL in REST paths

@pytest.mark.parametrize("method,path", [
    ("POST", "/v1/ledgers/%00/entries"),
    ("GET", "/v1/ledgers/a%00b/jobs"),
    ("GET", "/v1/ledgers/a%ED%A0%80b/jobs"),  # the UTF-8 bytes of a surrogate
])
def test_nul_in_a_rest_path(rest, method, path):
    r = rest.request(method, path, json={"ik": "x", "type": "t"} if method == "POST" else None)
    if r.status_code == 404:  # the path is not UTF-8: no route, no ledger
        return
    body = assert_typed(r, "BadRequestError", "invalid_input", status=422)
    assert body["field"] == "ledger.ik", body


@pytest.mark.parametrize("job_id", ["%00", "a%00b", "1%00"])
def test_nul_in_a_job_id_is_not_found(rest, job_id):
    # A job id is a number: one that cannot be one names no job.
    assert_typed(rest.get(f"/v1/jobs/{job_id}"), "NotFoundError", "job_not_found", status=404)


def test_unknown_ledger_in_a_rest_path_is_not_found(rest):
    assert_typed(rest.get("/v1/ledgers/no-such-ledger/jobs"), "NotFoundError", status=404)


@pytest.mark.parametrize("job_id", ["99999999999999999999999", "-1", "0", "1e5"])
def test_job_ids_beyond_bigint_or_malformed_are_not_found(rest, job_id):
    assert_typed(rest.get(f"/v1/jobs/{job_id}"), "NotFoundError", "job_not_found", status=404)


@pytest.fixture(scope="module")
def job_id(db, ledger_ik, unique):
    """A job this module made, so that what follows holds whichever jobs other tests made."""
    submitted = service.submit_entries(db, ledger_ik, [{
        "ik": unique("hostile-job"), "type": "user_funds_account",
        "parameters": {"user_id": "alice", "funding_amount": "100"}}], partitions=16)
    return submitted.jobs[0].id


@pytest.mark.parametrize("spelling", [" {}", "{} ", "+{}", "0{}", "{}_0", "{}.0"])
def test_only_the_id_as_written_names_a_job(rest, job_id, spelling):
    assert rest.get(f"/v1/jobs/{job_id}").json()["id"] == str(job_id)
    assert_typed(rest.get(f"/v1/jobs/{spelling.format(job_id)}"), "NotFoundError",
                 "job_not_found", status=404)


# ------------------------------------------------------------------ text the database can't hold

NUL, SURROGATE = "a\u0000b", "a\ud800b"

ACCOUNT_BY_PATH = """query($a: LedgerAccountMatchInput!) {
  ledgerAccount(ledgerAccount: $a) { path ownBalance } }"""
LEDGER_ACCOUNT = """query($l: LedgerMatchInput!, $p: String!) {
  ledger(ledger: $l) { ledgerAccount(path: $p) { path ownBalance } } }"""
LINES = """query($l: LedgerMatchInput!, $a: LedgerAccountMatchInput) {
  ledger(ledger: $l) { lines(account: $a) { nodes { id } } } }"""
ENTRIES = """query($l: LedgerMatchInput!, $a: LedgerAccountMatchInput) {
  ledger(ledger: $l) { ledgerEntries(account: $a) { nodes { id } } } }"""


@pytest.mark.parametrize("bad", [NUL, SURROGATE, "liabilities/users:\u0000",
                                 "liabilities/users:a\udfff/available"])
def test_unstorable_account_path(gql, ledger_ik, bad):
    error = gql_error(gql(ACCOUNT_BY_PATH, {"a": {"path": bad, "ledger": {"ik": ledger_ik}}}))
    assert error["extensions"]["code"] == "invalid_input" and "path" in error["message"]
    error = gql_error(gql(LEDGER_ACCOUNT, {"l": {"ik": ledger_ik}, "p": bad}))
    assert error["extensions"]["code"] == "invalid_input" and "path" in error["message"]


@pytest.mark.parametrize("query", [LINES, ENTRIES], ids=["lines", "ledgerEntries"])
@pytest.mark.parametrize("pattern", [NUL, SURROGATE, "users:\ud7ff*", "users:\ud800*",
                                     "liabilities/users:*\u0000", "assets/*\udfff"])
def test_unstorable_account_pattern(gql, ledger_ik, query, pattern):
    r = gql(query, {"l": {"ik": ledger_ik}, "a": {"path": pattern}})
    if pattern == "users:\ud7ff*":
        # A real character (U+D7FF): a pattern that matches nothing, or a typed refusal.
        body = r.json()
        assert r.status_code == 200 and "InternalError" not in r.text, body
        return
    error = gql_error(r)
    assert error["extensions"]["code"] == "invalid_input", error
    assert error["message"].startswith("account: contains a NUL"), error


@pytest.mark.parametrize("ledger", [{"ik": NUL}, {"ik": SURROGATE}])
def test_unstorable_ledger_ik_in_a_query(gql, ledger):
    r = gql("query($l: LedgerMatchInput!) { ledger(ledger: $l) { ik } }", {"l": ledger})
    if r.status_code == 400:  # refused by the SafeString scalar before it ran
        assert "ik" in r.json()["errors"][0]["message"]
        return
    assert "ik" in gql_error(r)["message"]


# ------------------------------------------------------------------ ids beyond bigint

BIG = "99999999999999999999999"


@pytest.mark.parametrize("query,variables", [
    ("query($e: LedgerEntryMatchInput!) { ledgerEntry(ledgerEntry: $e) { id } }",
     {"e": {"id": BIG}}),
    ("query($l: LedgerMatchInput!) { ledger(ledger: $l) { ik } }", {"l": {"id": BIG}}),
    ("query($a: LedgerAccountMatchInput!) { ledgerAccount(ledgerAccount: $a) { path } }",
     {"a": {"id": BIG}}),
    ("query($e: LedgerEntryMatchInput!) { ledgerEntry(ledgerEntry: $e) { id } }",
     {"e": {"id": "-5"}}),
], ids=["entry", "ledger", "account", "negative-entry"])
def test_ids_beyond_bigint_are_not_found(gql, query, variables):
    error = gql_error(gql(query, variables))
    assert error["extensions"]["typename"] == "NotFoundError", error


@pytest.mark.parametrize("mutation,variables", [
    ("mutation($id: ID!) { reverseLedgerEntry(id: $id) { __typename ... on Error { code } } }",
     {"id": BIG}),
    ("""mutation($e: LedgerEntryMatchInput!) { updateLedgerEntry(ledgerEntry: $e,
        update: {tags: [{key: "a", value: "b"}]}) { __typename ... on Error { code } } }""",
     {"e": {"id": BIG}}),
], ids=["reverse", "update"])
def test_id_beyond_bigint_in_a_mutation(gql, mutation, variables):
    r = gql(mutation, variables)
    assert r.status_code == 200, r.text
    body = r.json()
    if "errors" in body:
        assert gql_error(r)["extensions"]["typename"] in ("BadRequestError", "NotFoundError")
    else:
        result = next(iter(body["data"].values()))
        assert result["__typename"] in ("BadRequestError", "NotFoundError"), body


# ------------------------------------------------------------------ after a 500

def _exchange(sock: socket.socket, host: str, path: str, token: str) -> tuple[int, dict]:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
                 "\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionResetError("closed before an answer")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionResetError("closed inside an answer")
        rest += chunk
    return int(lines[0].split()[1]), headers


def test_a_500_leaves_the_keep_alive_connection_usable(api, token, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug, not bad input")

    monkeypatch.setattr(v1.service, "get_job", broken)
    where = urlsplit(api.url)
    with socket.create_connection((where.hostname, where.port), timeout=10) as sock:
        status, headers = _exchange(sock, where.netloc, "/v1/jobs/1", token)
        assert status == 500
        if headers.get("connection", "").lower() == "close":
            return  # told the client: a clean close
        status, _ = _exchange(sock, where.netloc, "/healthz", token)
        assert status == 200


# ------------------------------------------------------------------ links and txs (found by tests/fuzz)

DELETE_TXS = """mutation($l: LinkMatchInput!, $t: [TxMatchInput!]!) {
  deleteCustomTxs(link: $l, txs: $t) { __typename ... on Error { code message } } }"""
SYNC_ACCOUNTS = """mutation($l: LinkMatchInput!, $a: [CustomAccountInput!]!) {
  syncCustomAccounts(link: $l, accounts: $a) { __typename ... on Error { code message } } }"""


@pytest.mark.parametrize("link", [NUL, SURROGATE])
def test_unstorable_link_id(gql, link):
    r = gql(DELETE_TXS, {"l": {"id": link}, "t": [{"id": BIG}]})
    assert r.status_code == 200, r.text
    result = r.json()["data"]["deleteCustomTxs"]
    assert result["__typename"] in ("BadRequestError", "NotFoundError"), result


@pytest.mark.parametrize("external_id", [NUL, SURROGATE])
def test_unstorable_external_account_id(gql, unique, external_id):
    link = unique("hostile-link")
    created = gql("""mutation($ik: SafeString!) { createCustomLink(ik: $ik, name: "L") {
        __typename } }""", {"ik": link})
    assert created.json()["data"]["createCustomLink"]["__typename"] == "CreateCustomLinkResult"
    r = gql(SYNC_ACCOUNTS, {"l": {"id": link}, "a": [{"externalId": external_id, "name": "x"}]})
    result = r.json()["data"]["syncCustomAccounts"]
    assert result["__typename"] == "BadRequestError" and "externalId" in result["message"], result

"""Every schema and every GraphQL document of the seeds, taken from the seed files
themselves (tests/fixtures/seeds/, see tests/seed_blocks.py) and sent to the running app
in the order the seeds give them.

The seeds are documentation, so some documents are not whole or name things the docs never
create. What this test supplies is written out below, block by block, with the reason:

- ``{...}`` elisions: the chart of accounts a schema snippet elides is the quickstart's
  (seed 002's storeSchema variables), plus the accounts its lines name; an elided line
  (``{...other line}``) is the balancing line named in ``OTHER_LINES`` (both in
  tests/seed_schemas.py, which the codegen test shares); the ledger a query's variables
  elide is the quickstart ledger.
- Entry-type snippets (a ``{"type": ...}`` object) are stored inside a schema: the
  quickstart chart for seed 002, the chart seed 001 implies by its paths, and seed 000's
  own document, which grows step by step as that guide says.
- Seed 002 posts to a ledger ``ledger-ik`` it never creates, syncs txs of a link and of
  accounts it never creates, and reconciles a type ``user_funding`` (``txId``,
  ``customerId``) that no schema of the seeds defines: the test creates them (``setup``).
- Seed 002's runtime-entry variables name no ledger: they run in a workspace holding one
  ledger (and are refused, naming how to choose, in the workspace holding several).
- ``NOT_RUN`` lists the blocks that cannot run, with the reason. Seed 000's and 001's
  Python SDK calls and seed 004 (a REST wallet, no documents) are not blocks: their flows
  are tested through the SDK and REST suites.

``test_every_block_is_accounted_for`` (last) checks that each block of every seed file was
run by a step above or is listed in ``NOT_RUN``; a seed that changes changes the count.
"""
from __future__ import annotations

import base64
import copy
import json
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from api.app import create_app
from api.cli.common import load_schema_file
from ledger import clients
from ledger.db import Database, normalize_url
from ledger.migrate import upgrade
from ledger.settings import Settings
from tests.conftest import RUN_ID
from tests.keys import SECRET_KEY
from tests.seed_blocks import Block, seed_files
from tests.seed_schemas import (BANK, BLOCKS, LINK, OPERATING, SEED001_CHART, SNIPPET_CHARTS,
                                 quickstart_chart, quickstart_schema, whole_schema)
from tests.serving import serve

RAN: set[tuple[str, int]] = set()

NOT_RUN = {
    ("000", 2): "Python code of the pure-code wallet (a SQL parameter dict), not a document",
    ("000", 3): "Python code of the pure-code wallet (a SQL parameter dict), not a document",
    ("000", 5): "Python code of the pure-code wallet (a SQL parameter dict), not a document",
    ("002", 8): "the error-handling sketch elides its selection set (`...`): not a document "
                "a server can run; the same operation runs as block 4 and block 11",
}


def block(seed: str, index: int) -> Block:
    RAN.add((seed, index))
    return BLOCKS[(seed, index)]


def value(seed: str, index: int):
    return copy.deepcopy(block(seed, index).value)


def in_schema(seed: str, index: int, key: str, chart: dict) -> dict:
    return whole_schema(block(seed, index), key, chart)


# ------------------------------------------------------------------ workspaces

@dataclass
class Workspace:
    """A deployment of its own: a fresh database and the app serving it."""

    url: str
    api_url: str
    db: Database
    token: str

    def gql(self, query: str, variables: dict | None = None) -> dict:
        r = httpx.post(f"{self.api_url}/graphql", json={"query": query, "variables": variables or {}},
                       headers={"Authorization": f"Bearer {self.token}"}, timeout=30)
        assert r.status_code == 200, r.text
        return r.json()

    def data(self, query: str, variables: dict | None, field: str) -> dict:
        body = self.gql(query, variables)
        assert "errors" not in body, body
        return body["data"][field]

    def ok(self, query: str, variables: dict | None, field: str, typename: str) -> dict:
        result = self.data(query, variables, field)
        assert result.get("__typename", typename) == typename and "code" not in result, result
        return result


@contextmanager
def workspace(database_url: str, name: str) -> Iterator[Workspace]:
    db_name = f"ledger_test_{RUN_ID}_{name}"
    # The run's own database serves to create and drop the others on the same server.
    admin = sa.create_engine(normalize_url(database_url), isolation_level="AUTOCOMMIT",
                             poolclass=NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{db_name}"')
    url = make_url(database_url).set(database=db_name).render_as_string(hide_password=False)
    db = Database(url)
    try:
        upgrade(url)
        client = clients.create_client(db, f"seeds {name}", "write")
        app = create_app(Settings(database_url=url, secret_key=SECRET_KEY), db)
        with serve(app, f"seeds-{name}") as api_url:
            r = httpx.post(f"{api_url}/oauth2/token", data={"grant_type": "client_credentials"},
                           auth=(client.client_id, client.client_secret))
            assert r.status_code == 200, r.text
            yield Workspace(url, api_url, db, r.json()["access_token"])
    finally:
        db.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(scope="module")
def ws(database_url):
    with workspace(database_url, "seeds") as w:
        yield w


# ------------------------------------------------------------------ the seeds' documents

def doc(seed: str, index: int) -> str:
    return block(seed, index).text


def store(ws: Workspace, schema: dict) -> dict:
    """Store through seed 002's own storeSchema document; the stored JSON is what was sent."""
    result = ws.data(doc("002", 0), {"schema": schema}, "storeSchema")
    assert "schema" in result, (schema.get("key"), result)
    stored = result["schema"]["version"]["json"]
    for part in ("chartOfAccounts", "ledgerEntries"):
        assert stored.get(part) == schema.get(part), part
    return result["schema"]


def create_ledger(ws: Workspace, ik: str, schema_key: str) -> None:
    result = ws.data(doc("002", 2), {"ik": ik, "ledger": {"name": ik}, "schema": {"key": schema_key}},
                     "createLedger")
    assert result["ledger"]["ik"] == ik, result


CREATE_LINK = """mutation ($ik: SafeString!, $name: String!, $id: ID) {
  createCustomLink(ik: $ik, name: $name, id: $id) {
    __typename ... on Error { code message } } }"""

SYNC_ACCOUNTS = """mutation ($link: LinkMatchInput!, $accounts: [CustomAccountInput!]!) {
  syncCustomAccounts(link: $link, accounts: $accounts) {
    __typename ... on Error { code message } } }"""

LINE_VIEWS = """query ($ledger: LedgerMatchInput!, $account: LedgerAccountMatchInput!,
                      $entry: LedgerEntryMatchInput!) {
  ledger(ledger: $ledger) { lines(account: {path: "liabilities/users:alice/available"}) {
    nodes { id description } } }
  ledgerAccount(ledgerAccount: $account) { lines { nodes { id description } } }
  ledgerEntry(ledgerEntry: $entry) { lines { nodes { id description } } }
}"""


def sync_txs(ws: Workspace, *txs: tuple[str, str, str]) -> None:
    """Txs the seeds reconcile but never sync: (account external id, tx id, amount)."""
    ws.ok(doc("002", 25), {"link": {"id": LINK}, "txs": [
        {"account": {"linkId": LINK, "externalId": account}, "externalId": ext,
         "description": f"test tx {ext}", "amount": amount, "posted": "2025-02-03T04:05:06Z"}
        for account, ext, amount in txs]}, "syncCustomTxs", "SyncCustomTxsResult")


# ------------------------------------------------------------------ seed 000

def test_seed000_the_wallet_schema_grows_step_by_step(ws):
    wallet = value("000", 0)
    wallet["ledgerEntries"] = {"types": [value("000", 1)]}
    assert store(ws, wallet)["version"]["version"] == 1
    wallet["ledgerEntries"]["types"].append(value("000", 4))
    assert store(ws, wallet)["version"]["version"] == 2
    create_ledger(ws, "seed000-wallet", "wallet")
    post = doc("002", 11)
    ledger = {"ik": "seed000-wallet"}
    ws.ok(post, {"ik": "d1", "entry": {"ledger": ledger, "type": "deposit",
                                       "parameters": {"user_id": "ann", "amount": "250"}}},
          "addLedgerEntry", "AddLedgerEntryResult")
    moved = ws.ok(post, {"ik": "t1", "entry": {"ledger": ledger, "type": "transfer", "parameters": {
        "from_id": "ann", "to_id": "bob", "amount": "200"}}}, "addLedgerEntry", "AddLedgerEntryResult")
    assert [l["description"] for l in moved["lines"]] == ["ann sends 200 to bob"] * 2
    overdraft = ws.data(post, {"ik": "t2", "entry": {"ledger": ledger, "type": "transfer", "parameters": {
        "from_id": "ann", "to_id": "bob", "amount": "51"}}}, "addLedgerEntry")
    assert overdraft["__typename"] == "BadRequestError" and overdraft["code"] == "condition_failed"
    # Step 4 links user-cash to the processor, adding to the same document.
    link = value("000", 6)
    wallet["chartOfAccounts"]["assets"]["banks"]["user-cash"].update(
        link["assets"]["banks"]["user-cash"])
    assert store(ws, wallet)["version"]["version"] == 3
    refused = ws.data(post, {"ik": "d2", "entry": {"ledger": ledger, "type": "deposit",
                                                   "parameters": {"user_id": "ann", "amount": "1"}}},
                      "addLedgerEntry")
    assert refused["code"] == "linked_account", refused  # a charge now posts it (reconcileTx)


# ------------------------------------------------------------------ seed 001

def test_seed001_deposit_and_transfer_entry_types(ws):
    """Seed 001 shows its entry types and not its chart: the chart is the one their paths
    name (``asset/cash``, ``liability/wallets/wallet:{{user_id}}``)."""
    schema = {"key": "seed001-wallet", "chartOfAccounts": SEED001_CHART,
              "ledgerEntries": {"types": [value("001", 0), value("001", 1)]}}
    store(ws, schema)
    create_ledger(ws, "seed001-wallet", "seed001-wallet")
    post, ledger = doc("002", 11), {"ik": "seed001-wallet"}
    ws.ok(post, {"ik": "tx123", "entry": {"ledger": ledger, "type": "DepositEntry",
                                          "parameters": {"user_id": "user_1", "cents": "1000"}}},
          "addLedgerEntry", "AddLedgerEntryResult")
    sent = ws.ok(post, {"ik": "tx124", "entry": {"ledger": ledger, "type": "TransferEntry",
                                                 "parameters": {"from_id": "user_1", "to_id": "user_2",
                                                                "cents": "600"}}},
                 "addLedgerEntry", "AddLedgerEntryResult")
    assert [(l["key"], l["amount"]) for l in sent["lines"]] == [
        ("debit_sender", "-600"), ("credit_recipient", "600")]
    refused = ws.data(post, {"ik": "tx125", "entry": {"ledger": ledger, "type": "TransferEntry",
                                                      "parameters": {"from_id": "user_1",
                                                                     "to_id": "user_2", "cents": "401"}}},
                      "addLedgerEntry")
    assert refused["code"] == "condition_failed", refused


# ------------------------------------------------------------------ seed 002

def test_seed002_quickstart_verbatim(ws):
    stored = ws.data(doc("002", 0), value("002", 1), "storeSchema")
    assert stored["schema"]["key"] == "quickstart-schema"
    assert stored["schema"]["version"]["json"] == value("002", 1)["schema"]
    created = ws.data(doc("002", 2), value("002", 3), "createLedger")
    assert created["ledger"]["ik"] == "quickstart-ledger"
    assert created["ledger"]["schema"] == {"key": "quickstart-schema"}


def test_seed002_add_ledger_entry_verbatim(ws):
    create_ledger(ws, "ledger-ik", "quickstart-schema")  # setup: named, never created
    result = ws.ok(doc("002", 11), value("002", 12), "addLedgerEntry", "AddLedgerEntryResult")
    assert result["entry"]["posted"] == "1234-01-01T01:01:01.000Z"
    assert [(l["key"], l["amount"], l["description"], l["account"]["path"]) for l in result["lines"]] == [
        ("funds_arrive_in_bank", "200", "Funding testing-user for 200.", "assets/banks/user-cash"),
        ("increase_user_balance", "200", "Funding testing-user for 200.",
         "liabilities/users:testing-user/available")]
    # The codegen document has no variables of its own: it sends the same call, a replay.
    replay = ws.ok(doc("002", 4), value("002", 12), "addLedgerEntry", "AddLedgerEntryResult")
    assert replay["isIkReplay"] is True
    assert [l["type"] for l in replay["lines"]] == ["debit", "credit"]


def test_seed002_token_request_as_the_docs_send_it(ws):
    client = clients.create_client(ws.db, "seed 002 token", "write")
    headers = value("002", 5)
    basic = base64.b64encode(f"{client.client_id}:{client.client_secret}".encode()).decode()
    headers["Authorization"] = headers["Authorization"].replace("{{client_credentials}}", basic)
    body = (f"grant_type=client_credentials&scope={ws.api_url}/*&client_id={client.client_id}")
    r = httpx.post(f"{ws.api_url}/oauth2/token", content=body, headers=headers)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert set(answer) >= set(value("002", 6))
    assert answer["token_type"] == "Bearer" and isinstance(answer["expires_in"], int)


def test_seed002_response_union_is_in_our_sdl(ws):
    sdl = httpx.get(f"{ws.api_url}/schema.graphql",
                    headers={"Authorization": f"Bearer {ws.token}"}).text
    assert " ".join(doc("002", 7).split()) in " ".join(sdl.split())


@pytest.mark.parametrize("index", [9, 10, 16, 17, 18, 19, 30])
def test_seed002_entry_type_snippets_store(ws, index):
    stored = store(ws, in_schema("002", index, f"seed002-block{index}", SNIPPET_CHARTS[("002", index)]))
    assert stored["version"]["version"] >= 1


@pytest.mark.parametrize("seed, index", [("002", 22), ("002", 24), ("003", 0), ("003", 2)])
def test_linked_account_charts_store(ws, seed, index):
    store(ws, in_schema(seed, index, f"seed{seed}-block{index}", {}))


@pytest.mark.parametrize("seed, index", [("002", 23), ("003", 1)])
def test_env_var_chart_stores_through_the_cli_loader(ws, tmp_path, seed, index):
    path = tmp_path / "schema.jsonc"
    path.write_text(block(seed, index).text)
    document = load_schema_file(path, {"BANK_LINK_ID": LINK, "BANK_ACCOUNT_ID": "bank-account-1"})
    assert document["chartOfAccounts"]["accounts"][0]["children"][0]["linkedAccount"] == {
        "linkId": LINK, "externalId": "bank-account-1"}
    document["key"] = f"seed{seed}-block{index}"
    store(ws, document)


def test_seed002_reconcile_tx_section_e(ws):
    """Seed 002 E.c: the reconciliation type on account ``bank``, reconciled with only the
    tx's id (``some_amount`` is the tx's amount)."""
    ws.ok(CREATE_LINK, {"ik": LINK, "name": "Seed 002 bank", "id": LINK}, "createCustomLink",
          "CreateCustomLinkResult")
    ws.ok(SYNC_ACCOUNTS, {"link": {"id": LINK}, "accounts": [
        {"externalId": "bank-account-1", "name": "Bank account 1"},
        {"externalId": "bank-account-2", "name": "Bank account 2"}]}, "syncCustomAccounts",
        "SyncCustomAccountsResult")
    snippet = in_schema("002", 13, "quickstart-schema", quickstart_chart(extra_roots=(BANK,)))
    schema = quickstart_schema()
    schema["chartOfAccounts"] = snippet["chartOfAccounts"]
    schema["ledgerEntries"]["types"] += snippet["ledgerEntries"]["types"]
    store(ws, schema)
    sync_txs(ws, ("bank-account-2", "tx_1234", "2500"))
    result = ws.ok(doc("002", 14), value("002", 15), "reconcileTx", "ReconcileTxResult")
    assert result["entry"]["ik"] == "tx_1234" and result["isIkReplay"] is False
    assert result["lines"] == [{"amount": "2500", "currency": {"code": "USD"}}] * 2


def runtime_schema() -> dict:
    schema = quickstart_schema()
    schema["ledgerEntries"]["types"].append(value("002", 19))
    return schema


def current_quickstart(ws: Workspace) -> dict:
    return ws.data("query { schema(schema: {key: \"quickstart-schema\"}) { version { json } } }",
                   None, "schema")["version"]["json"]


def test_seed002_runtime_entry(ws, database_url):
    schema = current_quickstart(ws)
    schema["ledgerEntries"]["types"].append(value("002", 19))
    store(ws, schema)
    several = ws.data(doc("002", 20), value("002", 21), "addLedgerEntry")
    assert several["code"] == "invalid_input", several
    assert "entry.ledger" in several["message"] and "several ledgers" in several["message"]
    with workspace(database_url, "seeds_one_ledger") as one:
        one.data(doc("002", 0), {"schema": runtime_schema()}, "storeSchema")
        none = one.data(doc("002", 20), value("002", 21), "addLedgerEntry")
        assert "entry.ledger" in none["message"] and "no ledger exists" in none["message"]
        one.data(doc("002", 2), value("002", 3), "createLedger")
        result = one.data(doc("002", 20), value("002", 21), "addLedgerEntry")
        assert result["entry"]["type"] == "runtime_entry", result
        assert [(l["key"], l["amount"], l["description"], l["account"]["path"])
                for l in result["lines"]] == [
            ("funds_arrive_in_bank", "100", "Runtime-defined ledger entry", "assets/banks/user-cash"),
            ("increase_user_balance", "100", "Runtime-defined ledger entry",
             "liabilities/users:test-user/available")]


def test_seed002_sync_custom_txs_verbatim(ws):
    result = ws.ok(doc("002", 25), value("002", 26), "syncCustomTxs", "SyncCustomTxsResult")
    assert [(x["externalId"], x["amount"], x["date"], x["description"]) for x in result["txs"]] == [
        ("tx-1", "-100", "1968-01-01", "Processed ACH batch"),
        ("tx-2", "100", "1968-01-01", "Received RTP payment")]


def test_seed002_user_funds_account_via_link_stores_and_reconciles(ws):
    """The schema issue 13 names: ``{{funding_amount}}`` only in the description."""
    snippet = in_schema("002", 27, "quickstart-schema", quickstart_chart(OPERATING))
    via_link = snippet["ledgerEntries"]["types"][0]
    # setup: the type seed 002's reconcileTx variables name (txId, customerId), which no
    # schema of the seeds defines: the same lines under those parameter names.
    user_funding = json.loads(json.dumps(via_link).replace("bank_transaction_id", "txId")
                              .replace("user_id", "customerId"))
    user_funding["type"] = "user_funding"
    user_funding["description"] = "Funding {{customerId}}"
    schema = current_quickstart(ws)
    schema["chartOfAccounts"]["accounts"][0]["children"].append(copy.deepcopy(OPERATING))
    schema["ledgerEntries"]["types"] += [via_link, user_funding]
    store(ws, schema)
    store(ws, in_schema("002", 27, "seed002-block27", quickstart_chart(OPERATING)))
    sync_txs(ws, ("bank-account-1", "bank-1500", "1500"), ("bank-account-1", "tx_12345", "700"))

    entry = {"type": "user_funds_account_via_link", "ledger": {"ik": "quickstart-ledger"},
             "parameters": {"bank_transaction_id": "bank-1500", "user_id": "alice"}}
    missing = ws.data(doc("002", 28), {"entry": entry}, "reconcileTx")
    assert missing["code"] == "missing_parameter" and "funding_amount" in missing["message"]
    entry["parameters"]["funding_amount"] = "1500"
    result = ws.data(doc("002", 28), {"entry": entry}, "reconcileTx")
    assert [(l["key"], l["amount"], l["description"]) for l in result["lines"]] == [
        ("funds_arrive_in_bank", "1500", "Funding alice for 1500"),
        ("increase_user_balance", "1500", "Funding alice for 1500")]
    # The same line reads the same through every path that shows lines.
    entry_id = ws.data("""query { ledgerEntry(ledgerEntry: {ik: "bank-1500", ledger: {ik: "quickstart-ledger"}})
                          { id } }""", None, "ledgerEntry")["id"]
    views = ws.gql(LINE_VIEWS, {"ledger": {"ik": "quickstart-ledger"}, "entry": {"id": entry_id},
                                "account": {"path": "liabilities/users:alice/available",
                                            "ledger": {"ik": "quickstart-ledger"}}})
    assert "errors" not in views, views
    seen = [views["data"]["ledger"]["lines"]["nodes"], views["data"]["ledgerAccount"]["lines"]["nodes"],
            views["data"]["ledgerEntry"]["lines"]["nodes"][1:]]
    assert all(nodes and nodes[0]["description"] == "Funding alice for 1500" for nodes in seen), seen

    verbatim = ws.data(doc("002", 28), value("002", 29), "reconcileTx")
    assert [(l["key"], l["amount"], l["description"]) for l in verbatim["lines"]] == [
        ("funds_arrive_in_bank", "700", "Funding customer-1"),
        ("increase_user_balance", "700", "Funding customer-1")]


# ------------------------------------------------------------------ seed 003

@pytest.mark.parametrize("index", [3, 6])
def test_seed003_entry_type_snippets_store(ws, index):
    store(ws, in_schema("003", index, f"seed003-block{index}", SNIPPET_CHARTS[("003", index)]))


def test_seed003_reconcile_tx_names_a_tx_seed002_reconciled(ws):
    """Seed 003 reconciles tx_12345 into quickstart-ledger, which seed 002 reconciled into
    ledger-ik: a tx is reconciled once, so the second is refused and nothing posts."""
    refused = ws.data(doc("003", 4), value("003", 5), "reconcileTx")
    assert refused["code"] == "tx_already_reconciled", refused
    assert "tx_12345" in refused["message"], refused


def test_seed003_unreconciled_txs(ws):
    variables = value("003", 8)
    variables["ledgerAccount"]["ledger"] = {"ik": "quickstart-ledger"}  # elided in the seed
    account = ws.data(doc("003", 7), variables, "ledgerAccount")
    assert [(n["externalId"], n["amount"], n["externalAccountId"])
            for n in account["unreconciledTxs"]["nodes"]] == [("tx-1", "-100", "bank-account-1")]
    # A path the chart has no account for: null and an error, as the docs describe.
    variables["ledgerAccount"]["path"] = "assets/nowhere"
    missing = ws.gql(doc("003", 7), variables)
    assert missing["data"] == {"ledgerAccount": None}
    assert missing["errors"][0]["extensions"]["typename"] == "NotFoundError", missing


# ------------------------------------------------------------------ every block

def test_every_block_is_accounted_for():
    files = [p.name[:3] for p in seed_files()]
    assert files == ["000", "001", "002", "003", "004"]
    left = sorted(set(BLOCKS) - RAN - set(NOT_RUN))
    assert not left, [BLOCKS[k].name for k in left]
    assert not set(NOT_RUN) & RAN
    operations = [b for b in BLOCKS.values() if b.kind == "graphql"]
    assert len(operations) == 11 and all(b.seed in ("002", "003") for b in operations)
    assert not [k for k, b in BLOCKS.items() if b.kind == "text" and k not in NOT_RUN]

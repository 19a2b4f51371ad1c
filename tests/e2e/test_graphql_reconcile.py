"""Seed 002 section F over HTTP: custom links, syncCustomTxs (the seed's document and
variables verbatim), reconcileTx (the seed's documents), unreconciledTxs, deleteCustomTxs."""
from __future__ import annotations

import pytest

SYNC_TXS = """
mutation SyncTransactions(
  $link: LinkMatchInput!
  $txs: [CustomTxInput!]!
) {
  syncCustomTxs(link: $link, txs: $txs) {
    __typename
    ... on SyncCustomTxsResult {
      txs {
        id
        externalId
        amount
        date
        description
      }
    }
    ... on Error {
      code
      message
    }
  }
}
"""

SYNC_TXS_VARIABLES = {
  "link": { "id": "some-link-id" },
  "txs": [
    {
      "account": {
        "linkId": "some-link-id",
        "id": "bank-account-1"
      },
      "externalId": "tx-1",
      "description": "Processed ACH batch",
      "amount": "-100",
      "posted": "1968-01-01"
    },
    {
      "account": {
        "linkId": "some-link-id",
        "externalId": "bank-account-2"
      },
      "externalId": "tx-2",
      "description": "Received RTP payment",
      "amount": "100",
      "posted": "1968-01-01T16:45:00Z"
    }
  ]
}

# Section F g, verbatim.
RECONCILE_TX = """
mutation ReconcileTx(
  $entry: LedgerEntryInput!
) {
  reconcileTx(
    entry: $entry
  ) {
    ... on ReconcileTxResult {
      entry {
        type
        created
        posted
      }
      lines {
        amount
        key
        description
        account {
          path
        }
      }
    }
    ... on Error {
      code
      message
    }
  }
}
"""

# Section E c, verbatim.
RECONCILE_TX_E = """
mutation ReconcileTx(
    $entry: LedgerEntryInput!
  ) {
    reconcileTx(entry: $entry) {
      __typename
      ... on ReconcileTxResult {
        entry {
          ik
          posted
          created
        }
        isIkReplay
        lines {
          amount
          currency {
            code
          }
        }
      }
      ... on Error {
        code
        message
      }
    }
  }
"""

UNRECONCILED = """
query GetUnreconciledTxs (
$ledgerAccount: LedgerAccountMatchInput!
) {
ledgerAccount(ledgerAccount: $ledgerAccount) {
id
unreconciledTxs {
nodes {
id
description
amount
externalId
externalAccountId
}
pageInfo {
endCursor
hasNextPage
}
}
}
}
"""

CREATE_LINK = """
mutation ($ik: SafeString!, $name: String!) {
  createCustomLink(ik: $ik, name: $name) {
    __typename
    ... on CreateCustomLinkResult { link { id name type } isIkReplay }
    ... on Error { code message }
  }
}
"""

SYNC_ACCOUNTS = """
mutation ($link: LinkMatchInput!, $accounts: [CustomAccountInput!]!) {
  syncCustomAccounts(link: $link, accounts: $accounts) {
    __typename
    ... on SyncCustomAccountsResult { accounts { id externalId name linkId } }
    ... on Error { code message }
  }
}
"""

DELETE_TXS = """
mutation ($link: LinkMatchInput!, $txs: [TxMatchInput!]!) {
  deleteCustomTxs(link: $link, txs: $txs) {
    __typename
    ... on DeleteCustomTxsResult { txs { id externalId deleted } }
    ... on Error { code message }
  }
}
"""

STORE_SCHEMA = """
mutation ($schema: SchemaInput!) {
  storeSchema(schema: $schema) { __typename ... on Error { code message } }
}
"""

CREATE_LEDGER = """
mutation ($ik: SafeString!, $ledger: CreateLedgerInput!, $schema: SchemaMatchInput!) {
  createLedger(ik: $ik, ledger: $ledger, schema: $schema) { __typename ... on Error { code message } }
}
"""

ADD_ENTRY = """
mutation ($ik: SafeString!, $entry: LedgerEntryInput!) {
  addLedgerEntry(ik: $ik, entry: $entry) { __typename ... on Error { code message } }
}
"""


def data(response, field):
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    return body["data"][field]


@pytest.fixture
def linked_ledger(gql, unique):
    """A link with accounts and a ledger whose assets/operating mirrors one of them, with
    the entry type of the seed's reconcileTx variables (user_funding: txId, customerId)."""
    link = unique("link")
    made = data(gql(CREATE_LINK, {"ik": link, "name": "Bank"}), "createCustomLink")
    assert made == {"__typename": "CreateCustomLinkResult",
                    "link": {"id": link, "name": "Bank", "type": "custom"}, "isIkReplay": False}
    accounts = data(gql(SYNC_ACCOUNTS, {"link": {"id": link}, "accounts": [
        {"externalId": "operating-1", "name": "Operating"}]}), "syncCustomAccounts")
    assert accounts["accounts"][0]["externalId"] == "operating-1"
    key = unique("recon")
    schema = {
        "key": key,
        "chartOfAccounts": {"accounts": [
            {"key": "assets", "type": "asset", "children": [
                {"key": "operating", "name": "Operating Bank",
                 "linkedAccount": {"linkId": link, "externalId": "operating-1"}}]},
            {"key": "liabilities", "type": "liability", "children": [
                {"key": "customers", "template": True}]}]},
        "ledgerEntries": {"types": [{
            "type": "user_funding",
            "description": "Funding {{customerId}}",
            "lines": [
                {"key": "funds_arrive_in_bank", "account": {"path": "assets/operating"},
                 "tx": {"externalId": "{{txId}}"}},
                {"key": "increase_user_balance",
                 "account": {"path": "liabilities/customers:{{customerId}}"}}]}]},
    }
    assert data(gql(STORE_SCHEMA, {"schema": schema}), "storeSchema")["__typename"] == "StoreSchemaResult"
    ledger = unique("ledger")
    assert data(gql(CREATE_LEDGER, {"ik": ledger, "ledger": {"name": "Recon"},
                                    "schema": {"key": key}}), "createLedger")["__typename"] == "CreateLedgerResult"
    return link, ledger


def sync(gql, link, *txs):
    return data(gql(SYNC_TXS, {"link": {"id": link}, "txs": [
        {"account": {"linkId": link, "externalId": "operating-1"}, "externalId": ext,
         "description": f"payment {ext}", "amount": str(amount), "posted": "2025-02-03T04:05:06Z"}
        for ext, amount in txs]}), "syncCustomTxs")


def test_seed002_sync_custom_txs_verbatim(gql):
    data(gql(CREATE_LINK, {"ik": "some-link-id", "name": "Seed 002 bank"}), "createCustomLink")
    data(gql(SYNC_ACCOUNTS, {"link": {"id": "some-link-id"}, "accounts": [
        {"externalId": "bank-account-1", "name": "Bank account 1"},
        {"externalId": "bank-account-2", "name": "Bank account 2"}]}), "syncCustomAccounts")
    result = data(gql(SYNC_TXS, SYNC_TXS_VARIABLES), "syncCustomTxs")
    assert result["__typename"] == "SyncCustomTxsResult"
    assert [{k: v for k, v in x.items() if k != "id"} for x in result["txs"]] == [
        {"externalId": "tx-1", "amount": "-100", "date": "1968-01-01",
         "description": "Processed ACH batch"},
        {"externalId": "tx-2", "amount": "100", "date": "1968-01-01",
         "description": "Received RTP payment"}]
    again = data(gql(SYNC_TXS, SYNC_TXS_VARIABLES), "syncCustomTxs")
    assert again == result
    changed = {**SYNC_TXS_VARIABLES, "txs": [dict(SYNC_TXS_VARIABLES["txs"][0], amount="-101")]}
    refused = data(gql(SYNC_TXS, changed), "syncCustomTxs")
    assert refused["__typename"] == "BadRequestError" and refused["code"] == "immutable_field"
    assert "txs[0].amount" in refused["message"]


def test_reconcile_tx_with_the_seeds_documents(gql, linked_ledger):
    link, ledger = linked_ledger
    sync(gql, link, ("tx_12345", 5000), ("tx_67890", 70))
    variables = {"entry": {"type": "user_funding", "ledger": {"ik": ledger},
                           "parameters": {"txId": "tx_12345", "customerId": "customer-1"}}}
    result = data(gql(RECONCILE_TX, variables), "reconcileTx")
    assert result["entry"]["type"] == "user_funding"
    assert result["entry"]["posted"] == "2025-02-03T04:05:06.000Z"
    assert sorted((l["key"], l["amount"], l["account"]["path"]) for l in result["lines"]) == [
        ("funds_arrive_in_bank", "5000", "assets/operating"),
        ("increase_user_balance", "5000", "liabilities/customers:customer-1")]
    replay = data(gql(RECONCILE_TX_E, variables), "reconcileTx")
    assert replay["__typename"] == "ReconcileTxResult" and replay["isIkReplay"] is True
    assert replay["entry"]["ik"] == "tx_12345"
    assert replay["lines"][0]["currency"] == {"code": "USD"}

    # addLedgerEntry may not post to the linked account.
    refused = data(gql(ADD_ENTRY, {"ik": "direct", "entry": variables["entry"]}), "addLedgerEntry")
    assert refused["__typename"] == "BadRequestError" and refused["code"] == "linked_account"

    left = data(gql(UNRECONCILED, {"ledgerAccount": {"path": "assets/operating",
                                                     "ledger": {"ik": ledger}}}), "ledgerAccount")
    nodes = left["unreconciledTxs"]["nodes"]
    assert [(n["externalId"], n["amount"], n["externalAccountId"], n["description"])
            for n in nodes] == [("tx_67890", "70", "operating-1", "payment tx_67890")]
    assert left["unreconciledTxs"]["pageInfo"]["hasNextPage"] is False


def test_deleted_tx_cannot_be_reconciled(gql, linked_ledger):
    link, ledger = linked_ledger
    sync(gql, link, ("gone", 10))
    deleted = data(gql(DELETE_TXS, {"link": {"id": link}, "txs": [
        {"account": {"linkId": link, "externalId": "operating-1"}, "externalId": "gone"}]}),
        "deleteCustomTxs")
    assert deleted["__typename"] == "DeleteCustomTxsResult" and deleted["txs"][0]["deleted"]
    result = data(gql(RECONCILE_TX_E, {"entry": {
        "type": "user_funding", "ledger": {"ik": ledger},
        "parameters": {"txId": "gone", "customerId": "c"}}}), "reconcileTx")
    assert result["__typename"] == "BadRequestError" and result["code"] == "tx_deleted"


def test_unreconciled_txs_pages(gql, linked_ledger):
    link, ledger = linked_ledger
    sync(gql, link, *[(f"p{i}", i + 1) for i in range(5)])
    query = """query ($a: LedgerAccountMatchInput!, $after: String) {
      ledgerAccount(ledgerAccount: $a) {
        unreconciledTxs(first: 2, after: $after) { nodes { externalId } pageInfo { endCursor hasNextPage } }
      } }"""
    seen, after = [], None
    while True:
        page = data(gql(query, {"a": {"path": "assets/operating", "ledger": {"ik": ledger}},
                                "after": after}), "ledgerAccount")["unreconciledTxs"]
        seen += [n["externalId"] for n in page["nodes"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == [f"p{i}" for i in range(5)]

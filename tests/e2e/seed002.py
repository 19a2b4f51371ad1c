"""The GraphQL documents and variables of seed 002, copied verbatim (whitespace included
where it matters to nobody but a diff), so the tests send exactly what its readers send."""
from __future__ import annotations

import json
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

STORE_SCHEMA = """mutation QuickstartStoreSchema($schema: SchemaInput!) {
  storeSchema(schema: $schema) {
    ... on StoreSchemaResult {
      schema {
        key
        name
        version {
          version
          created
          json
        }
      }
    }
    ... on Error {
      code
      message
    }
  }
}"""


def store_schema_variables() -> dict:
    return json.loads((FIXTURES / "seed002_store_schema_variables.json").read_text())


CREATE_LEDGER = """mutation QuickstartCreateLedger(
  $ik: SafeString!
  $ledger: CreateLedgerInput!
  $schema: SchemaMatchInput
) {
  createLedger(
    ik: $ik,
    ledger: $ledger,
    schema:$schema
  ) {
    ... on CreateLedgerResult {
      ledger {
        ik
        name
        created
        schema {
          key
        }
      }
    }
    ... on Error {
      code
      message
    }
  }
}"""

CREATE_LEDGER_VARIABLES = {
    "ik": "quickstart-ledger",
    "ledger": {
        "name": "Quickstart Ledger"
    },
    "schema": {
        "key": "quickstart-schema"
    }
}

# "Generate an SDK": the codegen example document.
ADD_LEDGER_ENTRY_CODEGEN = """
  mutation addLedgerEntry(
    $entry: LedgerEntryInput!,
    $ik: SafeString!
  ) {
    addLedgerEntry(ik: $ik, entry: $entry) {
      __typename
      ... on AddLedgerEntryResult {
        entry {
          id
          posted
          created
          date
          description
        }
        lines {
          id
          date
          posted
          created
          amount
          type
          ledgerId
          accountId
          ledgerEntryId
        }
        isIkReplay
      }
      ... on Error {
        code
        message
      }
    }
  }
"""

# "Post to the API".
ADD_LEDGER_ENTRY = """mutation AddLedgerEntry(
  $ik: SafeString!
  $entry: LedgerEntryInput!
) {
  addLedgerEntry(
    ik: $ik,
    entry: $entry
  ) {
    __typename
    ... on AddLedgerEntryResult {
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
}"""

ADD_LEDGER_ENTRY_VARIABLES = {
    "ik": "add-ledger-entry",
    "entry": {
        "ledger": {
            "ik": "ledger-ik"
        },
        "type": "user_funds_account",
        "posted": "1234-01-01T01:01:01",
        "parameters": {
            "user_id": "testing-user",
            "funding_amount": "200"
        }
    }
}

ADD_RUNTIME_LEDGER_ENTRY = """mutation AddRuntimeLedgerEntry(
  $ik: SafeString!
  $entry: LedgerEntryInput!
) {
  addLedgerEntry(
    ik: $ik,
    entry: $entry
  ) {
    ... on AddLedgerEntryResult {
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
}"""

ADD_RUNTIME_LEDGER_ENTRY_VARIABLES = {
    "ik": "add-arbitrary-ledger-entry",
    "entry": {
        "type": "runtime_entry",
        "lines": [
            {
                "account": {"path": "assets/banks/user-cash"},
                "key": "funds_arrive_in_bank",
                "amount": "100"
            },
            {
                "account": {"path": "liabilities/users:test-user/available"},
                "key": "increase_user_balance",
                "amount": "100"
            }
        ]
    }
}

# "Read balances" (fragment.dev/docs/read-balances, the page seed 002 links to).
GET_BALANCE = """query GetBalance(
  $ledgerAccount: LedgerAccountMatchInput!
) {
  ledgerAccount(ledgerAccount: $ledgerAccount) {
    balance
  }
}"""

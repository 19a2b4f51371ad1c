"""The GraphQL documents the SDK sends (the seeds' operations, with every field it maps)."""

ERROR_FIELDS = "... on Error { code message retryable }"

LINE_FIELDS = """id key amount type description posted created
  currency { code } account { path } runningBalance ledgerEntryId"""

ENTRY_FIELDS = "id ik type description posted created ledger { ik } tags { key value } groups { key value }"

LEDGER_FIELDS = "id ik name created balanceUTCOffset schema { key }"

SCHEMA_FIELDS = "key name version { version created json }"

STORE_SCHEMA = f"""mutation StoreSchema($schema: SchemaInput!) {{
  storeSchema(schema: $schema) {{
    __typename
    ... on StoreSchemaResult {{ schema {{ {SCHEMA_FIELDS} }} }}
    {ERROR_FIELDS}
  }}
}}"""

CREATE_LEDGER = f"""mutation CreateLedger($ik: SafeString!, $ledger: CreateLedgerInput!, $schema: SchemaMatchInput) {{
  createLedger(ik: $ik, ledger: $ledger, schema: $schema) {{
    __typename
    ... on CreateLedgerResult {{ isIkReplay ledger {{ {LEDGER_FIELDS} }} }}
    {ERROR_FIELDS}
  }}
}}"""

ADD_LEDGER_ENTRY = f"""mutation AddLedgerEntry($ik: SafeString!, $entry: LedgerEntryInput!) {{
  addLedgerEntry(ik: $ik, entry: $entry) {{
    __typename
    ... on AddLedgerEntryResult {{
      isIkReplay
      entry {{ {ENTRY_FIELDS} }}
      lines {{ {LINE_FIELDS} }}
    }}
    {ERROR_FIELDS}
  }}
}}"""

ADD_LEDGER_ENTRIES = f"""mutation AddLedgerEntries($entries: [AddLedgerEntryInput!]!) {{
  addLedgerEntries(entries: $entries) {{
    __typename
    ... on AddLedgerEntriesResult {{
      results {{
        isIkReplay
        entry {{ {ENTRY_FIELDS} }}
        lines {{ {LINE_FIELDS} }}
      }}
    }}
    {ERROR_FIELDS}
  }}
}}"""

GET_SCHEMA = f"""query GetSchema($schema: SchemaMatchInput!) {{
  schema(schema: $schema) {{ {SCHEMA_FIELDS} }}
}}"""

GET_LEDGER = f"""query GetLedger($ledger: LedgerMatchInput!) {{
  ledger(ledger: $ledger) {{ {LEDGER_FIELDS} }}
}}"""

LIST_LEDGERS = f"""query ListLedgers {{
  ledgers {{ nodes {{ {LEDGER_FIELDS} }} }}
}}"""

AMOUNTS = "nodes { amount currency { code } }"

GET_LEDGER_ACCOUNT = f"""query GetLedgerAccount($ledgerAccount: LedgerAccountMatchInput!, $at: LastMoment) {{
  ledgerAccount(ledgerAccount: $ledgerAccount) {{
    id path type
    ownBalances(at: $at) {{ {AMOUNTS} }}
    childBalances(at: $at) {{ {AMOUNTS} }}
    balances(at: $at) {{ {AMOUNTS} }}
  }}
}}"""

GET_LEDGER_ENTRY = f"""query GetLedgerEntry($ledgerEntry: LedgerEntryMatchInput!) {{
  ledgerEntry(ledgerEntry: $ledgerEntry) {{
    {ENTRY_FIELDS}
    lines {{ nodes {{ {LINE_FIELDS} }} }}
  }}
}}"""


RECONCILE_TX = f"""mutation ReconcileTx($entry: LedgerEntryInput!, $tx: TxMatchInput) {{
  reconcileTx(entry: $entry, tx: $tx) {{
    __typename
    ... on ReconcileTxResult {{
      isIkReplay
      entry {{ {ENTRY_FIELDS} }}
      lines {{ {LINE_FIELDS} }}
    }}
    {ERROR_FIELDS}
  }}
}}"""

"""Every schema of the seed files as a whole document, built from the blocks
tests/seed_blocks.py extracts: the verbatim seed test stores them, the codegen test
generates a client for each.

The seeds are documentation, so most schemas are snippets. What is supplied, and why:

- ``{...}`` elisions: the chart of accounts a schema snippet elides is the quickstart's
  (seed 002's storeSchema variables), plus the accounts its lines name (``SNIPPET_CHARTS``);
  an elided line (``{...other line}``) is the balancing line named in ``OTHER_LINES``.
- Entry-type snippets (a ``{"type": ...}`` object) are stored inside a schema: the
  quickstart chart for seed 002, the chart seed 001 implies by its paths
  (``SEED001_CHART``), and seed 000's own document, which grows step by step as that guide
  says.
- Linked accounts name the link ``LINK`` and the external accounts ``bank-account-1`` /
  ``bank-account-2`` of seed 002's syncCustomTxs variables; ``${ENV_VAR}`` ids are
  substituted as ``ledger store-schema`` / ``ledger codegen`` do.
"""
from __future__ import annotations

import copy
import json
from typing import Any

from api.cli.common import substitute_env
from tests.seed_blocks import ELIDED, Block, all_blocks

BLOCKS = {(b.seed, b.index): b for b in all_blocks()}

LINK = "some-link-id"  # seed 002's syncCustomTxs variables name this link
ENVIRON = {"BANK_LINK_ID": LINK, "BANK_ACCOUNT_ID": "bank-account-1"}

# The line each ``{...other line}`` stands for: the one that balances the snippet.
OTHER_LINES = {
    ("002", 13): {"key": "record_income", "account": {"path": "income"},
                  "amount": "{{some_amount}}"},
    ("002", 18): {"key": "increase_user_pending",
                  "account": {"path": "liabilities/users:{{user_id}}/pending"},
                  "amount": "{{withdraw_amount}}"},
}

SEED001_CHART = {"accounts": [
    {"key": "asset", "type": "asset", "children": [{"key": "cash"}]},
    {"key": "liability", "type": "liability", "children": [{"key": "wallets", "children": [
        {"key": "wallet", "template": True,
         "consistencyConfig": {"ownBalanceUpdates": "strong"}}]}]}]}


def quickstart_schema() -> dict:
    return copy.deepcopy(BLOCKS[("002", 1)].value["schema"])


def quickstart_chart(*extra_assets: dict, extra_roots: tuple = (), income: tuple = ()) -> dict:
    chart = quickstart_schema()["chartOfAccounts"]
    roots = {a["key"]: a for a in chart["accounts"]}
    roots["assets"]["children"].extend(copy.deepcopy(list(extra_assets)))
    roots["income"].setdefault("children", []).extend(copy.deepcopy(list(income)))
    chart["accounts"].extend(copy.deepcopy(list(extra_roots)))
    return chart


def linked(key: str, external_id: str) -> dict:
    return {"key": key, "linkedAccount": {"linkId": LINK, "externalId": external_id}}


# The accounts the seeds' linked snippets name, mirroring the seed's bank accounts.
OPERATING = linked("operating", "bank-account-1")
BANK = {**linked("bank", "bank-account-2"), "type": "asset"}
TWO_BANKS = (linked("operating-bank-account", "bank-account-1"),
             linked("holding-bank-account", "bank-account-2"))

# The chart each schema snippet of the seeds is stored in (chart-only blocks: none).
SNIPPET_CHARTS: dict[tuple[str, int], dict] = {
    ("002", 9): quickstart_chart(),
    ("002", 10): quickstart_chart(income=({"key": "funding-fees"},)),
    ("002", 13): quickstart_chart(extra_roots=(BANK,)),
    ("002", 16): quickstart_chart(),
    ("002", 17): quickstart_chart(),
    ("002", 18): quickstart_chart(),
    ("002", 19): quickstart_chart(),
    ("002", 22): {},
    ("002", 23): {},
    ("002", 24): {},
    ("002", 27): quickstart_chart(OPERATING),
    ("002", 30): quickstart_chart(*TWO_BANKS),
    ("003", 0): {},
    ("003", 1): {},
    ("003", 2): {},
    ("003", 3): quickstart_chart(OPERATING),
    ("003", 6): quickstart_chart(*TWO_BANKS),
}


def elided(x: Any) -> bool:
    return isinstance(x, dict) and set(x) == {ELIDED}


def _fill_lines(key: tuple[str, int], types: list[dict]) -> None:
    for et in types:
        if "lines" in et:
            et["lines"] = [copy.deepcopy(OTHER_LINES[key]) if elided(line) else line
                           for line in et["lines"]]


def whole_schema(block: Block, key: str, chart: dict) -> dict:
    """A block as a whole schema: its elided chart (or, for an entry-type snippet, the
    missing schema around it) supplied, its elided lines filled, ``${ENV_VAR}`` ids
    substituted."""
    document = copy.deepcopy(block.value)
    if "type" in document:  # an entry-type snippet
        document = {"key": key, "chartOfAccounts": chart, "ledgerEntries": {"types": [document]}}
    document.setdefault("key", key)
    if elided(document.get("chartOfAccounts")):
        document["chartOfAccounts"] = copy.deepcopy(chart)
    if "ledgerEntries" in document:
        _fill_lines((block.seed, block.index), document["ledgerEntries"]["types"])
    assert ELIDED not in json.dumps(document), document
    missing: list = []
    document = substitute_env(document, ENVIRON, "", missing)
    assert not missing, missing
    return document


def seed000_steps() -> list[dict]:
    """Seed 000's wallet as the guide grows it: the deposit, then the transfer added to
    the same schema, then user-cash linked to the processor (Stripe)."""
    wallet = copy.deepcopy(BLOCKS[("000", 0)].value)
    wallet["ledgerEntries"] = {"types": [copy.deepcopy(BLOCKS[("000", 1)].value)]}
    steps = [copy.deepcopy(wallet)]
    wallet["ledgerEntries"]["types"].append(copy.deepcopy(BLOCKS[("000", 4)].value))
    steps.append(copy.deepcopy(wallet))
    link = BLOCKS[("000", 6)].value
    wallet["chartOfAccounts"]["assets"]["banks"]["user-cash"].update(
        copy.deepcopy(link["assets"]["banks"]["user-cash"]))
    steps.append(wallet)
    return steps


def seed001_schema() -> dict:
    """Seed 001's entry types in the chart their paths name."""
    return {"key": "seed001-wallet", "chartOfAccounts": copy.deepcopy(SEED001_CHART),
            "ledgerEntries": {"types": [copy.deepcopy(BLOCKS[("001", i)].value)
                                        for i in (0, 1)]}}


def every_seed_schema() -> dict[str, dict]:
    """Every schema of the seed files, by a name that says where it comes from."""
    out = {f"seed000_wallet_v{n}": doc for n, doc in enumerate(seed000_steps(), 1)}
    out["seed001_wallet"] = seed001_schema()
    out["seed002_quickstart"] = quickstart_schema()
    for (seed, index), chart in SNIPPET_CHARTS.items():
        out[f"seed{seed}_block{index}"] = whole_schema(
            BLOCKS[(seed, index)], f"seed{seed}-block{index}", chart)
    return out

"""Schema documents: JSON or JSONC text or a dict, parsed into a ``Schema`` or its issues."""
from __future__ import annotations

from typing import Any

import json5

from ledger.errors import SchemaError
from ledger.schema.accounts import _Collector, _currency_code, _parse_accounts
from ledger.schema.entry_types import _parse_entry_type
from ledger.schema.model import _KEY, DEFAULT_CURRENCY, EntryType, Schema


def load_document(document: Any) -> dict:
    """A schema document from a dict, or JSON / JSONC text."""
    if isinstance(document, (str, bytes)):
        text = document.decode() if isinstance(document, bytes) else document
        try:
            document = json5.loads(text)
        except ValueError as exc:
            raise SchemaError([("$", f"not valid JSON or JSONC: {exc}")]) from None
    if not isinstance(document, dict):
        raise SchemaError([("$", "a schema must be a JSON object")])
    return document


def parse_schema(document: Any) -> Schema:
    """Parse and validate a schema document; raise SchemaError listing every issue."""
    doc = load_document(document)
    issues = _Collector()
    key = doc.get("key")
    if not isinstance(key, str) or not _KEY.match(key):
        issues.add("key", "a schema needs a key (letters, digits, _ . or -)")
    name = doc.get("name")
    chart = doc.get("chartOfAccounts")
    if not isinstance(chart, dict):
        issues.add("chartOfAccounts", "a schema needs a chartOfAccounts object")
        chart = {}
    default_currency = _currency_code(chart.get("defaultCurrency"), "chartOfAccounts.defaultCurrency", issues) or DEFAULT_CURRENCY
    default_mode = chart.get("defaultCurrencyMode", "single")
    if default_mode not in ("single", "multi"):
        issues.add("chartOfAccounts.defaultCurrencyMode", f"must be \"single\" or \"multi\", got {default_mode!r}")
        default_mode = "single"
    accounts, roots = _parse_accounts(chart, issues, default_currency, default_mode)
    entry_types: dict[str, EntryType] = {}
    le = doc.get("ledgerEntries", {})
    types = le.get("types", []) if isinstance(le, dict) else le
    if not isinstance(types, list):
        issues.add("ledgerEntries.types", "must be a list of entry types")
        types = []
    for i, spec in enumerate(types):
        where = f"ledgerEntries.types[{i}]"
        et = _parse_entry_type(spec, where, accounts, issues)
        if et is None:
            continue
        if et.type in entry_types:
            issues.add(f"{where}.type", f"duplicate entry type {et.type!r}")
            continue
        entry_types[et.type] = et
    if issues.issues:
        raise SchemaError(issues.issues)
    return Schema(key, name if isinstance(name, str) else None, default_currency, default_mode,
                  accounts, roots, entry_types, doc)


def verify(document: Any) -> list[tuple[str, str]]:
    try:
        parse_schema(document)
    except SchemaError as exc:
        return exc.issues
    return []

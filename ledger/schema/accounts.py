"""Parsing the chart of accounts (both forms of the seeds), and the field parsers the entry
types share.
"""
from __future__ import annotations

from typing import Any

from ledger.amounts import CURRENCY_CODE
from ledger.schema.model import (
    _KEY,
    ACCOUNT_TYPES,
    CONSISTENCY,
    MAX_DEPTH,
    NESTED_ATTRS,
    TYPE_BY_ROOT_KEY,
    Account,
    PathTemplate,
    Segment,
    Text,
)


class _Collector:
    def __init__(self):
        self.issues: list[tuple[str, str]] = []

    def add(self, path: str, message: str) -> None:
        self.issues.append((path, message))


def _currency_code(value: Any, path: str, issues: _Collector) -> str | None:
    if value is None:
        return None
    code = value.get("code") if isinstance(value, dict) else value
    if not isinstance(code, str) or not CURRENCY_CODE.match(code):
        issues.add(path, f"a currency is {{\"code\": \"USD\"}} (letters, digits, _ or -), got {value!r}")
        return None
    return code


def _parse_consistency(value: Any, path: str, issues: _Collector) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        issues.add(path, "consistencyConfig must be an object")
        return {}
    out = {}
    for k, v in value.items():
        if k not in ("ownBalanceUpdates", "totalBalanceUpdates"):
            issues.add(f"{path}.{k}", "unknown consistency setting (use ownBalanceUpdates or totalBalanceUpdates)")
        elif v not in CONSISTENCY:
            issues.add(f"{path}.{k}", f"must be \"strong\" or \"eventual\", got {v!r}")
        else:
            out[k] = v
    return out


def _parse_accounts(chart: dict, issues: _Collector, default_currency: str,
                    default_mode: str) -> tuple[dict[str, Account], tuple[str, ...]]:
    chart_parser = _Chart(issues, default_currency, default_mode)
    roots: list[str] = []
    seen_roots: set[str] = set()
    if "accounts" in chart:
        items = chart["accounts"]
        if not isinstance(items, list):
            issues.add("chartOfAccounts.accounts", "must be a list of accounts")
            items = []
        for i, spec in enumerate(items):
            p = chart_parser.visit(None, spec, f"chartOfAccounts.accounts[{i}]", None, 1, False, seen_roots)
            if p:
                roots.append(p)
    else:
        for k, v in chart.items():
            if k in ("defaultCurrency", "defaultCurrencyMode"):
                continue
            if not isinstance(v, dict):
                issues.add(f"chartOfAccounts.{k}", "an account must be an object")
                continue
            p = chart_parser.visit(k, v, f"chartOfAccounts.{k}", None, 1, True, seen_roots)
            if p:
                roots.append(p)
    return chart_parser.accounts, tuple(roots)


class _Chart:
    """A walk of the account tree, in either form of the seeds: nested objects keyed by
    account key (``nested``), or ``accounts`` lists with ``children``."""

    def __init__(self, issues: _Collector, default_currency: str, default_mode: str):
        self.issues = issues
        self.default_currency = default_currency
        self.default_mode = default_mode
        self.accounts: dict[str, Account] = {}

    def visit(self, key: Any, spec: Any, where: str, parent: Account | None, depth: int,
              nested: bool, siblings: set[str]) -> str | None:
        """Parse one account and its subtree; returns its path, or None if it is unusable."""
        issues = self.issues
        key = self._key(key, spec, where, nested, siblings)
        if key is None:
            return None
        path = key if parent is None else f"{parent.path}/{key}"
        if depth > MAX_DEPTH:
            issues.add(where, f"account {path!r} is deeper than {MAX_DEPTH} levels")
            return None
        atype = self._type(key, spec, where, parent)
        template = spec.get("template", False)
        if not isinstance(template, (bool, str)):
            issues.add(f"{where}.template", "must be true/false or a name")
        template = bool(template)
        currency, mode = self._currency(spec, where, parent)
        cons = _parse_consistency(spec.get("consistencyConfig"), f"{where}.consistencyConfig", issues)
        own_c = cons.get("ownBalanceUpdates", parent.own_consistency if parent else "strong")
        total_c = cons.get("totalBalanceUpdates", parent.total_consistency if parent else own_c)
        linked = self._linked(spec, where)
        name = spec.get("name")
        kids = self._kids(spec, where, nested)
        provisional = Account(key, path, atype, template, name if isinstance(name, str) else None,
                              currency, mode, own_c, total_c, linked, (), depth)
        child_keys: list[str] = []
        seen: set[str] = set()
        self.accounts[path] = provisional
        for ck, cv, cwhere in kids:
            cpath = self.visit(ck, cv, cwhere, provisional, depth + 1, nested, seen)
            if cpath:
                child_keys.append(cpath.rsplit("/", 1)[-1])
        account = Account(key, path, atype, template, provisional.name, currency, mode, own_c,
                          total_c, linked, tuple(child_keys), depth)
        if linked is not None and child_keys:
            issues.add(f"{where}.linkedAccount", "a linked account cannot have children")
        self.accounts[path] = account
        return path

    def _key(self, key: Any, spec: Any, where: str, nested: bool,
             siblings: set[str]) -> str | None:
        issues = self.issues
        if not isinstance(spec, dict):
            issues.add(where, "an account must be an object")
            return None
        if not nested:
            key = spec.get("key")
        if not isinstance(key, str) or not _KEY.match(key):
            issues.add(where + ("" if nested else ".key"),
                       f"an account key must be letters, digits, _ . or - (got {key!r})")
            return None
        if key in siblings:
            issues.add(where + ("" if nested else ".key"), f"duplicate account key {key!r} under the same parent")
            return None
        siblings.add(key)
        return key

    def _type(self, key: str, spec: dict, where: str, parent: Account | None) -> str:
        issues = self.issues
        atype = spec.get("type")
        if atype is not None and atype not in ACCOUNT_TYPES:
            issues.add(f"{where}.type", f"must be one of {', '.join(ACCOUNT_TYPES)}, got {atype!r}")
            atype = None
        if parent is not None:
            if atype is not None and atype != parent.type:
                issues.add(f"{where}.type", f"{atype!r} differs from its parent's type {parent.type!r}")
            return parent.type
        if atype is None:
            atype = TYPE_BY_ROOT_KEY.get(key.lower())
            if atype is None:
                issues.add(f"{where}.type", f"top-level account {key!r} needs a type ({', '.join(ACCOUNT_TYPES)})")
                atype = "asset"
        return atype

    def _currency(self, spec: dict, where: str,
                  parent: Account | None) -> tuple[str | None, str]:
        """(currency, currency mode): a single-currency account's currency is its own, its
        parent's or the chart's default; a multi-currency account has none."""
        issues = self.issues
        mode = spec.get("currencyMode")
        if mode is not None and mode not in ("single", "multi"):
            issues.add(f"{where}.currencyMode", f"must be \"single\" or \"multi\", got {mode!r}")
            mode = None
        currency = _currency_code(spec.get("currency"), f"{where}.currency", issues)
        if mode is None:
            mode = parent.currency_mode if parent else self.default_mode
            if currency is not None:
                mode = "single"
        if mode == "multi" and currency is not None:
            issues.add(f"{where}.currency", "a multi-currency account cannot also fix one currency")
        if currency is None and mode == "single":
            currency = parent.currency if parent and parent.currency else self.default_currency
        if mode == "multi":
            currency = None
        return currency, mode

    def _linked(self, spec: dict, where: str) -> Any:
        linked = spec.get("linkedAccount")
        if linked is not None and not (
                isinstance(linked, str) and linked
                or isinstance(linked, dict) and isinstance(linked.get("linkId"), str)
                and isinstance(linked.get("externalId"), str)):
            self.issues.add(f"{where}.linkedAccount",
                            "must be a link name (\"stripe\") or {\"linkId\": ..., \"externalId\": ...}")
            linked = None
        return linked

    def _kids(self, spec: dict, where: str, nested: bool) -> list[tuple[Any, Any, str]]:
        """(key, spec, where) of each child account."""
        issues = self.issues
        if nested:
            kids = [(k, v, f"{where}.{k}") for k, v in spec.items()
                    if k not in NESTED_ATTRS and isinstance(v, dict)]
            for k, v in spec.items():
                if k not in NESTED_ATTRS and not isinstance(v, dict):
                    issues.add(f"{where}.{k}", "unknown account attribute (a child account must be an object)")
            return kids
        children = spec.get("children", [])
        if not isinstance(children, list):
            issues.add(f"{where}.children", "must be a list of accounts")
            children = []
        return [(None, v, f"{where}.children[{i}]") for i, v in enumerate(children)]


def _parse_path(text: Any, where: str, accounts: dict[str, Account],
                issues: _Collector) -> PathTemplate | None:
    if not isinstance(text, str) or not text:
        issues.add(where, "an account path is required, like \"liabilities/users:{{user_id}}/available\"")
        return None
    segments = []
    chart_path = None
    for raw in text.split("/"):
        key, sep, value = raw.partition(":")
        chart_path = key if chart_path is None else f"{chart_path}/{key}"
        account = accounts.get(chart_path)
        if account is None:
            issues.add(where, f"unknown account path {text!r}: no account {chart_path!r} in the chart of accounts")
            return None
        if account.template and not sep:
            issues.add(where, f"{chart_path!r} is a template account: name an instance, like {key}:{{{{id}}}}")
            return None
        if sep and not account.template:
            issues.add(where, f"{chart_path!r} is not a template account, so {raw!r} cannot name an instance")
            return None
        if sep and not value:
            issues.add(where, f"empty instance value in {raw!r}")
            return None
        segments.append(Segment(key, Text.parse(value) if sep else None))
    return PathTemplate(tuple(segments), chart_path)


def _text(value: Any, where: str, issues: _Collector) -> Text | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        issues.add(where, "must be a string")
        return None
    return Text.parse(value)


def _key_values(value: Any, where: str, issues: _Collector) -> tuple[tuple[str, Text], ...]:
    if value is None:
        return ()
    if isinstance(value, dict):
        value = [{"key": k, "value": v} for k, v in value.items()]
    if not isinstance(value, list):
        issues.add(where, "must be a list of {\"key\": ..., \"value\": ...}")
        return ()
    out = []
    seen = set()
    for i, item in enumerate(value):
        if not isinstance(item, dict) or not isinstance(item.get("key"), str) or "value" not in item:
            issues.add(f"{where}[{i}]", "must be {\"key\": ..., \"value\": ...}")
            continue
        if item["key"] in seen:
            issues.add(f"{where}[{i}].key", f"duplicate key {item['key']!r}")
            continue
        seen.add(item["key"])
        t = _text(item["value"], f"{where}[{i}].value", issues)
        if t is not None:
            out.append((item["key"], t))
    return tuple(out)

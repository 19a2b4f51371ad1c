"""Schema documents: parse both forms of the seeds, validate, and compile entries.

A schema is checked once, when it is stored, and every rule that can be decided without
data is decided there (balance of each entry type, paths, conditions, currencies), so the
posting engine only evaluates what parameters make concrete.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import json5

from ledger.errors import BadRequestError, SchemaError
from ledger.model import CURRENCY_CODE, MAX_AMOUNT, EntryRequest, parse_amount

ACCOUNT_TYPES = ("asset", "liability", "income", "expense")
# Names a nested chart's top-level keys may use to imply their type.
TYPE_BY_ROOT_KEY = {
    "asset": "asset", "assets": "asset",
    "liability": "liability", "liabilities": "liability",
    "income": "income", "incomes": "income", "revenue": "income", "revenues": "income",
    "expense": "expense", "expenses": "expense",
}
# assets - liabilities - income + expense must net to zero for every entry.
EQUATION_SIGN = {"asset": 1, "liability": -1, "income": -1, "expense": 1}
MAX_DEPTH = 10
DEFAULT_CURRENCY = "USD"
CONSISTENCY = ("strong", "eventual")
OPERATORS = ("eq", "gte", "lte")
BALANCE_KINDS = {"ownBalance": "own", "totalBalance": "total"}

# Attributes of an account in the nested form; any other object-valued key is a child.
NESTED_ATTRS = {"type", "name", "template", "currency", "currencyMode", "consistencyConfig",
                "linkedAccount", "key", "children"}

_PARAM = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*\}\}")
_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_SAFE_VALUE = re.compile(r"^[^/:*\s{}]+$")
# An account path is a btree key (unique per ledger), and PostgreSQL refuses keys over
# about 2,700 bytes: the bound keeps well under that. Checked when a path is made from a
# request, since a refused insert in a worker would fail its whole batch on every retry.
MAX_PATH_BYTES = 1024


# ---------------------------------------------------------------------------- model

@dataclass(frozen=True)
class Text:
    """A string with ``{{param}}`` holes: literal parts and parameter names alternate."""

    parts: tuple[str, ...]  # even indexes literal text, odd indexes parameter names

    @classmethod
    def parse(cls, text: str) -> "Text":
        return cls(tuple(_PARAM.split(text)))

    @property
    def params(self) -> tuple[str, ...]:
        return self.parts[1::2]

    @property
    def is_literal(self) -> bool:
        return len(self.parts) == 1

    def render(self, values: dict[str, str]) -> str:
        parts = self.parts
        if len(parts) == 1:
            return parts[0]
        out = list(parts)
        out[1::2] = [values[p] for p in parts[1::2]]
        return "".join(out)

    def source(self) -> str:
        return "".join(p if i % 2 == 0 else "{{" + p + "}}" for i, p in enumerate(self.parts))


@dataclass(frozen=True)
class Expr:
    """A linear form in the parameters: ``const + sum(coeff * param)``."""

    const: int
    coeffs: tuple[tuple[str, int], ...]

    @property
    def params(self) -> tuple[str, ...]:
        return tuple(p for p, _ in self.coeffs)

    def evaluate(self, values: dict[str, int]) -> int:
        return self.const + sum(c * values[p] for p, c in self.coeffs)

    def scaled(self, k: int) -> dict:
        out = {p: c * k for p, c in self.coeffs}
        out[""] = self.const * k
        return out


_TOKEN = re.compile(r"\s*(?:(\{\{\s*[A-Za-z_][A-Za-z0-9_.-]*\s*\}\})|([0-9]+)|([+-]))")


def parse_expr(text: str) -> Expr:
    """Parse ``{{a}} - {{b}} + 5``: parameters and integer literals joined by + and -."""
    if not isinstance(text, str):
        if isinstance(text, int) and not isinstance(text, bool):
            text = str(text)
        else:
            raise ValueError("expected a string such as \"{{amount}}\" or \"-{{amount}}\"")
    pos, sign, expect_term = 0, 1, True
    const = 0
    coeffs: dict[str, int] = {}
    text = text.rstrip()
    if not text.strip():
        raise ValueError("empty amount")
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise ValueError(f"unexpected {text[pos:].strip()[:20]!r}: use parameters like {{{{amount}}}}, integers, + and -")
        pos = m.end()
        param, number, op = m.groups()
        if op:
            # Unary signs may repeat ("- -5"); a binary one needs a term before it.
            sign = sign * (-1 if op == "-" else 1)
            expect_term = True
            continue
        if not expect_term:
            raise ValueError("two terms without + or - between them")
        if param:
            name = _PARAM.match(param).group(1)
            coeffs[name] = coeffs.get(name, 0) + sign
        else:
            const += sign * int(number)
        sign, expect_term = 1, False
    if expect_term:
        raise ValueError("the amount ends with an operator")
    return Expr(const, tuple((p, c) for p, c in coeffs.items() if c != 0))


@dataclass(frozen=True)
class Account:
    """A node of the chart of accounts (a template node stands for all its instances)."""

    key: str
    path: str  # chart path: keys joined by "/", no template values
    type: str
    template: bool
    name: str | None
    currency: str | None
    currency_mode: str
    own_consistency: str
    total_consistency: str
    linked: Any  # the linkedAccount document, or None
    children: tuple[str, ...]
    depth: int


@dataclass(frozen=True)
class Segment:
    key: str
    value: Text | None  # the template value, for instances of a template node


@dataclass(frozen=True)
class PathTemplate:
    segments: tuple[Segment, ...]
    account: str  # chart path of the account it names

    @property
    def params(self) -> tuple[str, ...]:
        return tuple(p for s in self.segments if s.value for p in s.value.params)

    @cached_property
    def text(self) -> Text:
        """The whole path as one template, so rendering is a single join."""
        return Text.parse(self.source())

    def render(self, values: dict[str, str]) -> str:
        return self.text.render(values)

    def source(self) -> str:
        return "/".join(s.key if s.value is None else f"{s.key}:{s.value.source()}"
                        for s in self.segments)


@dataclass(frozen=True)
class LineType:
    key: str
    path: PathTemplate
    amount: Expr | None  # None: taken from the tx, or inferred to balance the entry
    currency: Text | None
    tx: Text | None
    description: Text | None


@dataclass(frozen=True)
class ConditionType:
    path: PathTemplate
    when: str  # "pre" | "post"
    balance: str  # "own" | "total"
    op: str
    value: Expr
    currency: Text | None


@dataclass(frozen=True)
class EntryType:
    type: str
    description: Text | None
    lines: tuple[LineType, ...] | None  # None: a runtime entry type, lines come with the post
    conditions: tuple[ConditionType, ...]
    groups: tuple[tuple[str, Text], ...]
    tags: tuple[tuple[str, Text], ...]
    amount_params: frozenset[str]
    params: frozenset[str]

    @cached_property
    def path_params(self) -> frozenset[str]:
        """Parameters that name accounts: their values must be safe path segments."""
        return frozenset(p for line in self.lines or () for p in line.path.params)


@dataclass
class Schema:
    key: str
    name: str | None
    default_currency: str
    default_currency_mode: str
    accounts: dict[str, Account]
    roots: tuple[str, ...]
    entry_types: dict[str, EntryType]
    document: dict


# ---------------------------------------------------------------------------- parsing

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
    accounts: dict[str, Account] = {}

    def visit(key: Any, spec: Any, where: str, parent: Account | None, depth: int,
              nested: bool, siblings: set[str]) -> str | None:
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
        path = key if parent is None else f"{parent.path}/{key}"
        if depth > MAX_DEPTH:
            issues.add(where, f"account {path!r} is deeper than {MAX_DEPTH} levels")
            return None
        atype = spec.get("type")
        if atype is not None and atype not in ACCOUNT_TYPES:
            issues.add(f"{where}.type", f"must be one of {', '.join(ACCOUNT_TYPES)}, got {atype!r}")
            atype = None
        if parent is not None:
            if atype is not None and atype != parent.type:
                issues.add(f"{where}.type", f"{atype!r} differs from its parent's type {parent.type!r}")
            atype = parent.type
        elif atype is None:
            atype = TYPE_BY_ROOT_KEY.get(key.lower())
            if atype is None:
                issues.add(f"{where}.type", f"top-level account {key!r} needs a type ({', '.join(ACCOUNT_TYPES)})")
                atype = "asset"
        template = spec.get("template", False)
        if not isinstance(template, (bool, str)):
            issues.add(f"{where}.template", "must be true/false or a name")
        template = bool(template)
        mode = spec.get("currencyMode")
        if mode is not None and mode not in ("single", "multi"):
            issues.add(f"{where}.currencyMode", f"must be \"single\" or \"multi\", got {mode!r}")
            mode = None
        currency = _currency_code(spec.get("currency"), f"{where}.currency", issues)
        if mode is None:
            mode = parent.currency_mode if parent else default_mode
            if currency is not None:
                mode = "single"
        if mode == "multi" and currency is not None:
            issues.add(f"{where}.currency", "a multi-currency account cannot also fix one currency")
        if currency is None and mode == "single":
            currency = parent.currency if parent and parent.currency else default_currency
        if mode == "multi":
            currency = None
        cons = _parse_consistency(spec.get("consistencyConfig"), f"{where}.consistencyConfig", issues)
        own_c = cons.get("ownBalanceUpdates", parent.own_consistency if parent else "strong")
        total_c = cons.get("totalBalanceUpdates", parent.total_consistency if parent else own_c)
        linked = spec.get("linkedAccount")
        if linked is not None and not (
                isinstance(linked, str) and linked
                or isinstance(linked, dict) and isinstance(linked.get("linkId"), str)
                and isinstance(linked.get("externalId"), str)):
            issues.add(f"{where}.linkedAccount",
                       "must be a link name (\"stripe\") or {\"linkId\": ..., \"externalId\": ...}")
            linked = None
        name = spec.get("name")
        if nested:
            kids = [(k, v, f"{where}.{k}") for k, v in spec.items()
                    if k not in NESTED_ATTRS and isinstance(v, dict)]
            for k, v in spec.items():
                if k not in NESTED_ATTRS and not isinstance(v, dict):
                    issues.add(f"{where}.{k}", "unknown account attribute (a child account must be an object)")
        else:
            children = spec.get("children", [])
            if not isinstance(children, list):
                issues.add(f"{where}.children", "must be a list of accounts")
                children = []
            kids = [(None, v, f"{where}.children[{i}]") for i, v in enumerate(children)]
        provisional = Account(key, path, atype, template, name if isinstance(name, str) else None,
                              currency, mode, own_c, total_c, linked, (), depth)
        child_keys: list[str] = []
        seen: set[str] = set()
        accounts[path] = provisional
        for ck, cv, cwhere in kids:
            cpath = visit(ck, cv, cwhere, provisional, depth + 1, nested, seen)
            if cpath:
                child_keys.append(cpath.rsplit("/", 1)[-1])
        account = Account(key, path, atype, template, provisional.name, currency, mode, own_c,
                          total_c, linked, tuple(child_keys), depth)
        if linked is not None and child_keys:
            issues.add(f"{where}.linkedAccount", "a linked account cannot have children")
        accounts[path] = account
        return path

    roots: list[str] = []
    seen_roots: set[str] = set()
    if "accounts" in chart:
        items = chart["accounts"]
        if not isinstance(items, list):
            issues.add("chartOfAccounts.accounts", "must be a list of accounts")
            items = []
        for i, spec in enumerate(items):
            p = visit(None, spec, f"chartOfAccounts.accounts[{i}]", None, 1, False, seen_roots)
            if p:
                roots.append(p)
    else:
        for k, v in chart.items():
            if k in ("defaultCurrency", "defaultCurrencyMode"):
                continue
            if not isinstance(v, dict):
                issues.add(f"chartOfAccounts.{k}", "an account must be an object")
                continue
            p = visit(k, v, f"chartOfAccounts.{k}", None, 1, True, seen_roots)
            if p:
                roots.append(p)
    return accounts, tuple(roots)


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


def _parse_entry_type(spec: Any, where: str, schema_accounts: dict[str, Account],
                      issues: _Collector) -> EntryType | None:
    if not isinstance(spec, dict):
        issues.add(where, "an entry type must be an object")
        return None
    etype = spec.get("type")
    if not isinstance(etype, str) or not etype:
        issues.add(f"{where}.type", "an entry type needs a non-empty \"type\"")
        return None
    start = len(issues.issues)
    description = _text(spec.get("description"), f"{where}.description", issues)
    lines: list[LineType] | None = None
    if "lines" in spec and spec["lines"] is not None:
        raw_lines = spec["lines"]
        if not isinstance(raw_lines, list) or not raw_lines:
            issues.add(f"{where}.lines", "must be a non-empty list (omit it for a runtime entry type)")
            raw_lines = []
        lines = []
        keys: set[str] = set()
        for i, ls in enumerate(raw_lines):
            lw = f"{where}.lines[{i}]"
            if not isinstance(ls, dict):
                issues.add(lw, "a line must be an object")
                continue
            key = ls.get("key")
            if not isinstance(key, str) or not key:
                issues.add(f"{lw}.key", "a line needs a key")
                continue
            if key in keys:
                issues.add(f"{lw}.key", f"duplicate line key {key!r}")
                continue
            keys.add(key)
            account = ls.get("account")
            path = _parse_path(account.get("path") if isinstance(account, dict) else None,
                               f"{lw}.account.path", schema_accounts, issues)
            amount = None
            if ls.get("amount") is not None:
                try:
                    amount = parse_expr(ls["amount"])
                except ValueError as exc:
                    issues.add(f"{lw}.amount", str(exc))
                    continue
                if abs(amount.const) > MAX_AMOUNT:
                    issues.add(f"{lw}.amount", "constant beyond ±(2^120-1)")
            currency = None
            if ls.get("currency") is not None:
                c = ls["currency"]
                code = c.get("code") if isinstance(c, dict) else c
                if not isinstance(code, str) or not code:
                    issues.add(f"{lw}.currency", "a currency is {\"code\": \"USD\"}")
                else:
                    currency = Text.parse(code)
                    if currency.is_literal and not CURRENCY_CODE.match(code):
                        issues.add(f"{lw}.currency", f"invalid currency code {code!r}")
            tx = None
            if ls.get("tx") is not None:
                t = ls["tx"]
                ext = t.get("externalId") if isinstance(t, dict) else None
                if not isinstance(ext, str) or not ext:
                    issues.add(f"{lw}.tx", "tx must be {\"externalId\": \"{{tx_id}}\"}")
                else:
                    tx = Text.parse(ext)
            if path is None:
                continue
            acc = schema_accounts[path.account]
            # A native link (the short form, "linkedAccount": "stripe") reconciles the tx
            # the call names, as in seed 000; a custom link's line must say which tx.
            if acc.linked is not None and tx is None and not isinstance(acc.linked, str):
                issues.add(f"{lw}.tx", f"account {path.source()!r} is linked: its line must name the external tx (\"tx\": {{\"externalId\": \"{{{{tx_id}}}}\"}})")
            if acc.linked is None and tx is not None:
                issues.add(f"{lw}.tx", f"account {path.source()!r} is not linked, so the line cannot name a tx")
            if currency is not None and currency.is_literal and acc.currency_mode == "single" \
                    and currency.parts[0] != acc.currency:
                issues.add(f"{lw}.currency", f"account {path.source()!r} holds only {acc.currency}, not {currency.parts[0]}")
            if currency is None and acc.currency_mode == "multi":
                issues.add(f"{lw}.currency", f"account {path.source()!r} is multi-currency: the line must give a currency")
            lines.append(LineType(key, path, amount, currency, tx,
                                  _text(ls.get("description"), f"{lw}.description", issues)))
    conditions: list[ConditionType] = []
    raw_conditions = spec.get("conditions") or []
    if not isinstance(raw_conditions, list):
        issues.add(f"{where}.conditions", "must be a list")
        raw_conditions = []
    if raw_conditions and lines is None:
        issues.add(f"{where}.conditions", "a runtime entry type cannot have conditions")
        raw_conditions = []
    for i, cs in enumerate(raw_conditions):
        cw = f"{where}.conditions[{i}]"
        if not isinstance(cs, dict):
            issues.add(cw, "a condition must be an object")
            continue
        account = cs.get("account")
        path = _parse_path(account.get("path") if isinstance(account, dict) else None,
                           f"{cw}.account.path", schema_accounts, issues)
        if path is None:
            continue
        currency = None
        if cs.get("currency") is not None:
            c = cs["currency"]
            code = c.get("code") if isinstance(c, dict) else c
            currency = Text.parse(code) if isinstance(code, str) and code else None
            if currency is None:
                issues.add(f"{cw}.currency", "a currency is {\"code\": \"USD\"}")
        if lines is not None and not any(l.path.source() == path.source() for l in lines):
            issues.add(f"{cw}.account.path", f"no line of this entry type posts to {path.source()!r}; a condition must guard an account the entry changes")
        acc = schema_accounts[path.account]
        found = False
        for when, wkey in (("pre", "precondition"), ("post", "postcondition")):
            body = cs.get(wkey)
            if body is None:
                continue
            found = True
            if not isinstance(body, dict) or not body:
                issues.add(f"{cw}.{wkey}", "must be {\"ownBalance\" | \"totalBalance\": {\"gte\" | \"lte\" | \"eq\": value}}")
                continue
            for bkey, ops in body.items():
                if bkey not in BALANCE_KINDS:
                    issues.add(f"{cw}.{wkey}.{bkey}", "must be ownBalance or totalBalance")
                    continue
                balance = BALANCE_KINDS[bkey]
                consistency = acc.own_consistency if balance == "own" else acc.total_consistency
                if consistency != "strong" or (balance == "total" and any(
                        d.own_consistency != "strong" for d in _descendants(schema_accounts, acc.path))):
                    issues.add(f"{cw}.account.path", f"account {path.source()!r} is eventually consistent; a condition needs strongly consistent {bkey} (consistencyConfig)")
                if not isinstance(ops, dict) or not ops:
                    issues.add(f"{cw}.{wkey}.{bkey}", "must be {\"gte\" | \"lte\" | \"eq\": value}")
                    continue
                for op, val in ops.items():
                    if op not in OPERATORS:
                        issues.add(f"{cw}.{wkey}.{bkey}.{op}", f"unknown operator (use {', '.join(OPERATORS)})")
                        continue
                    try:
                        expr = parse_expr(val)
                    except ValueError as exc:
                        issues.add(f"{cw}.{wkey}.{bkey}.{op}", str(exc))
                        continue
                    conditions.append(ConditionType(path, when, balance, op, expr, currency))
        if not found:
            issues.add(cw, "a condition needs a precondition or a postcondition")
    groups = _key_values(spec.get("groups"), f"{where}.groups", issues)
    tags = _key_values(spec.get("tags"), f"{where}.tags", issues)
    if len(issues.issues) > start:
        return None

    amount_params = set()
    params = set()
    for line in lines or ():
        params.update(line.path.params)
        if line.amount:
            amount_params.update(line.amount.params)
        if line.currency:
            params.update(line.currency.params)
        if line.tx:
            params.update(line.tx.params)
    for cond in conditions:
        params.update(cond.path.params)
        amount_params.update(cond.value.params)
        if cond.currency:
            params.update(cond.currency.params)
    for _, t in groups:
        params.update(t.params)
    clash = amount_params & params
    if clash:
        issues.add(where, f"parameter(s) {', '.join(sorted(clash))} used both as an amount and as a name")
    params |= amount_params
    if lines is not None:
        for p in description.params if description else ():
            if p not in params:
                issues.add(f"{where}.description", f"unknown parameter {{{{{p}}}}}: no line, condition or group of this entry type uses it")
        for k, t in tags:
            for p in t.params:
                if p not in params:
                    issues.add(f"{where}.tags", f"tag {k!r} uses unknown parameter {{{{{p}}}}}")
        for i, line in enumerate(lines):
            if line.description:
                for p in line.description.params:
                    if p not in params:
                        issues.add(f"{where}.lines[{i}].description", f"unknown parameter {{{{{p}}}}}")
        _check_balanced(etype, lines, schema_accounts, where, issues)
    else:
        # Runtime entry types take their parameters at posting time, so any name is known.
        for _, t in tags:
            params.update(t.params)
        if description:
            params.update(description.params)
    return EntryType(etype, description, tuple(lines) if lines is not None else None,
                     tuple(conditions), groups, tags, frozenset(amount_params), frozenset(params))


def _descendants(accounts: dict[str, Account], path: str) -> list[Account]:
    prefix = path + "/"
    return [a for p, a in accounts.items() if p.startswith(prefix)]


def _check_balanced(etype: str, lines: list[LineType], accounts: dict[str, Account],
                    where: str, issues: _Collector) -> None:
    """assets - liabilities - income + expense == 0 identically, per currency expression."""
    by_currency: dict[str, list[LineType]] = {}
    for line in lines:
        acc = accounts[line.path.account]
        cur = line.currency.source() if line.currency else acc.currency
        by_currency.setdefault(cur, []).append(line)
    for cur, group in by_currency.items():
        # A linked line without an amount takes its tx's amount, known only when posting;
        # the entry is then checked numerically (check_balanced) instead of here.
        from_tx = [l for l in group if l.amount is None
                   and (l.tx is not None or accounts[l.path.account].linked is not None)]
        open_lines = [l for l in group if l.amount is None and l not in from_tx]
        if len(open_lines) > 1:
            issues.add(f"{where}.lines", f"{len(open_lines)} lines in {cur} have no amount; at most one per currency can be inferred")
            continue
        if open_lines or from_tx:
            continue  # the one open line takes whatever balances the others
        total: dict[str, int] = {}
        for line in group:
            sign = EQUATION_SIGN[accounts[line.path.account].type]
            if line.amount is None:  # amount comes from the tx at reconciliation
                term = {f"tx:{line.tx.source()}": sign}
            else:
                term = line.amount.scaled(sign)
            for k, v in term.items():
                total[k] = total.get(k, 0) + v
        rest = {k: v for k, v in total.items() if v}
        if rest:
            shown = " + ".join(f"{v}*{{{{{k}}}}}" if k else str(v) for k, v in rest.items())
            issues.add(f"{where}.lines", f"entry type {etype!r} does not balance in {cur}: assets - liabilities - income + expense = {shown}, not 0")


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


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# ---------------------------------------------------------------------------- compiling

@dataclass
class CompiledLine:
    key: str
    path: str  # concrete account path
    account: Account
    amount: int
    currency: str
    tx: str | None
    description: str | None


@dataclass
class CompiledCondition:
    path: str
    account: Account
    when: str
    balance: str
    op: str
    value: int
    currency: str | None


@dataclass
class CompiledEntry:
    request: EntryRequest
    type: str
    description: str | None
    lines: list[CompiledLine]
    conditions: list[CompiledCondition]
    tags: dict[str, str]
    groups: dict[str, str]
    fingerprint: str = ""


def resolve_path(schema: Schema, path: str, field: str) -> Account:
    """The chart account a concrete path (``liabilities/users:alice/available``) names."""
    if not isinstance(path, str) or not path:
        raise BadRequestError("invalid_input", f"{field}: an account path is required", field=field)
    if _too_long(path):
        raise _path_too_long(field)
    chart_path = None
    for raw in path.split("/"):
        key, sep, value = raw.partition(":")
        chart_path = key if chart_path is None else f"{chart_path}/{key}"
        account = schema.accounts.get(chart_path)
        if account is None:
            raise BadRequestError("account_not_found", f"{field}: no account {chart_path!r} in the schema", field=field)
        if account.template != bool(sep):
            hint = "name an instance like key:id" if account.template else "it is not a template"
            raise BadRequestError("invalid_input", f"{field}: {raw!r} does not fit account {chart_path!r} ({hint})", field=field)
        if sep and not _SAFE_VALUE.match(value):
            raise BadRequestError("invalid_input", f"{field}: instance value {value!r} must be non-empty, without / : * spaces or braces", field=field)
    return account


def _too_long(path: str) -> bool:
    return (len(path) > MAX_PATH_BYTES // 4
            and len(path.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES)


def _path_too_long(field: str) -> BadRequestError:
    return BadRequestError("invalid_input", f"{field}: makes an account path longer than "
                           f"{MAX_PATH_BYTES} bytes (UTF-8)", field=field)


def check_condition(balance: int, op: str, value: int) -> bool:
    if op == "gte":
        return balance >= value
    if op == "lte":
        return balance <= value
    return balance == value



def compile_entry(schema: Schema, request: EntryRequest,
                  txs: dict[str, tuple[str, int]] | None = None) -> CompiledEntry:
    """Turn an entry request into concrete lines and conditions; refuse it if it cannot post.

    ``txs`` (line key -> (tx external id, tx amount)) is given by reconciliation only, which
    has resolved and locked the txs: lines on linked accounts are then allowed and carry the
    tx's amount. Without it, a line on a linked account is refused."""
    et = schema.entry_types.get(request.type)
    if et is None:
        raise BadRequestError("entry_type_not_found", f"entry.type: no entry type {request.type!r} in schema {schema.key!r}", field="entry.type")
    given = request.parameters
    if et.lines is None:
        return _compile_runtime(schema, et, request, txs)
    if request.lines is not None:
        raise BadRequestError("invalid_input", f"entry.lines: entry type {et.type!r} defines its lines; send parameters only", field="entry.lines")
    missing = sorted(p for p in et.params if p not in given)
    if missing:
        raise BadRequestError("missing_parameter", f"entry.parameters.{missing[0]}: entry type {et.type!r} needs parameter(s) {', '.join(missing)}", field=f"entry.parameters.{missing[0]}")
    numbers = {p: parse_amount(given[p], f"entry.parameters.{p}") for p in et.amount_params}
    names: dict[str, str] = {}
    for p, v in given.items():
        if p in et.amount_params:
            continue
        s = str(v)
        names[p] = s
    for p in et.path_params:
        if not _SAFE_VALUE.match(names[p]):
            raise BadRequestError("invalid_parameter", f"entry.parameters.{p}: {names[p]!r} names an account, so it must be non-empty, without / : * spaces or braces", field=f"entry.parameters.{p}")
    text_values = {**names, **{p: str(v) for p, v in numbers.items()}}
    lines: list[CompiledLine] = []
    open_line = {}
    for lt in et.lines:
        path = lt.path.render(names)
        if _too_long(path):
            longest = max(lt.path.params, key=lambda p: len(names[p]), default=None)
            raise _path_too_long(f"entry.parameters.{longest}" if longest
                                 else f"entry.lines.{lt.key}.account.path")
        acc = schema.accounts[lt.path.account]
        tx = None
        if acc.linked is not None:
            if txs is None or lt.key not in txs:
                raise BadRequestError("linked_account", f"entry.type: {et.type!r} posts to linked account {path!r}; use reconcileTx for it", field="entry.type")
            tx = txs[lt.key]
        currency = lt.currency.render(text_values) if lt.currency else acc.currency
        if acc.currency_mode == "single" and currency != acc.currency:
            raise BadRequestError("invalid_input", f"entry.lines.{lt.key}.currency: account {path!r} holds only {acc.currency}", field=f"entry.lines.{lt.key}.currency")
        amount = lt.amount.evaluate(numbers) if lt.amount is not None else None
        if amount is not None and abs(amount) > MAX_AMOUNT:
            raise BadRequestError("invalid_amount", f"entry.lines.{lt.key}.amount: {amount} is beyond ±(2^120-1)", field=f"entry.lines.{lt.key}.amount")
        if tx is not None:
            amount = _tx_amount(f"entry.lines.{lt.key}.amount", amount, tx)
        cl = CompiledLine(lt.key, path, acc, amount, currency, tx[0] if tx else None,
                          lt.description.render(text_values) if lt.description else None)
        if amount is None:
            open_line[currency] = cl
        lines.append(cl)
    for currency, cl in open_line.items():
        cl.amount = -EQUATION_SIGN[cl.account.type] * sum(
            EQUATION_SIGN[l.account.type] * l.amount for l in lines
            if l is not cl and l.currency == currency)
        if abs(cl.amount) > MAX_AMOUNT:
            raise BadRequestError("invalid_amount", f"entry.lines.{cl.key}.amount: {cl.amount} is beyond ±(2^120-1)", field=f"entry.lines.{cl.key}.amount")
    conditions = [
        CompiledCondition(c.path.render(names), schema.accounts[c.path.account], c.when, c.balance,
                          c.op, c.value.evaluate(numbers),
                          c.currency.render(text_values) if c.currency else None)
        for c in et.conditions]
    groups = {k: t.render(text_values) for k, t in et.groups}
    groups.update(request.groups)
    tags = {k: t.render(text_values) for k, t in et.tags}
    tags.update(request.tags)
    entry = CompiledEntry(request, et.type,
                          et.description.render(text_values) if et.description else None,
                          lines, conditions, tags, groups)
    check_balanced(entry)
    return entry


def _tx_amount(field: str, amount: int | None, tx: tuple[str, int]) -> int:
    """A line mirrors its tx: the amount is the tx's, and a different one is refused."""
    if amount is not None and amount != tx[1]:
        raise BadRequestError("tx_amount_mismatch", f"{field}: the line's amount {amount} differs from the amount {tx[1]} of tx {tx[0]!r}; a reconciled line takes the tx's amount", field=field)
    return tx[1]


def _compile_runtime(schema: Schema, et: EntryType, request: EntryRequest,
                     txs: dict[str, tuple[str, int]] | None = None) -> CompiledEntry:
    if not request.lines:
        raise BadRequestError("invalid_input", f"entry.lines: {et.type!r} is a runtime entry type; give its lines", field="entry.lines")
    lines = []
    for i, line in enumerate(request.lines):
        f = f"entry.lines[{i}]"
        path = line.account_path
        acc = resolve_path(schema, path, f"{f}.account.path")
        tx = None
        if acc.linked is not None:
            if txs is None or line.key not in txs:
                raise BadRequestError("linked_account", f"{f}.account.path: {path!r} is linked; use reconcileTx for it", field=f"{f}.account.path")
            tx = txs[line.key]
        if tx is not None:
            amount = _tx_amount(f"{f}.amount", line.amount, tx)
        else:
            # None is refused with the message every missing amount gets.
            amount = line.amount if line.amount is not None else parse_amount(None, f"{f}.amount")
        code = line.currency
        if code is None:
            if acc.currency_mode == "multi":
                raise BadRequestError("invalid_input", f"{f}.currency: account {path!r} is multi-currency; give the line's currency", field=f"{f}.currency")
            code = acc.currency
        elif acc.currency_mode == "single" and code != acc.currency:
            raise BadRequestError("invalid_input", f"{f}.currency: account {path!r} holds only {acc.currency}", field=f"{f}.currency")
        lines.append(CompiledLine(line.key, path, acc, amount, code, tx[0] if tx else None, line.description))
    values = {k: str(v) for k, v in request.parameters.items()}
    try:
        description = et.description.render(values) if et.description else None
        tags = {k: t.render(values) for k, t in et.tags}
    except KeyError as exc:
        raise BadRequestError("missing_parameter", f"entry.parameters.{exc.args[0]}: the description or tags need it", field=f"entry.parameters.{exc.args[0]}") from None
    tags.update(request.tags)
    entry = CompiledEntry(request, et.type, description, lines, [], tags, dict(request.groups))
    check_balanced(entry)
    return entry


def check_balanced(entry: CompiledEntry) -> None:
    totals: dict[str, int] = {}
    for line in entry.lines:
        totals[line.currency] = totals.get(line.currency, 0) + EQUATION_SIGN[line.account.type] * line.amount
    off = {c: v for c, v in totals.items() if v}
    if off:
        detail = ", ".join(f"{c}: {v:+d}" for c, v in off.items())
        raise BadRequestError("unbalanced_entry", f"entry.lines: the entry does not balance (assets - liabilities - income + expense = {detail})", field="entry.lines")


def partition_key(schema: Schema, request: EntryRequest) -> str:
    """Which serial lane an async job takes: the account its conditions guard, else its first
    strongly consistent account, else its ik. Jobs that touch the same guarded balance then
    post in submission order."""
    try:
        entry = compile_entry(schema, request)
    except BadRequestError:
        return request.ik
    if entry.conditions:
        return entry.conditions[0].path
    for line in entry.lines:
        if line.account.own_consistency == "strong":
            return line.path
    return request.ik

"""The parsed schema: accounts, path templates, amount expressions and entry types; and
reading a concrete account path against it.
"""
from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

from ledger.errors import BadRequestError, NotFoundError

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


_PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


SAFE_VALUE = re.compile(r"[^/:*\s{}]+")


# Characters that make one account look like another: "alice\n", "ali\u200bce" (zero-width
# space), "alice\u00a0" would each name a second alice that no one can tell from the first.
LOOKALIKE_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})


def is_safe_value(value: str) -> bool:
    """Whether ``value`` may be an instance value of an account path (``users:alice``):
    non-empty, none of / : * { } or white space, and no character of Unicode categories
    Cc, Cf, Zs, Zl or Zp anywhere. ``fullmatch``: ``$`` would match before a final
    newline."""
    if not isinstance(value, str) or SAFE_VALUE.fullmatch(value) is None:
        return False
    if value.isascii():
        return value.isprintable()  # ASCII's only such characters are its controls
    return not any(unicodedata.category(c) in LOOKALIKE_CATEGORIES for c in value)


SAFE_VALUE_RULE = ("non-empty, without / : * { }, white space, or control, format or "
                   "separator characters (Unicode Cc, Cf, Zs, Zl, Zp)")


# An account path is a btree key (unique per ledger), and PostgreSQL refuses keys over
# about 2,700 bytes: the bound keeps well under that. Checked when a path is made from a
# request, since a refused insert in a worker would fail its whole batch on every retry.
MAX_PATH_BYTES = 1024


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
class ParameterRule:
    """What an entry type declares it accepts of one parameter (``"parameters": {"amount":
    {"min": "1", "max": "100000"}, "delta": {"signed": true}}``). ``signed`` None: the
    default, non-negative for a parameter that feeds a line amount, signed otherwise."""

    min: int | None = None
    max: int | None = None
    signed: bool | None = None


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
    # The type's "parameters" declarations, by name: these are accepted even if unused.
    declared: tuple[tuple[str, ParameterRule], ...] = ()
    # Parameters some line amount uses (the rest of amount_params feed only conditions).
    line_amount_params: frozenset[str] = frozenset()
    # Parameters that name the external account of a template linked account its lines
    # touch ({{BANK_LINK_ID}}): only reconciliation reads them, but they are used.
    link_params: frozenset[str] = frozenset()

    @cached_property
    def rules(self) -> dict[str, ParameterRule]:
        return dict(self.declared)

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


def resolve_path(schema: Schema, path: str, field: str) -> Account:
    """The chart account a concrete path (``liabilities/users:alice/available``) names."""
    if not isinstance(path, str) or not path:
        raise BadRequestError("invalid_input", f"{field}: an account path is required", field=field)
    if path_is_too_long(path):
        raise path_too_long_error(field)
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
        if sep and not is_safe_value(value):
            raise BadRequestError("invalid_input", f"{field}: instance value {value!r} must be {SAFE_VALUE_RULE}", field=field)
    return account


def resolve_queried_path(schema: Schema, path: str, field: str) -> Account:
    """``resolve_path`` for a read: a path the chart has no account for asks for something
    missing, so it is NotFoundError (same code) as the seeds' docs describe; a malformed
    path stays BadRequestError. A write keeps BadRequestError for both: its input is bad."""
    try:
        return resolve_path(schema, path, field)
    except BadRequestError as exc:
        if exc.code != "account_not_found":
            raise
        raise NotFoundError(exc.code, exc.message, field=exc.field) from None


def path_is_too_long(path: str) -> bool:
    return (len(path) > MAX_PATH_BYTES // 4
            and len(path.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES)


def path_too_long_error(field: str) -> BadRequestError:
    return BadRequestError("invalid_input", f"{field}: makes an account path longer than "
                           f"{MAX_PATH_BYTES} bytes (UTF-8)", field=field)


def check_condition(balance: int, op: str, value: int) -> bool:
    if op == "gte":
        return balance >= value
    if op == "lte":
        return balance <= value
    return balance == value


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass
class SchemaVersion:
    key: str
    name: str | None
    version: int
    created: datetime
    json: dict


@dataclass
class SchemaIssue:
    path: str
    message: str

"""Balance monitors: what one watches, how its input is checked, and which accounts it
matches."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ledger.amounts import CURRENCY_CODE, parse_amount
from ledger.errors import BadRequestError, LedgerError
from ledger.history.balances import resolve_read_path
from ledger.schema.model import Schema, path_is_too_long, path_too_long_error
from ledger.text import check_storable

# A scope (own, child = the descendants' sum, total = own + child) and what it counts, named
# as the GraphQL balance fields are (``ownPendingBalance`` is the kind ``ownPending``):
# posted; Pending, posted plus every pending hold line; Available, posted plus the pending
# decreases only (ledger/holds/balances.py).
SCOPES = ("own", "child", "total")
_COUNTS = {"": (0, 0), "Pending": (1, 1), "Available": (1, 0)}
KINDS = tuple(scope + suffix for suffix in _COUNTS for scope in SCOPES)
OPS = ("lt", "lte", "gt", "gte", "eq")
MAX_DESCRIPTION = 1000
# The engine matches every moved account against each of a ledger's monitors per batch:
# a bound keeps that cost (and the list query) bounded.
MAX_PER_LEDGER = 1000


@dataclass(frozen=True)
class Condition:
    op: str
    amount: int
    currency: str | None  # None: every currency of the account, each on its own

    def holds(self, balance: int) -> bool:
        if self.op == "lt":
            return balance < self.amount
        if self.op == "lte":
            return balance <= self.amount
        if self.op == "gt":
            return balance > self.amount
        if self.op == "gte":
            return balance >= self.amount
        return balance == self.amount


@dataclass(frozen=True)
class BalanceMonitor:
    id: str
    ledger_ik: str
    account: str  # an account path, a template node, or a pattern (``users:*``)
    balance: str  # one of KINDS
    condition: Condition
    description: str | None
    created: datetime
    updated: datetime


def kind_parts(kind: str) -> tuple[str, int, int]:
    """A kind's scope and whether its value counts ``held`` (the pending decreases) and
    ``pending_in`` (the pending increases) of the balance rows, each 0 or 1."""
    scope = next(s for s in SCOPES if kind.startswith(s))
    return (scope, *_COUNTS[kind[len(scope):]])


def _bad(field: str, message: str) -> BadRequestError:
    return BadRequestError("invalid_input", f"{field}: {message}", field=field)


def check_kind(balance: Any) -> str:
    if balance not in KINDS:
        raise _bad("balance", f"expected one of {', '.join(KINDS)}, got {balance!r}")
    return balance


def check_condition(condition: Any) -> Condition:
    """``{"lt"|"lte"|"gt"|"gte"|"eq": amount, "currency": code?}``: exactly one operator."""
    if not isinstance(condition, dict):
        raise _bad("condition", "expected an object like {\"lt\": \"1000\", \"currency\": \"USD\"}")
    unknown = sorted(set(condition) - set(OPS) - {"currency"})
    if unknown:
        raise _bad(f"condition.{unknown[0]}", f"unknown key; expected one of "
                   f"{', '.join(OPS)} and currency")
    given = [op for op in OPS if condition.get(op) is not None]
    if len(given) != 1:
        raise _bad("condition", f"give exactly one of {', '.join(OPS)} "
                   f"({'none' if not given else ', '.join(given)} given)")
    op = given[0]
    amount = parse_amount(condition[op], f"condition.{op}")
    currency = condition.get("currency")
    if currency is not None and (not isinstance(currency, str)
                                 or not CURRENCY_CODE.match(currency)):
        raise _bad("condition.currency", f"expected a currency code like USD, got {currency!r}")
    return Condition(op, amount, currency)


def check_description(description: Any) -> str | None:
    if description is None:
        return None
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
        raise _bad("description", f"expected a string of at most {MAX_DESCRIPTION} characters")
    check_storable(description, "description")
    return description


def check_account(schema: Schema, account: Any, balance: str) -> str:
    """An account path the chart allows (a template node too, for child and total), or a
    pattern as the entry and line filters take them: ``*`` for one instance value or key
    (``liabilities/users:*/available``), a final ``/*`` for every descendant."""
    if not isinstance(account, str) or not account.strip():
        raise _bad("account", "expected an account path or pattern")
    check_storable(account, "account")
    if path_is_too_long(account):
        raise path_too_long_error("account")
    if "*" in account:
        pattern_regex(account)
        return account
    try:
        _, template_node = resolve_read_path(schema, account)
    except LedgerError as exc:
        # Reads call a missing account not found; a monitor naming one is bad input.
        message = exc.message.removeprefix("path: ")
        raise BadRequestError(exc.code, f"account: {message}", field="account") from None
    if template_node and kind_parts(balance)[0] == "own":
        raise _bad("balance", f"{account!r} is a template node, which has no own balance; "
                   "watch a child or total balance, or a pattern like "
                   f"{account + ':*'!r}")
    return account


def pattern_regex(account: str) -> re.Pattern:
    head, descendants = (account[:-2], True) if account.endswith("/*") else (account, False)
    if not head or "//" in account or "**" in account:
        raise _bad("account", f"{account!r} is not a path pattern")
    return re.compile("^" + "[^/]+".join(re.escape(p) for p in head.split("*"))
                      + ("/.+" if descendants else "") + "$")


def watched_paths(path: str, balance: str) -> list[tuple[str, bool]]:
    """The paths whose ``balance`` a move of ``path``'s own balance changes, each with
    whether it is a template node (whose children are its instances, ``node:value``)."""
    if balance == "own":
        return [(path, False)]
    parts = path.split("/")
    out = [(path, False)] if balance == "total" else []
    for i in range(len(parts), 0, -1):
        key, sep, _ = parts[i - 1].partition(":")
        if i < len(parts):
            out.append(("/".join(parts[:i]), False))
        if sep:  # the template node above this instance
            out.append(("/".join(parts[:i - 1] + [key]), True))
    return out

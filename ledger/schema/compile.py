"""Compiling an entry request against its schema into concrete lines and conditions."""
from __future__ import annotations

from dataclasses import dataclass

from ledger.amounts import MAX_AMOUNT, parse_amount
from ledger.commands import EntryRequest
from ledger.errors import BadRequestError
from ledger.schema.model import (
    EQUATION_SIGN,
    SAFE_VALUE_RULE,
    Account,
    EntryType,
    Schema,
    is_safe_value,
    path_is_too_long,
    path_too_long_error,
    resolve_path,
)
from ledger.schema.parameters import check_values


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
    check_values(et, given, numbers, _pinned(et, schema, txs))
    names: dict[str, str] = {}
    for p, v in given.items():
        if p in et.amount_params:
            continue
        s = str(v)
        names[p] = s
    for p in et.path_params:
        if not is_safe_value(names[p]):
            raise BadRequestError("invalid_parameter", f"entry.parameters.{p}: {names[p][:60]!r} names an account, so it must be {SAFE_VALUE_RULE}", field=f"entry.parameters.{p}")
    text_values = {**names, **{p: str(v) for p, v in numbers.items()}}
    lines: list[CompiledLine] = []
    open_line = {}
    for lt in et.lines:
        path = lt.path.render(names)
        if path_is_too_long(path):
            longest = max(lt.path.params, key=lambda p: len(names[p]), default=None)
            raise path_too_long_error(f"entry.parameters.{longest}" if longest
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


def _pinned(et: EntryType, schema: Schema, txs) -> frozenset[str]:
    """Parameters of the amounts of lines that reconcile a tx: the tx fixes their value, and
    a line must equal its tx's amount whatever its sign (a payout is negative)."""
    if txs is None:
        return frozenset()
    return frozenset(p for lt in et.lines if lt.amount is not None and lt.key in txs
                     and schema.accounts[lt.path.account].linked is not None
                     for p in lt.amount.params)


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
    check_values(et, request.parameters, {})
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

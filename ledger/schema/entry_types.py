"""Parsing and checking the entry types of a schema document."""
from __future__ import annotations

from typing import Any

from ledger.amounts import CURRENCY_CODE, MAX_AMOUNT
from ledger.schema.accounts import _Collector, _key_values, _parse_path, _text
from ledger.schema.model import (
    BALANCE_KINDS,
    EQUATION_SIGN,
    OPERATORS,
    Account,
    ConditionType,
    EntryType,
    LineType,
    PathTemplate,
    Text,
    parse_expr,
)
from ledger.schema.parameters import check_declarations, parse_declarations


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
    lines = _parse_lines(spec, where, schema_accounts, issues)
    conditions = _parse_conditions(spec, where, lines, schema_accounts, issues)
    groups = _key_values(spec.get("groups"), f"{where}.groups", issues)
    tags = _key_values(spec.get("tags"), f"{where}.tags", issues)
    declared = parse_declarations(spec.get("parameters"), f"{where}.parameters", issues)
    if len(issues.issues) > start:
        return None
    amount_params, params = _parameters(lines, conditions, groups, where, issues)
    # A parameter only the text uses (the description, a tag, a line's description) is
    # still required when posting: a reconciled line takes its amount from the tx, so
    # seed 002's "Funding {{user_id}} for {{funding_amount}}" names a value no line needs.
    _text_parameters(params, description, tags, lines)
    if lines is not None:
        _check_balanced(etype, lines, schema_accounts, where, issues)
    line_amount_params = {p for line in lines or () if line.amount for p in line.amount.params}
    check_declarations(declared, amount_params, line_amount_params, params,
                       f"{where}.parameters", issues)
    return EntryType(etype, description, tuple(lines) if lines is not None else None,
                     tuple(conditions), groups, tags, frozenset(amount_params), frozenset(params),
                     declared, frozenset(line_amount_params),
                     _link_parameters(lines, schema_accounts))


def _parse_lines(spec: dict, where: str, schema_accounts: dict[str, Account],
                 issues: _Collector) -> list[LineType] | None:
    """The lines of an entry type; None for a runtime entry type (no ``lines``)."""
    if "lines" not in spec or spec["lines"] is None:
        return None
    raw_lines = spec["lines"]
    if not isinstance(raw_lines, list) or not raw_lines:
        issues.add(f"{where}.lines", "must be a non-empty list (omit it for a runtime entry type)")
        raw_lines = []
    lines: list[LineType] = []
    keys: set[str] = set()
    for i, ls in enumerate(raw_lines):
        line = _parse_line(ls, f"{where}.lines[{i}]", keys, schema_accounts, issues)
        if line is not None:
            lines.append(line)
    return lines


def _parse_line(ls: Any, lw: str, keys: set[str], schema_accounts: dict[str, Account],
                issues: _Collector) -> LineType | None:
    if not isinstance(ls, dict):
        issues.add(lw, "a line must be an object")
        return None
    key = ls.get("key")
    if not isinstance(key, str) or not key:
        issues.add(f"{lw}.key", "a line needs a key")
        return None
    if key in keys:
        issues.add(f"{lw}.key", f"duplicate line key {key!r}")
        return None
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
            return None
        if abs(amount.const) > MAX_AMOUNT:
            issues.add(f"{lw}.amount", "constant beyond ±(2^120-1)")
    currency = _line_currency(ls, lw, issues)
    tx = None
    if ls.get("tx") is not None:
        t = ls["tx"]
        ext = t.get("externalId") if isinstance(t, dict) else None
        if not isinstance(ext, str) or not ext:
            issues.add(f"{lw}.tx", "tx must be {\"externalId\": \"{{tx_id}}\"}")
        else:
            tx = Text.parse(ext)
    if path is None:
        return None
    _check_line_account(schema_accounts[path.account], path, currency, tx, lw, issues)
    return LineType(key, path, amount, currency, tx,
                    _text(ls.get("description"), f"{lw}.description", issues))


def _line_currency(ls: dict, lw: str, issues: _Collector) -> Text | None:
    if ls.get("currency") is None:
        return None
    c = ls["currency"]
    code = c.get("code") if isinstance(c, dict) else c
    if not isinstance(code, str) or not code:
        issues.add(f"{lw}.currency", "a currency is {\"code\": \"USD\"}")
        return None
    currency = Text.parse(code)
    if currency.is_literal and not CURRENCY_CODE.match(code):
        issues.add(f"{lw}.currency", f"invalid currency code {code!r}")
    return currency


def _check_line_account(acc: Account, path: PathTemplate, currency: Text | None,
                        tx: Text | None, lw: str, issues: _Collector) -> None:
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


def _parse_conditions(spec: dict, where: str, lines: list[LineType] | None,
                      schema_accounts: dict[str, Account],
                      issues: _Collector) -> list[ConditionType]:
    conditions: list[ConditionType] = []
    raw_conditions = spec.get("conditions") or []
    if not isinstance(raw_conditions, list):
        issues.add(f"{where}.conditions", "must be a list")
        raw_conditions = []
    if raw_conditions and lines is None:
        issues.add(f"{where}.conditions", "a runtime entry type cannot have conditions")
        raw_conditions = []
    for i, cs in enumerate(raw_conditions):
        conditions += _parse_condition(cs, f"{where}.conditions[{i}]", lines, schema_accounts, issues)
    return conditions


def _parse_condition(cs: Any, cw: str, lines: list[LineType] | None,
                     schema_accounts: dict[str, Account],
                     issues: _Collector) -> list[ConditionType]:
    """The conditions one condition object states (a precondition, a postcondition, each
    with one or more balances and operators)."""
    if not isinstance(cs, dict):
        issues.add(cw, "a condition must be an object")
        return []
    account = cs.get("account")
    path = _parse_path(account.get("path") if isinstance(account, dict) else None,
                       f"{cw}.account.path", schema_accounts, issues)
    if path is None:
        return []
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
    out: list[ConditionType] = []
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
            out += _parse_balance_ops(bkey, ops, f"{cw}.{wkey}", cw, when, path, acc, currency,
                                      schema_accounts, issues)
    if not found:
        issues.add(cw, "a condition needs a precondition or a postcondition")
    return out


def _parse_balance_ops(bkey: str, ops: Any, ww: str, cw: str, when: str, path: PathTemplate,
                       acc: Account, currency: Text | None,
                       schema_accounts: dict[str, Account],
                       issues: _Collector) -> list[ConditionType]:
    """``{"ownBalance": {"gte": "0"}}``'s conditions: one per operator."""
    if bkey not in BALANCE_KINDS:
        issues.add(f"{ww}.{bkey}", "must be ownBalance or totalBalance")
        return []
    balance = BALANCE_KINDS[bkey]
    consistency = acc.own_consistency if balance == "own" else acc.total_consistency
    if consistency != "strong" or (balance == "total" and any(
            d.own_consistency != "strong" for d in _descendants(schema_accounts, acc.path))):
        issues.add(f"{cw}.account.path", f"account {path.source()!r} is eventually consistent; a condition needs strongly consistent {bkey} (consistencyConfig)")
    if not isinstance(ops, dict) or not ops:
        issues.add(f"{ww}.{bkey}", "must be {\"gte\" | \"lte\" | \"eq\": value}")
        return []
    out = []
    for op, val in ops.items():
        if op not in OPERATORS:
            issues.add(f"{ww}.{bkey}.{op}", f"unknown operator (use {', '.join(OPERATORS)})")
            continue
        try:
            expr = parse_expr(val)
        except ValueError as exc:
            issues.add(f"{ww}.{bkey}.{op}", str(exc))
            continue
        out.append(ConditionType(path, when, balance, op, expr, currency))
    return out


def _link_parameters(lines: list[LineType] | None,
                     schema_accounts: dict[str, Account]) -> frozenset[str]:
    out: set[str] = set()
    for line in lines or ():
        account = schema_accounts.get(line.path.account)
        linked = account.linked if account is not None else None
        if isinstance(linked, dict):
            for key in ("linkId", "externalId"):
                out.update(Text.parse(linked[key]).params)
    return frozenset(out)


def _parameters(lines: list[LineType] | None, conditions: list[ConditionType],
                groups: tuple[tuple[str, Text], ...], where: str,
                issues: _Collector) -> tuple[set[str], set[str]]:
    """(amount parameters, all parameters) the lines, conditions and groups use; a name
    used both as an amount and as a name is an issue."""
    amount_params: set[str] = set()
    params: set[str] = set()
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
    return amount_params, params | amount_params


def _text_parameters(params: set[str], description: Text | None,
                     tags: tuple[tuple[str, Text], ...], lines: list[LineType] | None) -> None:
    """Add to ``params`` the names the description, tags and line descriptions use: they
    are rendered as sent (an amount parameter they show is rendered in canonical form)."""
    texts = [description] + [t for _, t in tags] + [line.description for line in lines or ()]
    for text in texts:
        if text is not None:
            params.update(text.params)


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

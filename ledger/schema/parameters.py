"""The parameters an entry type accepts: its ``"parameters"`` declarations, checked when a
schema is stored, and the values of a request checked against them when it posts.

The rules (README, "Schemas and posting"):

- A parameter that feeds a line amount is non-negative unless declared ``"signed": true``.
  The rule is on the value the caller sends, not on the line: ``-{{amount}}`` or
  ``{{a}} - {{b}}`` may still give a negative line, as the schema means. Without it,
  ``transfer`` with ``amount = -100`` moves money from the recipient to the sender, and the
  sender's ``gte 0`` postcondition holds because the sender's balance rises.
- A parameter used only in condition values (``"gte": "{{limit}}"``) moves no money, so it
  stays signed unless declared ``"signed": false`` or given a ``min``.
- ``min`` and ``max`` (canonical amounts, inclusive) bound an amount parameter.
- A request may not send a parameter its entry type does not use (in a line, condition,
  group, tag or description), unless the type declares it: an undeclared one is a typo or
  a way to store arbitrary text with every posting job.
"""
from __future__ import annotations

from typing import Any

from ledger.amounts import parse_amount
from ledger.errors import BadRequestError, LedgerError
from ledger.schema.accounts import _Collector
from ledger.schema.model import _PARAM_NAME, ParameterRule

DECLARATION_KEYS = ("min", "max", "signed")


def parse_declarations(raw: Any, where: str,
                       issues: _Collector) -> tuple[tuple[str, ParameterRule], ...]:
    """An entry type's ``"parameters"``: ``{name: {"min"?, "max"?, "signed"?}}``."""
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        issues.add(where, "must be an object: {\"amount\": {\"min\": \"1\", \"max\": \"100000\"}, "
                          "\"delta\": {\"signed\": true}}")
        return ()
    out = []
    for name, spec in raw.items():
        pw = f"{where}.{name}"
        if not isinstance(name, str) or not _PARAM_NAME.fullmatch(name):
            issues.add(pw, "a parameter name is letters, digits, _ . or - (starting with a letter or _)")
            continue
        if not isinstance(spec, dict):
            issues.add(pw, "must be an object with min, max or signed (or {} to accept it unused)")
            continue
        rule = _parse_rule(spec, pw, issues)
        if rule is not None:
            out.append((name, rule))
    return tuple(out)


def _parse_rule(spec: dict, pw: str, issues: _Collector) -> ParameterRule | None:
    start = len(issues.issues)
    for key in spec:
        if key not in DECLARATION_KEYS:
            issues.add(f"{pw}.{key}", f"unknown key (use {', '.join(DECLARATION_KEYS)})")
    bounds = {}
    for key in ("min", "max"):
        if spec.get(key) is None:
            continue
        try:
            bounds[key] = parse_amount(spec[key], f"{pw}.{key}")
        except LedgerError as exc:
            issues.add(f"{pw}.{key}", exc.message.split(": ", 1)[-1])
    signed = spec.get("signed")
    if signed is not None and not isinstance(signed, bool):
        issues.add(f"{pw}.signed", "must be true or false")
    if "min" in bounds and "max" in bounds and bounds["min"] > bounds["max"]:
        issues.add(pw, f"min {bounds['min']} is above max {bounds['max']}")
    if len(issues.issues) > start:
        return None
    return ParameterRule(bounds.get("min"), bounds.get("max"), signed)


def check_declarations(declared: tuple[tuple[str, ParameterRule], ...],
                       amount_params: set[str], line_amount_params: set[str],
                       params: set[str], where: str, issues: _Collector) -> None:
    """A declaration that bounds or signs a parameter must name an amount parameter of the
    type; ``{}`` accepts a parameter the type does not use (or one it uses as a name)."""
    for name, rule in declared:
        pw = f"{where}.{name}"
        constrained = rule.min is not None or rule.max is not None or rule.signed is not None
        if not constrained:
            continue
        if name not in amount_params:
            what = ("names an account or a currency, or fills a text" if name in params
                    else "is not used")
            issues.add(pw, f"parameter {name!r} {what}, so it has no amount to bound: min, max "
                           "and signed apply to parameters of line amounts or condition values")
            continue
        signed = _signed(rule, name, line_amount_params)
        if not signed and rule.min is not None and rule.min < 0:
            issues.add(f"{pw}.min", f"{rule.min} is negative, but {name!r} is not signed "
                                    "(declare \"signed\": true to accept negative values)")


def _signed(rule: ParameterRule | None, name: str, line_amount_params) -> bool:
    if rule is not None and rule.signed is not None:
        return rule.signed
    return name not in line_amount_params


def check_values(et, given: dict[str, str], numbers: dict[str, int],
                 pinned: frozenset[str] = frozenset()) -> None:
    """Refuse a request's parameters that break ``et``'s rules, naming the first.
    ``numbers`` are the amount parameters, parsed. ``pinned`` parameters take their value
    from an external tx (reconciliation), which is what the line must equal whatever its
    sign."""
    rules = et.rules
    for p in sorted(given):
        if p not in et.params and p not in rules and p not in et.link_params:
            raise BadRequestError(
                "invalid_parameter", f"entry.parameters.{p}: entry type {et.type!r} does not "
                f"use a parameter {p!r} (it takes {', '.join(sorted(et.params)) or 'none'})",
                field=f"entry.parameters.{p}")
    for p in sorted(numbers):
        value, rule = numbers[p], rules.get(p)
        field = f"entry.parameters.{p}"
        if value < 0 and p not in pinned and not _signed(rule, p, et.line_amount_params):
            raise BadRequestError(
                "invalid_parameter", f"{field}: {value} is negative; entry type {et.type!r} "
                "takes it as a non-negative amount (a schema may declare it \"signed\")",
                field=field)
        if rule is not None and rule.min is not None and value < rule.min:
            raise BadRequestError("invalid_parameter", f"{field}: {value} is below the minimum "
                                  f"{rule.min} entry type {et.type!r} declares", field=field)
        if rule is not None and rule.max is not None and value > rule.max:
            raise BadRequestError("invalid_parameter", f"{field}: {value} is above the maximum "
                                  f"{rule.max} entry type {et.type!r} declares", field=field)

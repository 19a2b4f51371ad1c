"""A typed client for one schema (seed 001's "codegen client"): ``ledger codegen --schema
schema.jsonc --out wallet_client.py`` writes a module whose ``Client`` and ``SyncClient``
are the SDK's, plus one method per entry type:

    from wallet_client import Client
    await client.deposit_entry(idemp_key="tx123", user_id="user_1", cents=1000)

Each method takes keyword arguments named after the type's parameters, typed from how the
schema uses them (amounts ``int`` in minor units, names ``str``), with the type's
description and its declared constraints as the docstring. A type that posts to a linked
account is reconciled (``reconcile_tx``): the tx gives its amount, so the parameters the tx
fills are optional. The output depends only on the schema document: generating twice gives
the same bytes.

It reads the schema document as stored (a dict), without the server's parser: the SDK needs
only httpx. The ``ledger codegen`` command checks the schema with the server's rules first.
"""
from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field
from typing import Any

from ledger_sdk.client import Client, SyncClient
from ledger_sdk.transport import Transport

_PARAM = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*\}\}")

# Roots of a nested chart, and attributes of a nested account (anything else that holds an
# object is a child), as the server reads them.
_NESTED_ATTRS = {"type", "name", "template", "currency", "currencyMode", "consistencyConfig",
                 "linkedAccount", "key", "children"}

# Keyword arguments every generated method may take besides the parameters.
_OPTIONS = ("idemp_key", "external_ref", "ledger", "posted", "tags", "groups", "lines", "self")


def _params(value: Any) -> list[str]:
    return _PARAM.findall(value) if isinstance(value, str) else []


def _text_params(value: Any) -> list[str]:
    """Parameters in a string, or in a ``{"code": ...}`` / ``{"externalId": ...}`` object."""
    if isinstance(value, dict):
        return [p for v in value.values() for p in _params(v)]
    return _params(value)


@dataclass
class Parameter:
    name: str  # as the schema spells it
    arg: str  # the Python keyword argument
    amount: bool  # an amount (int, minor units) or a name (str)
    shown_only: bool  # used only to fill the description or tags
    from_tx: bool  # the reconciled tx can supply it: optional
    rule: dict = field(default_factory=dict)
    currency: bool = False  # names a line's currency (seed 001: ``currency="USD"``)

    @property
    def annotation(self) -> str:
        base = "int" if self.amount else "str"
        return f"{base} | None" if self.from_tx else base


@dataclass
class EntryType:
    type: str
    method: str
    description: str | None
    params: list[Parameter]
    runtime: bool  # lines come with the post
    reconciled: bool  # posts to a linked account
    tx_params: list[str]  # parameters that name a line's tx, filled from external_ref
    conditions: list[str]


# ------------------------------------------------------------------ reading the schema

def _linked_accounts(chart: Any) -> dict[str, Any]:
    """Chart path (``assets/banks``, no instance values) -> linkedAccount, both chart forms."""
    out: dict[str, Any] = {}

    def walk(node: dict, path: str) -> None:
        if node.get("linkedAccount") is not None:
            out[path] = node["linkedAccount"]
        for child in node.get("children") or ():
            if isinstance(child, dict) and isinstance(child.get("key"), str):
                walk(child, f"{path}/{child['key']}")
        for key, child in node.items():
            if key not in _NESTED_ATTRS and isinstance(child, dict):
                walk(child, f"{path}/{key}")

    if not isinstance(chart, dict):
        return out
    for root in chart.get("accounts") or ():
        if isinstance(root, dict) and isinstance(root.get("key"), str):
            walk(root, root["key"])
    for key, node in chart.items():
        if key not in ("accounts", "defaultCurrency", "defaultCurrencyMode") \
                and isinstance(node, dict):
            walk(node, key)
    return out


def _chart_path(path: str) -> str:
    return "/".join(part.partition(":")[0] for part in path.split("/"))


def _condition_text(cond: dict) -> list[str]:
    path = (cond.get("account") or {}).get("path", "?")
    out = []
    for when in ("precondition", "postcondition"):
        for balance, ops in (cond.get(when) or {}).items():
            for op, value in (ops or {}).items() if isinstance(ops, dict) else ():
                sign = {"gte": ">=", "lte": "<=", "eq": "=="}.get(op, op)
                moment = "before" if when == "precondition" else "after"
                out.append(f"{path} {balance} {sign} {value} ({moment} the entry)")
    return out


class _Names:
    """Python names, unique within their scope, in the order asked for."""

    def __init__(self, taken: set[str]):
        self.taken = set(taken)

    def make(self, raw: str, suffix: str) -> str:
        name = re.sub(r"\W", "_", raw, flags=re.ASCII)
        if not name or name[0].isdigit():
            name = f"p_{name}"
        if keyword.iskeyword(name) or name in self.taken:
            name += suffix
        candidate, n = name, 2
        while candidate in self.taken:
            candidate, n = f"{name}{n}", n + 1
        self.taken.add(candidate)
        return candidate


def snake_case(name: str) -> str:
    """``DepositEntry`` -> ``deposit_entry``; ``user_funds_account`` stays as it is."""
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    name = re.sub(r"\W+", "_", name, flags=re.ASCII)
    return re.sub(r"_+", "_", name).strip("_").lower()


@dataclass
class _Uses:
    """How one entry type uses its parameters."""

    order: list[str] = field(default_factory=list)  # in order of first use
    amounts: set[str] = field(default_factory=set)
    currencies: set[str] = field(default_factory=set)
    used: set[str] = field(default_factory=set)  # by anything but descriptions and tags
    from_tx: set[str] = field(default_factory=set)  # the reconciled tx can supply them
    tx_params: list[str] = field(default_factory=list)  # name a line's tx
    reconciled: bool = False  # a line posts to a linked account

    def see(self, names: list[str], amount: bool = False, shown: bool = False) -> None:
        for p in names:
            if p not in self.order:
                self.order.append(p)
            if amount:
                self.amounts.add(p)
            if not shown:
                self.used.add(p)


def _pairs(value: Any) -> list[Any]:
    """The values of tags or groups: ``[{"key", "value"}]`` or ``{key: value}``."""
    if isinstance(value, dict):
        return list(value.values())
    return [item.get("value") for item in value or () if isinstance(item, dict)]


def _see_line(uses: _Uses, line: dict, linked: dict[str, Any]) -> None:
    path = (line.get("account") or {}).get("path", "")
    uses.see(_params(path))
    link = linked.get(_chart_path(path)) if isinstance(path, str) else None
    if isinstance(link, dict):
        uses.see([p for v in link.values() for p in _params(v)])
    amount = str(line["amount"]) if line.get("amount") is not None else None
    uses.see(_params(amount), amount=True)
    currencies = _text_params(line.get("currency"))
    uses.see(currencies)
    uses.currencies.update(currencies)
    tx_names = _text_params(line.get("tx"))
    uses.see(tx_names)
    uses.see(_params(line.get("description")), shown=True)
    if link is None:
        return
    uses.reconciled = True
    tx_text = (line.get("tx") or {}).get("externalId")
    if isinstance(tx_text, str) and _PARAM.fullmatch(tx_text.strip()):
        uses.tx_params.extend(p for p in tx_names if p not in uses.tx_params)
        uses.from_tx.update(tx_names)
    open_amount = set(_params(amount))
    if len(open_amount) == 1:
        uses.from_tx.update(open_amount)


def _collect(spec: dict, linked: dict[str, Any]) -> _Uses:
    uses = _Uses()
    uses.see(_params(spec.get("description")), shown=True)
    for line in spec.get("lines") or ():
        if isinstance(line, dict):
            _see_line(uses, line, linked)
    for cond in spec.get("conditions") or ():
        if not isinstance(cond, dict):
            continue
        uses.see(_params((cond.get("account") or {}).get("path")))
        for when in ("precondition", "postcondition"):
            for ops in (cond.get(when) or {}).values():
                for value in (ops or {}).values() if isinstance(ops, dict) else ():
                    uses.see(_params(str(value)), amount=True)
    for value in _pairs(spec.get("groups")):
        uses.see(_params(value))
    for value in _pairs(spec.get("tags")):
        uses.see(_params(value), shown=True)
    # Declared rules are numeric bounds: what they declare is an amount.
    uses.see([p for p in (spec.get("parameters") or {}) if isinstance(p, str)], amount=True)
    return uses


def read_entry_types(document: dict) -> list[EntryType]:
    """The entry types of a schema document, in its order, with their Python names."""
    linked = _linked_accounts(document.get("chartOfAccounts"))
    entries = document.get("ledgerEntries") or {}
    specs = entries.get("types", []) if isinstance(entries, dict) else entries
    methods = _Names(_reserved_methods())
    out = []
    for spec in specs or ():
        if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
            continue
        uses = _collect(spec, linked)
        args = _Names(set(_OPTIONS))
        rules = spec.get("parameters") if isinstance(spec.get("parameters"), dict) else {}
        params = [Parameter(p, args.make(p, "_"), p in uses.amounts, p not in uses.used,
                            uses.reconciled and p in uses.from_tx,
                            rules.get(p) if isinstance(rules.get(p), dict) else {},
                            p in uses.currencies)
                  for p in uses.order]
        conditions = [t for c in spec.get("conditions") or () if isinstance(c, dict)
                      for t in _condition_text(c)]
        description = spec.get("description")
        out.append(EntryType(spec["type"], methods.make(snake_case(spec["type"]) or "entry",
                                                        "_entry"),
                             description if isinstance(description, str) else None, params,
                             spec.get("lines") is None, uses.reconciled, uses.tx_params,
                             conditions))
    return out


def _reserved_methods() -> set[str]:
    """Names a method may not take: the clients' own, and the attributes their
    constructor sets (a method ``timeout`` would be hidden by ``self.timeout``)."""
    probe = object.__new__(Transport)
    Transport.__init__(probe, "id", "secret", "http://localhost")
    attributes = {n for n in vars(probe) if not n.startswith("_")}
    methods = {n for cls in (Client, SyncClient) for n in dir(cls) if not n.startswith("_")}
    return attributes | methods


# ------------------------------------------------------------------ writing the module

def _doc(text: str, indent: str) -> str:
    body = text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    lines = body.splitlines() or [""]
    if len(lines) == 1:
        return f'{indent}"""{lines[0]}"""\n'
    inner = "\n".join(f"{indent}{line}" if line else "" for line in lines[1:])
    return f'{indent}"""{lines[0]}\n{inner}\n{indent}"""\n'


def _constraint(p: Parameter) -> str:
    if not p.amount:
        if p.currency:
            return "a currency code (USD)"
        return "text for the description or tags" if p.shown_only else "a name"
    parts = ["an amount in minor units"]
    if p.rule.get("min") is not None:
        parts.append(f">= {p.rule['min']}")
    if p.rule.get("max") is not None:
        parts.append(f"<= {p.rule['max']}")
    if p.rule.get("signed"):
        parts.append("may be negative")
    if p.from_tx:
        parts.append("default: from the tx")
    return ", ".join(parts)


def _docstring(et: EntryType) -> str:
    head = et.description or f"Post a {et.type} entry."
    lines = [head, "", f"Entry type ``{et.type}``."]
    if et.reconciled:
        lines.append("Reconciles a synced tx (``external_ref``): amount and posted time come "
                     "from it; the ik defaults to its id.")
    if et.runtime:
        lines.append("Its lines come with the call (``lines``).")
    if et.params:
        lines += ["", "Parameters:"]
        for p in et.params:
            filled = " (default: external_ref)" if p.name in et.tx_params else ""
            lines.append(f"    {p.arg}: {p.annotation}, {_constraint(p)}{filled}"
                         + (f" (schema: {p.name})" if p.arg != p.name else ""))
    if et.conditions:
        lines += ["", "Refused (condition_failed) unless:"]
        lines += [f"    {c}" for c in et.conditions]
    return "\n".join(lines)


def _signature(et: EntryType) -> list[str]:
    args = ["self", "*"]
    if et.reconciled:
        args.append("external_ref: str | None = None")
        args.append("idemp_key: str | None = None")
    else:
        args.append("idemp_key: str")
    args += [f"{p.arg}: {p.annotation}" for p in et.params if not p.from_tx]
    if et.runtime:
        args.append("lines: list[dict[str, Any]]")
    args += [f"{p.arg}: {p.annotation} = None" for p in et.params if p.from_tx]
    args.append("ledger: str | None = None")
    if not et.reconciled:
        args += ["posted: datetime | str | None = None", "tags: dict[str, str] | None = None",
                 "groups: dict[str, str] | None = None"]
    return args


def _method(et: EntryType, sync: bool) -> str:
    i2, i3 = " " * 8, " " * 12
    head = f"    {'def' if sync else 'async def'} {et.method}("
    out = head + (",\n" + " " * len(head)).join(_signature(et)) + ") -> AddLedgerEntryResult:\n"
    out += _doc(_docstring(et), i2)
    given = ", ".join(f"{p.name!r}: {p.arg}" for p in et.params if not p.from_tx)
    out += f"{i2}parameters: dict[str, str | int] = {{{given}}}\n"
    for p in et.params:
        if not p.from_tx:
            continue
        if p.name in et.tx_params:
            # The line names its tx by this parameter: by default, the tx the call names.
            out += f"{i2}if {p.arg} is None:\n{i3}{p.arg} = external_ref\n"
        out += f"{i2}if {p.arg} is not None:\n{i3}parameters[{p.name!r}] = {p.arg}\n"
    if et.reconciled:
        call, kwargs = "reconcile_tx", [f"type={et.type!r}", "parameters=parameters",
                                        "external_ref=external_ref", "ledger=ledger",
                                        "ik=idemp_key"]
    else:
        call, kwargs = "add_ledger_entry", ["ik=idemp_key", f"type={et.type!r}",
                                            "parameters=parameters", "ledger=ledger",
                                            "posted=posted", "tags=tags", "groups=groups"]
        if et.runtime:
            kwargs.append("lines=lines")
    wait = "" if sync else "await "
    return out + f"{i2}return {wait}self.{call}(\n{i3}" + f",\n{i3}".join(kwargs) + ")\n"


def generate(document: dict) -> str:
    """The Python source of the typed client module for ``document`` (a schema as stored:
    ``key``, ``chartOfAccounts``, ``ledgerEntries``)."""
    key = document.get("key") if isinstance(document.get("key"), str) else "schema"
    types = read_entry_types(document)
    uses_any = any(et.runtime for et in types)
    out = _doc(f"A typed client for ledger schema {key!r}, generated by `ledger codegen`.\n\n"
               "Regenerate it from the schema rather than editing it. One method per entry "
               "type, on\n``Client`` (async) and ``SyncClient`` (blocking):\n\n"
               + "\n".join(f"    {et.method}: {et.type}" for et in types), "")
    out += "from __future__ import annotations\n\n"
    out += "from datetime import datetime\n"
    if uses_any:
        out += "from typing import Any\n"
    out += "\nimport ledger_sdk\nfrom ledger_sdk import AddLedgerEntryResult\n\n"
    out += f"SCHEMA_KEY = {key!r}\n"
    out += f"ENTRY_TYPES = {tuple(et.type for et in types)!r}\n"
    for cls, base, sync in (("Client", "ledger_sdk.Client", False),
                            ("SyncClient", "ledger_sdk.SyncClient", True)):
        out += f"\n\nclass {cls}({base}):\n"
        out += _doc(f"{'Blocking' if sync else 'Async'} client with a method per entry type "
                    f"of schema {key!r}.", " " * 4)
        for et in types:
            out += "\n" + _method(et, sync)
    return out

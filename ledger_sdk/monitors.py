"""Balance monitors in the SDK: create, list, get, update and delete. On both clients, like
the other mixins; a refused call raises the typed error naming the field."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ledger_sdk.operations import Operations
from ledger_sdk.types import parse_time

_ERR = "... on Error { code message retryable }"
_MONITOR = ("id account balance description created updated ledgerIk "
            "condition { op amount currency { code } }")
_RESULT = f"__typename ... on BalanceMonitorResult {{ balanceMonitor {{ {_MONITOR} }} }} {_ERR}"
_CONDITION = "$condition: BalanceMonitorConditionInput"

CREATE = f"""mutation CreateBalanceMonitor($ledger: LedgerMatchInput!, $account: String!,
  $balance: String!, {_CONDITION}!, $description: String, $ik: String) {{
  createBalanceMonitor(ledger: $ledger, account: $account, balance: $balance,
                       condition: $condition, description: $description, ik: $ik) {{
    {_RESULT} }}
}}"""

UPDATE = f"""mutation UpdateBalanceMonitor($id: ID!, $account: String, $balance: String,
  {_CONDITION}, $description: String) {{
  updateBalanceMonitor(id: $id, account: $account, balance: $balance, condition: $condition,
                       description: $description) {{ {_RESULT} }}
}}"""

DELETE = f"""mutation DeleteBalanceMonitor($id: ID!) {{
  deleteBalanceMonitor(id: $id) {{ {_RESULT} }}
}}"""

LIST = f"""query BalanceMonitors($ledger: LedgerMatchInput!) {{
  balanceMonitors(ledger: $ledger) {{ {_MONITOR} }}
}}"""

GET = f"""query BalanceMonitor($id: ID!) {{ balanceMonitor(id: $id) {{ {_MONITOR} }} }}"""

OPS = ("lt", "lte", "gt", "gte", "eq")


@dataclass
class BalanceMonitor:
    id: str
    ledger_ik: str
    account: str
    balance: str  # own | child | total, each also ...Pending and ...Available
    op: str
    amount: int
    currency: str | None
    description: str | None
    created: datetime | None
    updated: datetime | None

    @classmethod
    def from_wire(cls, d: dict) -> "BalanceMonitor":
        c = d["condition"]
        return cls(id=d["id"], ledger_ik=d["ledgerIk"], account=d["account"],
                   balance=d["balance"], op=c["op"], amount=int(c["amount"]),
                   currency=(c.get("currency") or {}).get("code"),
                   description=d.get("description"), created=parse_time(d.get("created")),
                   updated=parse_time(d.get("updated")))


def condition_input(op: str, amount: int | str, currency: str | None = None) -> dict:
    """The wire form of a condition: ``condition_input("lt", 1000, "USD")``."""
    if op not in OPS:
        raise ValueError(f"op: one of {', '.join(OPS)}, got {op!r}")
    if isinstance(amount, float):
        raise ValueError("amount: floats are refused; pass integers in minor units")
    out: dict = {op: str(amount)}
    if currency is not None:
        out["currency"] = {"code": currency}
    return out


def _one(v: dict) -> BalanceMonitor:
    return BalanceMonitor.from_wire(v["balanceMonitor"])


class MonitorsMixin(Operations):
    """Mixed into the SDK clients; see the module docstring."""

    def create_balance_monitor(self, account: str, balance: str, op: str, amount: int | str,
                               *, currency: str | None = None, description: str | None = None,
                               ledger: str | None = None, ik: str | None = None):
        """Watch ``balance`` (own | child | total, posted; ``ownPending``, ``childPending``,
        ``totalPending``, ``ownAvailable``, ... counting holds as the balance fields of the
        same names do) of ``account`` (a path or a pattern such as
        ``liabilities/users:*/available``): each change that makes ``balance op amount``
        true, or false again, raises the event ``balance.crossed``. ``ik``: a retry with
        the same ik and input returns the same monitor; another input is ``ik_conflict``."""
        return self._call(CREATE, {
            "ledger": {"ik": self._ledger(ledger)}, "account": account, "balance": balance,
            "condition": condition_input(op, amount, currency), "description": description,
            "ik": ik},
            "createBalanceMonitor", _one)

    def list_balance_monitors(self, ledger: str | None = None):
        """Every monitor of the ledger, oldest first."""
        return self._call(LIST, {"ledger": {"ik": self._ledger(ledger)}}, "balanceMonitors",
                          lambda v: [BalanceMonitor.from_wire(m) for m in v])

    def get_balance_monitor(self, id: str):
        return self._call(GET, {"id": id}, "balanceMonitor", BalanceMonitor.from_wire)

    def update_balance_monitor(self, id: str, *, account: str | None = None,
                               balance: str | None = None, condition: dict | None = None,
                               description: str | None = None):
        """``condition``: ``condition_input(op, amount, currency)``; None keeps each part."""
        return self._call(UPDATE, {"id": id, "account": account, "balance": balance,
                                   "condition": condition, "description": description},
                          "updateBalanceMonitor", _one)

    def delete_balance_monitor(self, id: str):
        """Delete a monitor; returns it as it was."""
        return self._call(DELETE, {"id": id}, "deleteBalanceMonitor", _one)

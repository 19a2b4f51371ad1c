"""Current balances of an account: own, of its descendants (child), and both (total)."""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledger.model import AccountBalances, Ledger
from ledger.schema import Account, Schema, resolve_path


def resolve_read_path(schema: Schema, path: str) -> tuple[Account, bool]:
    """The account a path names for reading. Besides instances (``users:alice``) a read may
    name a template node itself (``liabilities/users``), whose children are all instances.
    Returns the account and whether the path names a template node without an instance."""
    account = schema.accounts.get(path) if isinstance(path, str) else None
    if account is not None and account.template:
        parts = path.split("/")
        # Above a template node every account must be plain, or the path lacks an instance.
        if not any(schema.accounts["/".join(parts[:i])].template for i in range(1, len(parts))):
            return account, True
    return resolve_path(schema, path, "path"), False


def child_range(path: str, template_node: bool) -> tuple[str, str]:
    """Descendant paths of ``path`` sort between these bounds under the C collation:
    ``path/...`` for ordinary accounts, ``path:...`` for the instances of a template node."""
    sep = ":" if template_node else "/"
    return path + sep, path + chr(ord(sep) + 1)


def account_balances(conn: Connection, ledger: Ledger, schema: Schema, path: str) -> AccountBalances:
    account, template_node = resolve_read_path(schema, path)
    own: dict[str, int] = {}
    if not template_node:
        own = {r[0]: int(r[1]) for r in conn.execute(sa.text(
            "SELECT b.currency, b.own FROM balances b JOIN accounts a ON a.id = b.account_id "
            "WHERE a.ledger_id = :l AND a.path = :p"), {"l": ledger.id, "p": path})}
    lo, hi = child_range(path, template_node)
    child = {r[0]: int(r[1]) for r in conn.execute(sa.text(
        "SELECT b.currency, sum(b.own) FROM balances b JOIN accounts a ON a.id = b.account_id "
        "WHERE a.ledger_id = :l AND a.path > :lo AND a.path < :hi GROUP BY b.currency"),
        {"l": ledger.id, "lo": lo, "hi": hi})}
    if account.currency_mode == "single":
        own.setdefault(account.currency, 0)
        child.setdefault(account.currency, 0)
    total = {c: own.get(c, 0) + child.get(c, 0) for c in sorted(set(own) | set(child))}
    return AccountBalances(path, account.type, dict(sorted(own.items())),
                           dict(sorted(child.items())), total)


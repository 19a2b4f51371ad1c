"""What the dashboard shows of reconciliation: the links, the paths of a ledger linked to an
external account, and txs found by their external id across every link.

Bounded reads: links and linked paths are few (one per bank or Stripe account and per
mirrored ledger account) and are capped anyway; a tx is found by one probe of the unique
(account, external id) index per external account."""
from __future__ import annotations

import sqlalchemy as sa

from ledger import tables as t
from ledger.db import Database
from ledger.ledgers import load_ledger
from ledger.schema.model import Schema
from ledger.schema.store import load_schema
from ledger.reconcile.model import _TX_COLUMNS, _TX_FROM, Link, Tx, _link, _tx
from ledger.text import check_storable

MAX_LISTED = 200


def list_links(db: Database) -> list[Link]:
    """The links (custom and Stripe), oldest first, at most ``MAX_LISTED``."""
    k = t.links.c
    with db.transaction() as conn:
        rows = conn.execute(sa.select(k.public_id, k.name, k.kind, k.created)
                            .order_by(k.id).limit(MAX_LISTED)).all()
    return [_link(r) for r in rows]


def _declared(schema: Schema) -> list[str]:
    """Linked accounts of the chart that name one account (no template on their path)."""
    found = []
    for account in schema.accounts.values():
        parts = account.path.split("/")
        chain = ("/".join(parts[:n]) for n in range(1, len(parts) + 1))
        if account.linked is not None and not any(
                schema.accounts[p].template for p in chain if p in schema.accounts):
            found.append(account.path)
    return found


def linked_paths(db: Database, ledger_ik: str) -> list[str]:
    """The ledger's account paths that mirror an external account, by path: those the chart
    declares, and the instances of linked templates that entries have named."""
    c = t.linked_accounts.c
    with db.transaction() as conn:
        ledger = load_ledger(conn, ledger_ik)
        recorded = conn.execute(sa.select(c.path).where(c.ledger_id == ledger.id)
                                .order_by(c.path).limit(MAX_LISTED)).scalars()
        paths = set(recorded) | set(_declared(load_schema(conn, ledger.id)))
    return sorted(paths)[:MAX_LISTED]


def txs_by_external_id(db: Database, external_id: str, limit: int = 20) -> list[Tx]:
    """The live (not deleted) txs with this external id in any link's account, oldest first."""
    check_storable(external_id, "externalId")
    with db.transaction() as conn:
        rows = conn.execute(sa.text(
            f"SELECT {_TX_COLUMNS} {_TX_FROM} WHERE x.id IN (SELECT f.id FROM external_accounts ea "
            "CROSS JOIN LATERAL (SELECT id FROM external_txs WHERE account_id = ea.id "
            "AND external_id = :e AND deleted IS NULL) f) ORDER BY x.id LIMIT :n"),
            {"e": external_id, "n": limit}).all()
    return [_tx(r) for r in rows]

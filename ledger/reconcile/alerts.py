"""tx.unreconciled_for: a synced tx still unreconciled a while after it was synced
(``LEDGER_UNRECONCILED_ALERT_SECONDS``) is reported once, by beat's sweep."""
from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledger.db import Database
from ledger.reconcile.txs import raise_tx_events

# Marked and reported in one transaction, so a tx is reported exactly once; SKIP LOCKED
# lets a sync or reconcile holding a tx go on, the sweep takes it next time.
_DUE = sa.text("""
    WITH due AS (
        SELECT id FROM external_txs
        WHERE entry_id IS NULL AND deleted IS NULL AND unreconciled_alerted IS NULL
          AND created < now() - :age
        ORDER BY created, id LIMIT :n FOR UPDATE SKIP LOCKED)
    UPDATE external_txs x SET unreconciled_alerted = now() FROM due WHERE x.id = due.id
    RETURNING x.id""")


def raise_unreconciled_alerts(db: Database, older_than: timedelta, *, limit: int = 1000) -> int:
    """Report (tx.unreconciled_for) up to ``limit`` txs synced more than ``older_than`` ago
    and still unreconciled, each once; returns how many."""
    def run(conn: Connection) -> int:
        ids = sorted(conn.execute(_DUE, {"age": older_than, "n": limit}).scalars().all())
        raise_tx_events(conn, "tx.unreconciled_for", ids)
        return len(ids)
    return db.run(run)

"""Where a Stripe link's sync stands, as the dashboard shows it: the window being synced,
its cursor within the window, how far the sync is complete, and when it last moved."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from ledger import tables as t
from ledger.db import Database


@dataclass(frozen=True)
class SyncState:
    link_id: str
    window_since: datetime | None     # the window a sync is working through, if any
    window_until: datetime | None
    cursor: str | None                # the last balance transaction of the window read
    done_until: datetime | None       # complete from the start up to this time
    last_activity: datetime           # the last sync step, or the last configuration


def sync_state(db: Database, link_id: str) -> SyncState | None:
    """The state of Stripe link ``link_id``; None when it was never configured."""
    s = t.stripe_links.c
    with db.transaction() as conn:
        row = conn.execute(sa.select(s.backfill_since, s.backfill_until,
                                     s.backfill_starting_after, s.backfill_done_until,
                                     s.updated).join(t.links).where(
            t.links.c.public_id == link_id)).first()
    if row is None:
        return None
    return SyncState(link_id, row.backfill_since, row.backfill_until,
                     row.backfill_starting_after, row.backfill_done_until, row.updated)

"""Backfills over a ``created`` window, and the problems a sync left."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledger import tables as t
from ledger.db import Database
from ledger.errors import BadRequestError
from ledger.settings import Settings
from ledger.stripe.api import stripe_api
from ledger.stripe.config import ensure_link, load_settings
from ledger.stripe.model import (
    OVERLAP,
    PAGE_LIMIT,
    TRAILING_WINDOW,
    Problem,
    SyncReport,
    ts,
)
from ledger.stripe.sync import handle_balance_transaction, recheck_pending

log = logging.getLogger(__name__)


def backfill_params(since: datetime, until: datetime, cursor: str | None) -> dict[str, Any]:
    """The list parameters of one page of a backfill of ``[since, until)`` after ``cursor``
    (``until`` rounded up to the second, so its last second is listed)."""
    params: dict[str, Any] = {
        "created": {"gte": int(since.timestamp()), "lt": int(-(-until.timestamp() // 1))},
        "limit": PAGE_LIMIT, "expand": ["data.source"]}
    if cursor:
        params["starting_after"] = cursor
    return params


def backfill(db: Database, config: Settings, since: datetime, until: datetime | None = None, *,
             client: Any = None,
             progress: Callable[[float, SyncReport], None] | None = None) -> SyncReport:
    """List balance transactions created in ``[since, until)`` (newest first, 100 a page)
    and sync each. The cursor is saved after every page: an interrupted backfill with the
    same ``since`` resumes where it stopped. Every object is read whatever its status
    (the API has no status filter): pending ones wait in the tracking table. ``client``: a
    ``StripeApi`` or ``stripe.StripeClient`` (None: one made from the settings)."""
    settings = load_settings(db, config)
    api = stripe_api(settings, client)
    with db.transaction() as conn:
        link = ensure_link(conn, settings.link_id)
        state = conn.execute(sa.select(t.stripe_links).where(t.stripe_links.c.link_id == link.id)).first()
    cursor = None
    if state.backfill_starting_after and state.backfill_since == since and until is None:
        until, cursor = state.backfill_until, state.backfill_starting_after
    until = until or datetime.now(timezone.utc)
    if until <= since:
        raise BadRequestError("invalid_input", f"since: {since.isoformat()} is not before until {until.isoformat()}", field="since")
    _save_cursor(db, link.id, since=since, until=until, starting_after=cursor)
    report = SyncReport()
    span = (until - since).total_seconds()
    while True:
        page = api.balance_transactions(backfill_params(since, until, cursor))
        for bt in page.data:
            report.add(handle_balance_transaction(db, settings, bt))
            if progress is not None:
                done = (until - ts(bt["created"])).total_seconds() / span if span else 1.0
                progress(min(max(done, 0.0), 1.0), report)
        if not page.data:
            break
        cursor = page.data[-1]["id"]
        _save_cursor(db, link.id, since=since, until=until, starting_after=cursor)
        if not page.has_more:
            break
    db.run(lambda conn: _finish(conn, link.id, since, until))
    if progress is not None:
        progress(1.0, report)
    return report


def _finish(conn: Connection, link_pk: int, since: datetime, until: datetime) -> None:
    row = conn.execute(sa.select(t.stripe_links).where(t.stripe_links.c.link_id == link_pk)
                       .with_for_update()).first()
    done = row.backfill_done_until
    # Complete up to `until` only if this window joins what was complete before.
    if done is None or since <= done:
        done = max(done or until, until)
    conn.execute(t.stripe_links.update().where(t.stripe_links.c.link_id == link_pk).values(
        backfill_starting_after=None, backfill_done_until=done,
        updated=datetime.now(timezone.utc)))


def _save_cursor(db: Database, link_pk: int, **values) -> None:
    with db.transaction() as conn:
        conn.execute(t.stripe_links.update().where(t.stripe_links.c.link_id == link_pk).values(
            backfill_since=values["since"], backfill_until=values["until"],
            backfill_starting_after=values["starting_after"], updated=datetime.now(timezone.utc)))


def backfill_trailing(db: Database, config: Settings, client: Any = None,
                      window: timedelta = TRAILING_WINDOW) -> SyncReport:
    """What beat runs: finish an interrupted backfill, else list from the end of the last
    complete one (less an overlap) or the trailing window, whichever is earlier; then
    re-check pending balance transactions that are due."""
    settings = load_settings(db, config)
    if not settings.api_key:
        log.info("stripe backfill skipped: no API key configured")
        return SyncReport()
    api = stripe_api(settings, client)
    with db.transaction() as conn:
        link = ensure_link(conn, settings.link_id)
        state = conn.execute(sa.select(t.stripe_links).where(t.stripe_links.c.link_id == link.id)).first()
    if state.backfill_starting_after and state.backfill_since is not None:
        report = backfill(db, config, state.backfill_since, client=api)
    else:
        since = datetime.now(timezone.utc) - window
        if state.backfill_done_until is not None:
            since = min(since, state.backfill_done_until - OVERLAP)
        report = backfill(db, config, since, client=api)
    return report.add(recheck_pending(db, settings, api))


def problems(db: Database, config: Settings) -> list[Problem]:
    """Settled balance transactions of the link ``config.stripe_link_id`` left
    unreconciled, with the reason (the report)."""
    link_id = config.stripe_link_id
    with db.transaction() as conn:
        rows = conn.execute(sa.select(t.stripe_balance_txs).join(t.links).where(
            t.links.c.public_id == link_id, t.stripe_balance_txs.c.problem.is_not(None))
            .order_by(t.stripe_balance_txs.c.created)).all()
    return [Problem(r.id, r.source_id, r.problem) for r in rows]

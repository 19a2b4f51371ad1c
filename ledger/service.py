"""The ledger's public operations. The API, the workers and the CLI call these and nothing
below them, so every rule is enforced on every path."""
from __future__ import annotations

import base64
import re
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection

from ledger import balances as _balances
from ledger import history as _history
from ledger import posting
from ledger import tables as t
from ledger.audit import Problem
from ledger.audit import audit as audit_books
from ledger.db import Database
from ledger.ledgers import create_ledger, get_ledger, get_ledger_by_id, list_ledgers, load_ledger  # noqa: F401
from ledger.errors import BadRequestError, NotFoundError, SchemaError
from ledger.model import (AccountBalances, AccountInfo, BalanceChange, CreateLedgerResult, EntryChange,
                          EntryFilter, EntryGroup, EntryRequest, HistoryEntry, Ledger, LineInput, Page,
                          PageInfo, PostResult, ReverseResult, SchemaIssue, SchemaVersion,  # noqa: F401
                          UpdateEntryResult, check_storable)
from ledger.schema import canonical_json, load_document, parse_schema, verify



# ---------------------------------------------------------------------------- schemas

def verify_schema(document: Any) -> list[SchemaIssue]:
    return [SchemaIssue(p, m) for p, m in verify(document)]


def store_schema(db: Database, document: Any) -> SchemaVersion:
    """Store a schema document as the next version of its key. Storing the same document
    again returns the current version instead of adding one."""
    doc = load_document(document)
    schema = parse_schema(doc)
    return db.run(lambda conn: _store_schema(conn, schema, doc))


def _store_schema(conn: Connection, schema, doc: dict) -> SchemaVersion:
    now = datetime.now(timezone.utc)
    conn.execute(pg_insert(t.schemas).values(key=schema.key, created=now)
                 .on_conflict_do_nothing(index_elements=["key"]))
    # The row lock serializes versions of one key.
    schema_id = conn.execute(sa.select(t.schemas.c.id).where(t.schemas.c.key == schema.key)
                             .with_for_update()).scalar_one()
    latest = conn.execute(sa.select(t.schema_versions).where(t.schema_versions.c.schema_id == schema_id)
                          .order_by(t.schema_versions.c.version.desc()).limit(1)).mappings().first()
    if latest is not None:
        if canonical_json(latest["json"]) == canonical_json(doc):
            return _version(schema.key, latest)
        _check_compatible(conn, schema_id, parse_schema(latest["json"]), schema)
    version = (latest["version"] if latest else 0) + 1
    conn.execute(t.schema_versions.insert().values(
        schema_id=schema_id, version=version, name=schema.name, json=doc, created=now))
    return SchemaVersion(schema.key, schema.name, version, now, doc)


def _check_compatible(conn: Connection, schema_id: int, old, new) -> None:
    """A new version may add anything, but may not remove or reshape what has lines."""
    issues = []
    changed = [p for p, a in old.accounts.items()
               if p not in new.accounts or (a.type, a.template, a.currency, a.currency_mode) != (
                   new.accounts[p].type, new.accounts[p].template, new.accounts[p].currency,
                   new.accounts[p].currency_mode)]
    if changed:
        used = conn.execute(sa.text(
            "SELECT DISTINCT a.chart_path, l.ik FROM accounts a JOIN ledgers l ON l.id = a.ledger_id "
            "WHERE l.schema_id = :s AND a.chart_path = ANY(:p) "
            "AND EXISTS (SELECT 1 FROM lines x WHERE x.account_id = a.id) ORDER BY 1 LIMIT 20"),
            {"s": schema_id, "p": changed}).all()
        for path, ledger_ik in used:
            what = "removed" if path not in new.accounts else "changed (type, template or currency)"
            issues.append((f"chartOfAccounts:{path}", f"account {path!r} is {what}, but ledger {ledger_ik!r} has lines in it"))
    gone = [k for k in old.entry_types if k not in new.entry_types]
    if gone:
        used = conn.execute(sa.text(
            "SELECT DISTINCT e.type, l.ik FROM entries e JOIN ledgers l ON l.id = e.ledger_id "
            "WHERE l.schema_id = :s AND e.type = ANY(:g) ORDER BY 1 LIMIT 20"),
            {"s": schema_id, "g": gone}).all()
        for etype, ledger_ik in used:
            issues.append(("ledgerEntries.types", f"entry type {etype!r} is removed, but ledger {ledger_ik!r} has entries of it"))
    if issues:
        raise SchemaError(issues)


def _version(key: str, row) -> SchemaVersion:
    return SchemaVersion(key, row["name"], row["version"], row["created"], row["json"])


def get_schema(db: Database, key: str, version: int | None = None) -> SchemaVersion:
    versions = list_schema_versions(db, key)
    if version is None:
        return versions[-1]
    for v in versions:
        if v.version == version:
            return v
    raise NotFoundError("schema_not_found", f"schema {key!r} has no version {version}", field="version")


def list_schema_versions(db: Database, key: str) -> list[SchemaVersion]:
    with db.transaction() as conn:
        rows = conn.execute(sa.select(t.schema_versions).join(t.schemas)
                            .where(t.schemas.c.key == key)
                            .order_by(t.schema_versions.c.version)).mappings().all()
    if not rows:
        raise NotFoundError("schema_not_found", f"no schema with key {key!r}", field="schema.key")
    return [_version(key, r) for r in rows]


# ---------------------------------------------------------------------------- entries

def add_ledger_entry(db: Database, ledger_ik: str, request: EntryRequest) -> PostResult:
    return add_ledger_entries(db, ledger_ik, [request])[0]


def add_ledger_entries(db: Database, ledger_ik: str, requests: list[EntryRequest]) -> list[PostResult]:
    """Post entries atomically (all or none); the whole transaction is retried on
    deadlocks and serialization failures, which the ik makes safe."""
    def run(conn: Connection) -> list[PostResult]:
        return posting.post_entries(conn, load_ledger(conn, ledger_ik), requests)
    return db.run(run)


def get_ledger_entry(db: Database, *, id: str | None = None, ledger_ik: str | None = None,
                     ik: str | None = None, version: int | None = None) -> HistoryEntry:
    """An entry by id, or by ik within a ledger (the latest version of that ik, or
    ``version``). Returns a ``HistoryEntry`` (an ``Entry`` plus ik version and reversal
    links). NotFoundError ``entry_not_found``."""
    with db.transaction() as conn:
        if id is not None:
            if not str(id).isdigit():
                raise NotFoundError("entry_not_found", f"id: no entry {id!r}", field="id")
            row = conn.execute(sa.select(t.entries.c.id, t.ledgers.c.ik)
                               .join(t.ledgers, t.ledgers.c.id == t.entries.c.ledger_id)
                               .where(t.entries.c.id == int(id))).first()
            if row is None or (ledger_ik is not None and row[1] != ledger_ik):
                raise NotFoundError("entry_not_found", f"id: no entry {id!r}", field="id")
            return _history.get_entry(conn, load_ledger(conn, row[1]), row[0])
        return _history.get_entry_by_ik(conn, load_ledger(conn, ledger_ik), ik, version)


def list_ledger_accounts(db: Database, ledger_ik: str, *, first: int | None = None,
                         after: str | None = None, last: int | None = None,
                         before: str | None = None) -> Page:
    """``list_ledger_accounts(db, ledger_ik, *, first, after, last, before) ->
    Page[AccountInfo]``: the accounts the ledger holds (those lines were posted to), by
    path. Keyset pages as in ``list_lines`` (20 by default, at most 200); a cursor is a
    position in path order, so accounts created meanwhile never shift a page."""
    if first is not None and last is not None:
        raise BadRequestError("invalid_input", "last: give first or last, not both", field="last")
    backward = last is not None
    field = "last" if backward else "first"
    size = last if backward else first
    if size is None:
        size = _history.DEFAULT_PAGE
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= _history.MAX_PAGE:
        raise BadRequestError("invalid_input", f"{field}: expected a page size from 0 to {_history.MAX_PAGE}, got {size!r}", field=field)
    a = t.accounts.c
    with db.transaction() as conn:
        ledger = load_ledger(conn, ledger_ik)
        base = sa.select(a.id, a.path, a.type, a.consistency, a.created).where(a.ledger_id == ledger.id)
        q = base
        lo = _account_cursor(after, "after") if after is not None else None
        hi = _account_cursor(before, "before") if before is not None else None
        if lo is not None:
            q = q.where(a.path > lo)
        if hi is not None:
            q = q.where(a.path < hi)
        q = q.order_by(a.path.desc() if backward else a.path).limit(size + 1)
        rows = conn.execute(q).all()
        more = len(rows) > size
        rows = list(rows[:size])
        if backward:
            rows.reverse()

        def exists(cond) -> bool:
            return bool(conn.execute(sa.select(base.where(cond).exists())).scalar())

        if backward:
            has_previous, has_next = more, hi is not None and exists(a.path >= hi)
        else:
            has_next, has_previous = more, lo is not None and exists(a.path <= lo)
    nodes = [AccountInfo(str(r.id), r.path, r.type, r.consistency, r.created) for r in rows]
    return Page(nodes, PageInfo(has_next, has_previous,
                                _encode_account_cursor(nodes[0].path) if nodes else None,
                                _encode_account_cursor(nodes[-1].path) if nodes else None))


def _encode_account_cursor(path: str) -> str:
    return base64.urlsafe_b64encode(f"account|{path}".encode()).decode().rstrip("=")


def _account_cursor(cursor: Any, field: str) -> str:
    bad = BadRequestError("invalid_input", f"{field}: not a cursor of this list; pass a startCursor or endCursor it returned", field=field)
    if not isinstance(cursor, str) or not cursor or len(cursor) > 4000:
        raise bad
    try:
        kind, sep, path = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().partition("|")
    except (ValueError, UnicodeDecodeError):
        raise bad from None
    if kind != "account" or not sep or not path:
        raise bad
    return path


# ---------------------------------------------------------------------------- balances

def account_balances(db: Database, ledger_ik: str, path: str, at: Any = None) -> AccountBalances:
    """Own, child and total balances of ``path`` per currency.

    ``at`` None: the latest balances (every committed line, future-dated ones included).
    ``at`` a datetime or ISO 8601 time: the balances at that moment (lines posted at or
    before it). ``at`` a period (``2025``, ``2025-Q1``, ``2025-02``, ``2025-02-03``,
    ``2025-02-03T04``): the balances at the end of that period in the ledger's
    balanceUTCOffset. A past read costs one index probe per (account, currency)."""
    with db.transaction() as conn:
        ledger = load_ledger(conn, ledger_ik)
        schema = posting.load_schema(conn, ledger.id)
        if at is None:
            return _balances.account_balances(conn, ledger, schema, path)
        return _history.account_balances_at(conn, ledger, schema, path, at)


def audit(db: Database, ledger_ik: str) -> list[Problem]:
    """What is wrong with a ledger's books; empty when they hold (see ledger/audit.py)."""
    ledger = get_ledger(db, ledger_ik)

    def read(conn: Connection) -> list[Problem]:
        # One snapshot for every check, however long the scans take.
        conn.execute(sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
        return audit_books(conn, ledger)

    return db.run(read)


def rollup(db: Database, limit: int = 50_000) -> int:
    """Fold pending deltas of eventually consistent accounts; returns how many were folded."""
    return db.run(lambda conn: posting.rollup(conn, limit))


# ---------------------------------------------------------------------------- history

def balance_change(db: Database, ledger_ik: str, path: str, period: str) -> BalanceChange:
    """``balance_change(db, ledger_ik, path, period) -> BalanceChange``: how the own, child
    and total balances of ``path`` changed over ``period`` (``2025``, ``2025-Q1``,
    ``2025-02``, ``2025-02-03``, ``2025-02-03T04``, in the ledger's balanceUTCOffset), per
    currency, with the period's UTC ``start`` and ``end``. Bad period: ``invalid_input``
    naming ``period``."""
    with db.transaction() as conn:
        ledger = load_ledger(conn, ledger_ik)
        return _history.balance_change(conn, ledger, posting.load_schema(conn, ledger.id),
                                       path, period)


def reverse_ledger_entry(db: Database, *, id: str | None = None, ledger_ik: str | None = None,
                         ik: str | None = None) -> ReverseResult:
    """``reverse_ledger_entry(db, id=..., ledger_ik=None) | (db, ledger_ik=..., ik=...)
    -> ReverseResult(reversed_entry, reversing_entry, is_ik_replay)``.

    Posts a reversing entry mirroring every line at the same ``posted`` time and links the
    two (``reversed_by_id``/``reversed_at`` and ``reverses_id``); both become immutable and
    hidden from lists. Reversing again returns the same pair with ``is_ik_replay=True``.
    Errors: ``entry_not_found``; ``entry_reversed`` for reversing a reversing entry;
    ``condition_failed`` naming the account when the reversal would cross a condition the
    schema guards that account with (nothing is written)."""
    def run(conn: Connection) -> ReverseResult:
        if id is not None:
            ledger = _entryload_ledger(conn, id, ledger_ik)
            return _history.reverse_entry(conn, ledger, id)
        ledger = load_ledger(conn, ledger_ik)
        entry = _history.get_entry_by_ik(conn, ledger, ik)
        return _history.reverse_entry(conn, ledger, entry.id)
    return db.run(run)


def _entryload_ledger(conn: Connection, id: Any, ledger_ik: str | None) -> Ledger:
    """The ledger of entry ``id`` (which must be ``ledger_ik`` when given)."""
    text = str(id)
    found = conn.execute(sa.select(t.ledgers.c.ik)
                         .join(t.entries, t.entries.c.ledger_id == t.ledgers.c.id)
                         .where(t.entries.c.id == int(text))).scalar() if text.isdigit() and len(text) <= 18 else None
    if found is None or (ledger_ik is not None and found != ledger_ik):
        raise NotFoundError("entry_not_found", f"id: no entry {id!r}", field="id")
    return load_ledger(conn, found)


def list_ledger_entries(db: Database, ledger_ik: str, filters: EntryFilter | dict | None = None, *,
                        first: int | None = None, after: str | None = None,
                        last: int | None = None, before: str | None = None,
                        account: str | None = None) -> Page:
    """``list_ledger_entries(db, ledger_ik, filters=None, *, first, after, last, before,
    account=None) -> Page[HistoryEntry]``, newest ``posted`` first.

    ``filters``: an ``EntryFilter`` or its wire dict (``EntryFilter.from_input``): posted and
    created ranges or periods, entry types, tags, groups, currency, and ``reversed``
    (default False: reversed and reversing entries are left out; True: only those; None:
    all). ``account``: only entries with a line in that account path or pattern.
    Keyset pages: ``first``/``after`` forwards, ``last``/``before`` backwards; 20 by
    default, at most 200. Bad cursor, size or filter: ``invalid_input`` naming the field."""
    flt = EntryFilter.from_input(filters)
    with db.transaction() as conn:
        ledger = load_ledger(conn, ledger_ik)
        return _history.list_entries(conn, ledger, flt, first, after, last, before,
                                     account=account)


def list_lines(db: Database, ledger_ik: str, account: str | None = None,
               filters: EntryFilter | dict | None = None, *, first: int | None = None,
               after: str | None = None, last: int | None = None,
               before: str | None = None) -> Page:
    """``list_lines(db, ledger_ik, account=None, filters=None, *, first, after, last, before)
    -> Page[Line]``, newest ``posted`` first.

    ``account``: a path (``liabilities/users:alice/available``), a pattern where ``*``
    stands for one instance value or key (``liabilities/users:*/available``), a path
    ending in ``/*`` for all its descendants, or None for the whole ledger. ``filters`` as
    in ``list_ledger_entries`` (applied to each line's entry; ``currency`` to the line)."""
    flt = EntryFilter.from_input(filters)
    with db.transaction() as conn:
        ledger = load_ledger(conn, ledger_ik)
        return _history.list_lines(conn, ledger, account, flt, first, after, last, before)


def update_ledger_entry(db: Database, id: str, tags: Any = None, groups: Any = None, *,
                        ledger_ik: str | None = None) -> UpdateEntryResult:
    """``update_ledger_entry(db, id, tags=None, groups=None, *, ledger_ik=None) ->
    UpdateEntryResult(entry, change)``.

    ``tags``/``groups``: ``{key: value}`` or ``[{key, value}]``; a key given sets its value,
    a None value removes it, keys not given stay. The change is recorded (``change``, and
    ``ledger_entry_changes``); an update that changes nothing records nothing (``change``
    None). Errors: ``entry_not_found``; ``entry_reversed`` for a reversed or reversing
    entry; ``invalid_input`` naming the field."""
    def run(conn: Connection) -> UpdateEntryResult:
        return _history.update_entry(conn, _entryload_ledger(conn, id, ledger_ik), id, tags, groups)
    return db.run(run)


def ledger_entry_changes(db: Database, id: str) -> list[EntryChange]:
    """``ledger_entry_changes(db, id) -> list[EntryChange]``: the recorded tag and group
    updates of an entry, oldest first."""
    with db.transaction() as conn:
        return _history.entry_changes(conn, _entryload_ledger(conn, id, None), id)


def ik_versions(db: Database, ledger_ik: str, ik: str) -> list[HistoryEntry]:
    """``ik_versions(db, ledger_ik, ik) -> list[HistoryEntry]``: every entry posted under
    ``ik``, version 1 first. Posting under an ik whose latest entry is reversed adds the
    next version; every version but the latest is reversed. ``entry_not_found`` if none."""
    with db.transaction() as conn:
        return _history.ik_versions(conn, load_ledger(conn, ledger_ik), ik)


def entry_group(db: Database, ledger_ik: str, key: str, value: str,
                filters: EntryFilter | dict | None = None) -> EntryGroup:
    """``entry_group(db, ledger_ik, key, value, filters=None) -> EntryGroup(key, value,
    balances: list[GroupBalance(account_path, currency, amount)])``: the net change per
    account and currency of the group's entries matching ``filters`` (as in
    ``list_ledger_entries``)."""
    flt = EntryFilter.from_input(filters)
    with db.transaction() as conn:
        return _history.group_balances(conn, load_ledger(conn, ledger_ik), key, value, flt)


def list_group_entries(db: Database, ledger_ik: str, key: str, value: str,
                       filters: EntryFilter | dict | None = None, *, first: int | None = None,
                       after: str | None = None, last: int | None = None,
                       before: str | None = None) -> Page:
    """``list_group_entries(db, ledger_ik, key, value, filters=None, *, first, after, last,
    before) -> Page[HistoryEntry]``: the entries of group ``key``=``value``, paged and
    filtered as in ``list_ledger_entries``."""
    flt = EntryFilter.from_input(filters)
    with db.transaction() as conn:
        return _history.list_group_entries(conn, load_ledger(conn, ledger_ik), key, value, flt,
                                           first, after, last, before)


# ---------------------------------------------------------------------------- the façade
# What the API, the workers and the CLI may use beyond the operations above: one door into
# each capability, by public name. (Shared base modules -- db, errors, settings, fastjson,
# embedded, migrate -- are imported directly.)
from ledger.clients import (SCOPES, ApiClient, CreatedClient, active_client,  # noqa: E402
                            authenticate, create_client, list_clients, normalize_scope,
                            revoke_client, scope_allows, signing_key)
from ledger.jobs import (FAILED, MAX_PAGE as MAX_JOB_PAGE, MAX_SUBMISSION,  # noqa: E402
                         MAX_WAIT_SECONDS, PENDING, POSTED, Job, JobPage, Submission,
                         WorkResult, get_job, is_transient, list_jobs, prune_finished,
                         stale_partitions, submit_entries, wait_for_jobs, work_partition)
from ledger.model import Entry, Line  # noqa: E402
from ledger.reconcile import (CreateLinkResult, ExternalAccount, Link, Tx,  # noqa: E402
                              TxPage, create_custom_link, delete_custom_txs,
                              reconcile_tx, sync_custom_accounts, sync_custom_txs,
                              unreconciled_txs)
from ledger.stripe_sync import SyncReport as StripeSyncReport  # noqa: E402
from ledger.stripe_sync import backfill as stripe_backfill  # noqa: E402
from ledger.stripe_sync import backfill_trailing as stripe_backfill_trailing  # noqa: E402
from ledger.stripe_sync import configure_stripe  # noqa: E402
from ledger.stripe_sync import load_settings as stripe_settings  # noqa: E402
from ledger.stripe_sync import problems as stripe_problems  # noqa: E402
from ledger.stripe_sync import process_event as process_stripe_event  # noqa: E402
from ledger.stripe_sync import process_inbox as process_stripe_inbox  # noqa: E402
from ledger.stripe_sync import store_event as store_stripe_event  # noqa: E402
from ledger.stripe_sync import verify_event as verify_stripe_event  # noqa: E402
from ledger.doorbell import (POST_TASK, STRIPE_EVENT_TASK, Doorbell,  # noqa: E402
                             RecordingSend)


# ---------------------------------------------------------------------------- TEMPORARY
# The API branch's stand-ins for the contract of plan.md item 1 (config passed in), until LEDGER's branch
# lands them (the merge takes LEDGER's ledger/**, which replaces this block).
from ledger import jobs as _jobs  # noqa: E402
from ledger import stripe_sync as _stripe  # noqa: E402
from ledger.model import MAX_AMOUNT  # noqa: E402,F401 - the API's Int96 bound


def submit_entries(db, ledger_ik, entries, *, partitions, after_commit=None,  # noqa: F811
                   wait=0.0):
    return _jobs.submit_entries(db, ledger_ik, entries, after_commit=after_commit, wait=wait)


def stripe_settings(db, config):  # noqa: F811
    return _stripe.load_settings(db, config.stripe_link_id)


def configure_stripe(db, config, **kwargs):  # noqa: F811
    return _stripe.configure_stripe(db, link_id=config.stripe_link_id, **kwargs)


def process_stripe_event(db, config, event_id, client=None):  # noqa: F811
    return _stripe.process_event(db, event_id, client, link_id=config.stripe_link_id)


def process_stripe_inbox(db, config, client=None, **kwargs):  # noqa: F811
    return _stripe.process_inbox(db, client, link_id=config.stripe_link_id, **kwargs)


def stripe_backfill(db, config, since, until=None, *, client=None, progress=None):  # noqa: F811
    return _stripe.backfill(db, since, until, client=client, link_id=config.stripe_link_id,
                            progress=progress)


def stripe_backfill_trailing(db, config, client=None, **kwargs):  # noqa: F811
    return _stripe.backfill_trailing(db, client, link_id=config.stripe_link_id, **kwargs)


def stripe_problems(db, config):  # noqa: F811
    return _stripe.problems(db, config.stripe_link_id)

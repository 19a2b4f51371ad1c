"""The ledger's public operations: the one door the API, the workers and the CLI use, so
every rule is enforced on every path.

The operations below open a transaction (or retry one) and call a capability inside it; the
re-exports after them name what else callers may use, one capability at a time. Shared base
modules (db, errors, settings, fastjson, embedded, migrate) are imported directly."""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledger.audit import Problem
from ledger.audit import audit as audit_books
from ledger.commands import EntryRequest, LineInput
from ledger.db import Database
from ledger.history import balances as _balances
from ledger.history import entries as _entries
from ledger.history import queries as _queries
from ledger.history.entries import (
    entry_changes,
    entry_ledger,
    get_entry,
    get_entry_by_ik,
    update_entry,
)
from ledger.history.model import (
    AccountBalances,
    AccountInfo,
    BalanceChange,
    EntryChange,
    EntryFilter,
    EntryGroup,
    HistoryEntry,
    Page,
    PageInfo,
    ReverseResult,
    UpdateEntryResult,
)
from ledger.history.queries import group_balances, list_entries, list_ledger_accounts
from ledger.history.reversals import reverse_entry
from ledger.ledgers import (
    CreateLedgerResult,
    Ledger,
    create_ledger,
    get_ledger,
    get_ledger_by_id,
    list_ledgers,
    sole_ledger_ik,
    load_ledger,
)
from ledger.posting import rollup as _rollup
from ledger.posting.engine import post_entries
from ledger.posting.group_commit import DEFAULT_MAX_BATCH as GROUP_MAX_BATCH
from ledger.posting.group_commit import CommitStats, GroupCommitter
from ledger.posting.model import Entry, Line, PostResult
from ledger.schema.model import SchemaIssue, SchemaVersion
from ledger.schema.store import (
    get_schema,
    list_schema_versions,
    load_schema,
    store_schema,
    verify_schema,
)
from ledger.text import check_storable


def add_ledger_entry(db: Database, ledger_ik: str, request: EntryRequest,
                     committer: GroupCommitter | None = None) -> PostResult:
    """Post one entry. With ``committer`` (the process's ``GroupCommitter`` on ``db``), it
    shares a transaction with the posts that arrive while another batch of the ledger is in
    flight, and answers as it would alone."""
    if committer is not None:
        return committer.post(ledger_ik, request)
    return add_ledger_entries(db, ledger_ik, [request])[0]


def add_ledger_entries(db: Database, ledger_ik: str, requests: list[EntryRequest],
                       committer: GroupCommitter | None = None) -> list[PostResult]:
    """Post entries atomically (all or none); the whole transaction is retried on
    deadlocks and serialization failures, which the ik makes safe. With ``committer``,
    the entries wait their turn among the ledger's concurrent posts and go as one unit."""
    if committer is not None:
        return committer.post_atomic(ledger_ik, requests)

    def run(conn: Connection) -> list[PostResult]:
        return post_entries(conn, load_ledger(conn, ledger_ik), requests)
    return db.run(run)


async def add_ledger_entry_async(committer: GroupCommitter, ledger_ik: str,
                                 request: EntryRequest) -> PostResult:
    """``add_ledger_entry`` through ``committer`` for a caller on an event loop, which stays
    free while the entry waits for its batch."""
    return await committer.post_async(ledger_ik, request)


async def add_ledger_entries_async(committer: GroupCommitter, ledger_ik: str,
                                   requests: list[EntryRequest]) -> list[PostResult]:
    """``add_ledger_entries`` through ``committer`` for a caller on an event loop."""
    return await committer.post_atomic_async(ledger_ik, requests)


def get_ledger_entry(db: Database, *, id: str | None = None, ledger_ik: str | None = None,
                     ik: str | None = None, version: int | None = None) -> HistoryEntry:
    """An entry by id, or by ik within a ledger (the latest version of that ik, or
    ``version``). Returns a ``HistoryEntry`` (an ``Entry`` plus ik version and reversal
    links). NotFoundError ``entry_not_found``."""
    with db.transaction() as conn:
        if id is not None:
            return get_entry(conn, entry_ledger(conn, id, ledger_ik), id)
        return get_entry_by_ik(conn, load_ledger(conn, ledger_ik), ik, version)


def account_balances(db: Database, ledger_ik: str, path: str, at: Any = None) -> AccountBalances:
    """Own, child and total balances of ``path`` per currency.

    ``at`` None: the latest balances (every committed line, future-dated ones included).
    ``at`` a datetime or ISO 8601 time: the balances at that moment (lines posted at or
    before it). ``at`` a period (``2025``, ``2025-Q1``, ``2025-02``, ``2025-02-03``,
    ``2025-02-03T04``): the balances at the end of that period in the ledger's
    balanceUTCOffset. A past read costs one index probe per (account, currency)."""
    if at is None:
        with db.autocommit() as conn:
            return _balances.latest_balances(conn, ledger_ik, path)
    with db.transaction() as conn:
        ledger = load_ledger(conn, ledger_ik)
        schema = load_schema(conn, ledger.id)
        return _balances.account_balances_at(conn, ledger, schema, path, at)


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
    return db.run(lambda conn: _rollup.rollup(conn, limit))


def balance_change(db: Database, ledger_ik: str, path: str, period: str) -> BalanceChange:
    """``balance_change(db, ledger_ik, path, period) -> BalanceChange``: how the own, child
    and total balances of ``path`` changed over ``period`` (``2025``, ``2025-Q1``,
    ``2025-02``, ``2025-02-03``, ``2025-02-03T04``, in the ledger's balanceUTCOffset), per
    currency, with the period's UTC ``start`` and ``end``. Bad period: ``invalid_input``
    naming ``period``."""
    with db.transaction() as conn:
        ledger = load_ledger(conn, ledger_ik)
        return _balances.balance_change(conn, ledger, load_schema(conn, ledger.id),
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
            ledger = entry_ledger(conn, id, ledger_ik)
            return reverse_entry(conn, ledger, id)
        ledger = load_ledger(conn, ledger_ik)
        entry = get_entry_by_ik(conn, ledger, ik)
        return reverse_entry(conn, ledger, entry.id)
    return db.run(run)


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
        return list_entries(conn, ledger, flt, first, after, last, before,
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
        return _queries.list_lines(conn, ledger, account, flt, first, after, last, before)


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
        return update_entry(conn, entry_ledger(conn, id, ledger_ik), id, tags, groups)
    return db.run(run)


def ledger_entry_changes(db: Database, id: str) -> list[EntryChange]:
    """``ledger_entry_changes(db, id) -> list[EntryChange]``: the recorded tag and group
    updates of an entry, oldest first."""
    with db.transaction() as conn:
        return entry_changes(conn, entry_ledger(conn, id, None), id)


def ik_versions(db: Database, ledger_ik: str, ik: str) -> list[HistoryEntry]:
    """``ik_versions(db, ledger_ik, ik) -> list[HistoryEntry]``: every entry posted under
    ``ik``, version 1 first. Posting under an ik whose latest entry is reversed adds the
    next version; every version but the latest is reversed. ``entry_not_found`` if none."""
    with db.transaction() as conn:
        return _entries.ik_versions(conn, load_ledger(conn, ledger_ik), ik)


def entry_group(db: Database, ledger_ik: str, key: str, value: str,
                filters: EntryFilter | dict | None = None) -> EntryGroup:
    """``entry_group(db, ledger_ik, key, value, filters=None) -> EntryGroup(key, value,
    balances: list[GroupBalance(account_path, currency, amount)])``: the net change per
    account and currency of the group's entries matching ``filters`` (as in
    ``list_ledger_entries``)."""
    flt = EntryFilter.from_input(filters)
    with db.transaction() as conn:
        return group_balances(conn, load_ledger(conn, ledger_ik), key, value, flt)


def list_group_entries(db: Database, ledger_ik: str, key: str, value: str,
                       filters: EntryFilter | dict | None = None, *, first: int | None = None,
                       after: str | None = None, last: int | None = None,
                       before: str | None = None) -> Page:
    """``list_group_entries(db, ledger_ik, key, value, filters=None, *, first, after, last,
    before) -> Page[HistoryEntry]``: the entries of group ``key``=``value``, paged and
    filtered as in ``list_ledger_entries``."""
    flt = EntryFilter.from_input(filters)
    with db.transaction() as conn:
        return _queries.list_group_entries(conn, load_ledger(conn, ledger_ik), key, value, flt,
                                           first, after, last, before)


# ---------------------------------------------------------------------------- the façade
# What the API, the workers and the CLI may use beyond the operations above: one door into
# each capability, by public name.
from ledger.amounts import MAX_AMOUNT, is_canonical_amount  # noqa: E402
from ledger.clients import (  # noqa: E402
    SCOPES,
    ApiClient,
    CreatedClient,
    active_client,
    authenticate,
    create_client,
    dummy_hash,
    list_clients,
    normalize_scope,
    revoke_client,
    scope_allows,
    signing_key,
)
from ledger.jobs.claims import is_transient, stale_partitions, work_partition  # noqa: E402
from ledger.jobs.doorbell import POST_TASK, STRIPE_EVENT_TASK, Doorbell, RecordingSend  # noqa: E402
from ledger.jobs.model import (  # noqa: E402
    DEFAULT_BATCH,
    FAILED,
    MAX_SUBMISSION,
    MAX_WAIT_SECONDS,
    PENDING,
    POSTED,
    Job,
    JobPage,
    Submission,
    WorkResult,
)
from ledger.jobs.model import MAX_PAGE as MAX_JOB_PAGE
from ledger.jobs.outbox import (  # noqa: E402
    get_job,
    list_jobs,
    prune_finished,
    submit_entries,
    wait_for_jobs,
)
from ledger.reconcile.entries import reconcile_tx  # noqa: E402
from ledger.reconcile.links import create_custom_link, sync_custom_accounts  # noqa: E402
from ledger.reconcile.model import CreateLinkResult, ExternalAccount, Link, Tx, TxPage  # noqa: E402
from ledger.reconcile.txs import delete_custom_txs, sync_custom_txs, unreconciled_txs  # noqa: E402
from ledger.stripe.backfill import backfill as stripe_backfill  # noqa: E402
from ledger.stripe.backfill import backfill_trailing as stripe_backfill_trailing  # noqa: E402
from ledger.stripe.backfill import problems as stripe_problems  # noqa: E402
from ledger.stripe.config import configure_stripe  # noqa: E402
from ledger.stripe.config import load_settings as stripe_settings  # noqa: E402
from ledger.stripe.events import process_event as process_stripe_event  # noqa: E402
from ledger.stripe.events import process_inbox as process_stripe_inbox  # noqa: E402
from ledger.stripe.events import store_event as store_stripe_event  # noqa: E402
from ledger.stripe.events import verify_event as verify_stripe_event  # noqa: E402
from ledger.stripe.model import SyncReport as StripeSyncReport  # noqa: E402
from ledger.secret_store import check_secrets, rotate_secrets  # noqa: E402
from ledger.secrets import Keyring, SecretKeyError, generate_key, key_file_value  # noqa: E402
from ledger.workspace import Workspace, get_workspace  # noqa: E402
from ledger.observe.logs import (  # noqa: E402
    JsonFormatter,
    current_log_fields,
    log_fields,
    use_json_logs,
)
from ledger.observe.snapshot import PartitionBacklog, Snapshot  # noqa: E402
from ledger.observe.snapshot import snapshot as queue_snapshot  # noqa: E402
from ledger.observe.tracing import trace_database_clients, tracer_provider  # noqa: E402
from ledger.heap import freeze_startup as freeze_startup_heap  # noqa: E402

__all__ = [
    # operations defined here
    "account_balances", "add_ledger_entries", "add_ledger_entries_async", "add_ledger_entry",
    "add_ledger_entry_async", "audit", "balance_change",
    "entry_group", "get_ledger_entry", "ik_versions", "ledger_entry_changes",
    "list_group_entries", "list_ledger_entries", "list_lines", "reverse_ledger_entry",
    "rollup", "update_ledger_entry",
    # group commit of synchronous posts
    "CommitStats", "GROUP_MAX_BATCH", "GroupCommitter",
    # schemas and ledgers
    "get_schema", "list_schema_versions", "store_schema", "verify_schema", "SchemaIssue",
    "SchemaVersion", "create_ledger", "get_ledger", "get_ledger_by_id", "list_ledgers",
    "load_ledger", "Ledger", "CreateLedgerResult", "list_ledger_accounts",
    "sole_ledger_ik",
    # values
    "AccountBalances", "AccountInfo", "BalanceChange", "Entry", "EntryChange", "EntryFilter",
    "EntryGroup", "EntryRequest", "HistoryEntry", "Line", "LineInput", "Page", "PageInfo",
    "PostResult", "Problem", "ReverseResult", "UpdateEntryResult", "MAX_AMOUNT",
    "is_canonical_amount",
    "check_storable",
    # API clients
    "SCOPES", "ApiClient", "CreatedClient", "active_client", "authenticate", "dummy_hash",
    "create_client", "list_clients", "normalize_scope", "revoke_client", "scope_allows",
    "signing_key",
    # posting jobs
    "DEFAULT_BATCH", "FAILED", "MAX_JOB_PAGE", "MAX_SUBMISSION", "MAX_WAIT_SECONDS", "PENDING",
    "POSTED", "Job", "JobPage", "Submission", "WorkResult", "get_job", "is_transient",
    "list_jobs", "prune_finished", "stale_partitions", "submit_entries", "wait_for_jobs",
    "work_partition", "POST_TASK", "STRIPE_EVENT_TASK", "Doorbell", "RecordingSend",
    # reconciliation
    "CreateLinkResult", "ExternalAccount", "Link", "Tx", "TxPage", "create_custom_link",
    "delete_custom_txs", "reconcile_tx", "sync_custom_accounts", "sync_custom_txs",
    "unreconciled_txs",
    # Stripe
    "StripeSyncReport", "configure_stripe", "process_stripe_event", "process_stripe_inbox",
    "stripe_backfill", "stripe_backfill_trailing", "stripe_problems", "stripe_settings",
    "store_stripe_event", "verify_stripe_event",
    # secrets at rest
    "Keyring", "SecretKeyError", "check_secrets", "generate_key", "key_file_value",
    "rotate_secrets",
    # the deployment
    "Workspace", "get_workspace",
    # observability
    "JsonFormatter", "PartitionBacklog", "Snapshot", "current_log_fields", "log_fields",
    "queue_snapshot", "trace_database_clients", "tracer_provider", "use_json_logs",
    # the process
    "freeze_startup_heap",
]

from ledger.stripe.config import missing_for_sync as stripe_missing_for_sync  # noqa: E402

__all__ += ["stripe_missing_for_sync"]

# ---------------------------------------------------------------------------- accounts opened ahead (seed 004)
from ledger.posting.accounts import OpenedAccount, open_account  # noqa: E402


def open_ledger_account(db: Database, ledger_ik: str, path: Any,
                        currency: Any = None) -> OpenedAccount:
    """``open_ledger_account(db, ledger_ik, path, currency=None) -> OpenedAccount``: the
    account at ``path`` with a zero balance in ``currency``, before any entry touches it
    (``ledger/posting/accounts.py``). Idempotent (``is_new`` False the second time); a path
    the schema does not allow or a currency the account cannot hold is ``invalid_input`` /
    ``account_not_found`` naming the field."""
    def run(conn: Connection) -> OpenedAccount:
        ledger = load_ledger(conn, ledger_ik)
        return open_account(conn, ledger, load_schema(conn, ledger.id), path, currency)
    return db.run(run)


__all__ += ["OpenedAccount", "open_ledger_account"]


from ledger.history.account_lines import AccountLines, EntryRef, account_lines  # noqa: E402
from ledger.ledgers import parse_id  # noqa: E402


def list_account_lines(db: Database, ledger_ik: str, path: str, *, first: int | None = None,
                       after: str | None = None, period: str | None = None) -> AccountLines:
    """``list_account_lines(db, ledger_ik, path, *, first, after, period) -> AccountLines``:
    one page of the account's lines, newest posted first, reversed ones included, each with
    its running balance, and the entries they belong to (id, ik, type, description).
    Pages, cursors and errors as in ``list_lines``."""
    with db.transaction() as conn:
        return account_lines(conn, load_ledger(conn, ledger_ik), path, first, after, period)


def line_running_balances(db: Database, line_ids: list[str]) -> dict[str, int]:
    """``line_running_balances(db, line_ids) -> {line id: running balance}``: the own balance
    of each line's account in its currency right after the line, in (posted, id) order,
    counting every committed line; ids of no line are left out."""
    ids = [n for n in map(parse_id, line_ids) if n is not None]
    with db.transaction() as conn:
        return {str(k): v for k, v in _rollup.running_balances(conn, ids).items()}


__all__ += ["AccountLines", "EntryRef", "line_running_balances", "list_account_lines"]

# ---------------------------------------------------------------------------- holds
from ledger.holds.facade import (  # noqa: E402
    Hold,
    HoldBalances,
    HoldResult,
    add_ledger_hold,
    add_ledger_holds,
    commit_ledger_entry,
    expire_holds,
    get_ledger_hold,
    hold_balances,
    list_all_lines,
    list_hold_lines,
    list_lines_by_status,
    void_ledger_entry,
)

__all__ += [
    "Hold", "HoldBalances", "HoldResult", "add_ledger_hold", "add_ledger_holds",
    "commit_ledger_entry", "expire_holds", "get_ledger_hold", "hold_balances", "list_hold_lines",
    "void_ledger_entry", "list_all_lines", "list_lines_by_status"
]

# ---------------------------------------------------------------------------- events
from ledger.events.facade import (  # noqa: E402
    EVENT_TYPES,
    Event,
    EventPage,
    list_events,
    CreatedEndpoint,
    Delivery,
    DeliveryRun,
    WebhookEndpoint,
    backoff_seconds,
    body_of,
    configure_events,
    create_webhook_endpoint,
    delete_webhook_endpoint,
    deliver_webhook_endpoint,
    due_webhook_endpoints,
    enable_webhook_endpoint,
    list_webhook_deliveries,
    list_webhook_endpoints,
    raise_unreconciled_alerts,
    redeliver_webhook_event,
    signed_headers,
)

__all__ += [
    "EVENT_TYPES", "Event", "EventPage", "list_events", "CreatedEndpoint", "Delivery",
    "DeliveryRun", "WebhookEndpoint", "backoff_seconds", "body_of", "configure_events",
    "create_webhook_endpoint", "delete_webhook_endpoint", "deliver_webhook_endpoint",
    "due_webhook_endpoints", "enable_webhook_endpoint", "list_webhook_deliveries",
    "list_webhook_endpoints", "raise_unreconciled_alerts", "redeliver_webhook_event",
    "signed_headers"
]

# ---------------------------------------------------------------------------- monitors
from ledger.monitors.facade import (  # noqa: E402
    BalanceMonitor,
    MonitorCondition,
    MONITOR_KINDS,
    MONITOR_OPS,
    create_balance_monitor,
    delete_balance_monitor,
    get_balance_monitor,
    list_balance_monitors,
    update_balance_monitor,
)

__all__ += [
    "BalanceMonitor", "MonitorCondition", "MONITOR_KINDS", "MONITOR_OPS", "create_balance_monitor",
    "delete_balance_monitor", "get_balance_monitor", "list_balance_monitors",
    "update_balance_monitor"
]

# ---------------------------------------------------------------------------- the dashboard (api/ui)
from ledger.history.overview import (  # noqa: E402
    BalancePoint,
    ChartNode,
    LedgerActivity,
    balance_series,
    balances_of,
    chart_nodes,
    LedgerBacklog,
    find_account_paths,
    ledger_backlog,
    ledgers_activity,
)
from ledger.jobs.retry import retry_job  # noqa: E402
from ledger.reconcile.overview import linked_paths, list_links, txs_by_external_id  # noqa: E402
from ledger.stripe.status import SyncState as StripeSyncState  # noqa: E402
from ledger.stripe.status import sync_state as stripe_sync_state  # noqa: E402

__all__ += ["BalancePoint", "ChartNode", "LedgerActivity", "balance_series", "balances_of",
            "chart_nodes", "find_account_paths", "ledgers_activity", "LedgerBacklog",
            "ledger_backlog",
            "retry_job", "linked_paths", "list_links", "txs_by_external_id",
            "StripeSyncState", "stripe_sync_state"]

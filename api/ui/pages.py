"""The dashboard's pages: each one a handful of bounded reads through `ledger.service`."""
from __future__ import annotations

import difflib
import json
from datetime import date
from typing import Optional

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import RedirectResponse

from api import deps
from api.ui.render import charts, page
from api.ui.routing import UiRoute
from api.ui.session import Viewer, viewer
from ledger import service
from ledger.errors import BadRequestError, LedgerError, NotFoundError

router = APIRouter(prefix="/ui", route_class=UiRoute, include_in_schema=False)

LINES_PER_PAGE = 25
ACCOUNTS_PER_PAGE = 20
HOLDS_PER_PAGE = 20
MONITORS_SHOWN = 50


@router.get("")
@router.get("/")
def home():
    return RedirectResponse("/ui/ledgers", status_code=303)


@router.get("/ledgers")
def ledgers(request: Request, who: Viewer = Depends(viewer)):
    found = service.ledgers_activity(deps.database(request))
    return page(request, "ledgers.html", viewer=who, ledgers=found)


def chart_tree(chart: list[service.ChartNode],
               accounts: list[service.AccountInfo]) -> list[tuple[str, int, str]]:
    """(path, depth, kind) in path order: the schema's chart down to its template nodes
    (``chart``, on the first page only) and a page of the ledger's accounts, with every node
    above them. ``kind``: ``account`` (holds lines), ``template``, ``instance`` (of a
    template, above its accounts) or ``chart`` (an account of the schema)."""
    nodes = {n.path: ("template" if n.template else "chart") for n in chart}
    for account in accounts:
        parts = account.path.split("/")
        for depth in range(1, len(parts)):
            above = "/".join(parts[:depth])
            nodes.setdefault(above, "instance" if ":" in parts[depth - 1] else "chart")
        nodes["/".join(parts)] = "account"
    return [(path, path.count("/"), kind) for path, kind in sorted(nodes.items())]


@router.get("/ledgers/{ledger_ik}")
def ledger(request: Request, ledger_ik: str, at: Optional[str] = Query(None),
           after: Optional[str] = Query(None), who: Viewer = Depends(viewer)):
    db = deps.database(request)
    found = service.get_ledger(db, ledger_ik)
    accounts = service.list_ledger_accounts(db, ledger_ik, first=ACCOUNTS_PER_PAGE, after=after)
    chart = service.chart_nodes(db, ledger_ik) if after is None else []
    tree = chart_tree(chart, accounts.nodes)
    balances = service.balances_of(db, ledger_ik, [p for p, _, _ in tree], at or None)
    # A ledger has at most 1,000 monitors; the page shows the oldest MONITORS_SHOWN.
    monitors = service.list_balance_monitors(db, ledger_ik) if after is None else []
    return page(request, "ledger.html", viewer=who, ledger=found, tree=tree,
                balances=balances, at=at or "", page_info=accounts.page_info,
                monitors=monitors[:MONITORS_SHOWN], monitor_count=len(monitors))


def account_lines(db, ledger_ik: str, path: str, after: Optional[str]):
    """A page of the account's lines; None for a template node (``liabilities/users``),
    which has balances (its instances') but no lines of its own."""
    try:
        return service.list_account_lines(db, ledger_ik, path, first=LINES_PER_PAGE,
                                          after=after)
    except BadRequestError as exc:
        if exc.field != "account":
            raise
        return None


def account_holds(db, ledger_ik: str, path: str, at: Optional[str],
                  holds_after: Optional[str] = None):
    """Pending and available balances and a page of the holds' lines of ``path``, newest
    hold first, after the cursor ``holds_after``; no holds for a template node, which has
    no lines of its own."""
    holding = service.hold_balances(db, ledger_ik, path, at=at or None)
    try:
        holds = service.list_hold_lines(db, ledger_ik, path, status=None,
                                        first=HOLDS_PER_PAGE, after=holds_after)
    except BadRequestError as exc:
        if exc.field != "account":
            raise
        holds = None
    return holding, holds


@router.get("/ledgers/{ledger_ik}/account")
def account(request: Request, ledger_ik: str, path: str = Query(...),
            after: Optional[str] = Query(None), scale: str = Query("daily"),
            at: Optional[str] = Query(None), holds_after: Optional[str] = Query(None),
            who: Viewer = Depends(viewer)):
    db = deps.database(request)
    found = service.get_ledger(db, ledger_ik)
    balances = service.account_balances(db, ledger_ik, path, at=at or None)
    lines = account_lines(db, ledger_ik, path, after)
    # The chart ends at the newest line, so an account of past data still shows its history.
    end = lines.lines[0].posted.date() if lines and lines.lines and after is None \
        else date.today()
    points = 30 if scale == "daily" else 12
    series = service.balance_series(db, ledger_ik, path, end=end, scale=scale, points=points)
    holding, holds = account_holds(db, ledger_ik, path, at, holds_after)
    return page(request, "account.html", viewer=who, ledger=found, path=path,
                balances=balances, lines=lines, charts=charts(series), scale=scale,
                at=at or "", holding=holding, holds=holds)


@router.get("/ledgers/{ledger_ik}/entries/{entry_id}")
def entry(request: Request, ledger_ik: str, entry_id: str, who: Viewer = Depends(viewer)):
    db = deps.database(request)
    found = service.get_ledger_entry(db, id=entry_id, ledger_ik=ledger_ik)
    versions = service.ik_versions(db, ledger_ik, found.ik)
    return page(request, "entry.html", viewer=who, ledger=service.get_ledger(db, ledger_ik),
                entry=found, versions=versions, hold=service.get_ledger_hold(db, found.id))


@router.get("/ledgers/{ledger_ik}/entries/{entry_id}/reverse")
def confirm_reverse(request: Request, ledger_ik: str, entry_id: str,
                    who: Viewer = Depends(viewer)):
    if not who.can_write:
        raise HTTPException(403, "this API client is read-only: it can look but not act")
    db = deps.database(request)
    found = service.get_ledger_entry(db, id=entry_id, ledger_ik=ledger_ik)
    return page(request, "confirm_reverse.html", viewer=who,
                ledger=service.get_ledger(db, ledger_ik), entry=found)


HOLD_ACTIONS = ("commit", "void")


@router.get("/ledgers/{ledger_ik}/entries/{entry_id}/{action}")
def confirm_hold(request: Request, ledger_ik: str, entry_id: str, action: str,
                 who: Viewer = Depends(viewer)):
    """(Declared after ``reverse``, which its path would shadow.) The confirmation before committing (posting all it reserved) or voiding a hold."""
    if action not in HOLD_ACTIONS:
        raise HTTPException(404, "no such page")
    if not who.can_write:
        raise HTTPException(403, "this API client is read-only: it can look but not act")
    db = deps.database(request)
    found = service.get_ledger_entry(db, id=entry_id, ledger_ik=ledger_ik)
    hold = service.get_ledger_hold(db, found.id)
    if hold is None:
        raise HTTPException(404, "this entry is no hold")
    return page(request, "confirm_hold.html", viewer=who, action=action,
                ledger=service.get_ledger(db, ledger_ik), entry=found, hold=hold)


def schema_diff(old: service.SchemaVersion, new: service.SchemaVersion) -> list[str]:
    return list(difflib.unified_diff(
        json.dumps(old.json, indent=2, sort_keys=True).splitlines(),
        json.dumps(new.json, indent=2, sort_keys=True).splitlines(),
        f"version {old.version}", f"version {new.version}", lineterm="", n=2))


@router.get("/ledgers/{ledger_ik}/schema")
def schema(request: Request, ledger_ik: str, base: Optional[int] = Query(None, alias="from"),
           to: Optional[int] = Query(None), who: Viewer = Depends(viewer)):
    db = deps.database(request)
    found = service.get_ledger(db, ledger_ik)
    versions = service.list_schema_versions(db, found.schema_key)
    by_number = {v.version: v for v in versions}
    newest = versions[-1]
    shown = by_number.get(to, newest) if to is not None else newest
    older = by_number.get(base if base is not None else shown.version - 1)
    diff = schema_diff(older, shown) if older is not None and older is not shown else []
    types = (shown.json.get("ledgerEntries") or {}).get("types") or []
    return page(request, "schema.html", viewer=who, ledger=found, versions=versions,
                shown=shown, older=older, diff=diff, types=types)


@router.get("/ledgers/{ledger_ik}/jobs")
def jobs(request: Request, ledger_ik: str, after: Optional[str] = Query(None),
         who: Viewer = Depends(viewer)):
    db = deps.database(request)
    found = service.get_ledger(db, ledger_ik)
    backlog = service.queue_snapshot(db, deps.settings(request).partitions)
    failed = service.list_jobs(db, ledger_ik, service.FAILED, first=25, after=after)
    return page(request, "jobs.html", viewer=who, ledger=found, backlog=backlog, failed=failed,
                mine=service.ledger_backlog(db, ledger_ik))


@router.get("/ledgers/{ledger_ik}/reconciliation")
def reconciliation(request: Request, ledger_ik: str, who: Viewer = Depends(viewer)):
    db = deps.database(request)
    found = service.get_ledger(db, ledger_ik)
    unreconciled = {path: service.unreconciled_txs(db, ledger_ik, path, first=20)
                    for path in service.linked_paths(db, ledger_ik)}
    stripe = service.stripe_settings(db, deps.settings(request))
    problems = service.stripe_problems(db, deps.settings(request)) if stripe.ledger_ik else []
    ages = service.queue_snapshot(db, deps.settings(request).partitions).stripe_cursor_age_seconds
    return page(request, "reconciliation.html", viewer=who, ledger=found,
                links=service.list_links(db), unreconciled=unreconciled, stripe=stripe,
                problems=problems[:50], problem_count=len(problems), cursor_ages=ages,
                missing=service.stripe_missing_for_sync(stripe),
                sync=service.stripe_sync_state(db, stripe.link_id))


@router.get("/search")
def search(request: Request, q: str = Query(""), ledger: Optional[str] = Query(None),
           who: Viewer = Depends(viewer)):
    """An entry ik (in the chosen ledger), an account path, or a tx's external id."""
    db = deps.database(request)
    all_ledgers = service.list_ledgers(db)
    q = q.strip()
    hits: dict = {"entry": None, "account": None, "paths": [], "txs": []}
    if q and ledger:
        try:
            hits["entry"] = service.get_ledger_entry(db, ledger_ik=ledger, ik=q)
        except NotFoundError:
            pass
        try:
            hits["account"] = service.account_balances(db, ledger, q)
        except LedgerError:
            pass
        try:
            hits["paths"] = [p for p in service.find_account_paths(db, ledger, q, limit=20)
                             if p != q]
        except NotFoundError:
            pass
    if q:
        hits["txs"] = service.txs_by_external_id(db, q)
    return page(request, "search.html", viewer=who, ledgers=all_ledgers, q=q,
                chosen=ledger or "", hits=hits)

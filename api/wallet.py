"""REST reads of a wallet's ledger (seed 004): an account's balances, its lines with their
running balance, an entry by ik, and opening an account ahead of its first entry.

Same token, scopes and typed error bodies as the rest of ``/v1``; each handler is one call
into `ledger.service`. Amounts are strings of integers in minor units, times ISO 8601.
An account path keeps its slashes in the URL: ``/v1/ledgers/l1/accounts/liabilities/users:
alice/available``; the lines of an account are at that URL plus ``/lines``.
"""
from __future__ import annotations

from typing import Optional

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api import deps, jsonbody
from api.auth import require_scope
from api.middleware import request_body
from api.errors import STATUS_OF, error_response
from api.holds import pending_lines_page
from api.v1 import _TOO_DEEP, _TYPED_ERROR
from ledger import service
from ledger.errors import BadRequestError, LedgerError

router = APIRouter(prefix="/v1", tags=["wallet reads"])

_NOT_FOUND = {"description": "No such ledger, entry, or account in the schema",
              "content": _TYPED_ERROR}
_BAD = {"description": "A bad path, time, period, page size or cursor; the field is named",
        "content": _TYPED_ERROR}

# ---------------------------------------------------------------------------- wire shapes


def _amounts(values: dict[str, int]) -> dict[str, str]:
    return {currency: str(amount) for currency, amount in values.items()}


def _line(line: service.Line, entry: dict, entry_description: Optional[str]) -> dict:
    return {"id": line.id, "key": line.key, "account": {"path": line.account_path},
            "amount": str(line.amount), "currency": line.currency,
            "runningBalance": (str(line.running_balance)
                               if line.running_balance is not None else None),
            "posted": line.posted.isoformat(), "created": line.created.isoformat(),
            "description": line.description or entry_description, "entry": entry}


def _entry(entry: service.HistoryEntry) -> dict:
    ref = {"id": entry.id, "ik": entry.ik, "type": entry.type}
    return {"id": entry.id, "ik": entry.ik, "ikVersion": entry.ik_version, "type": entry.type,
            "description": entry.description, "posted": entry.posted.isoformat(),
            "created": entry.created.isoformat(), "tags": entry.tags, "groups": entry.groups,
            "reverses": entry.reverses_id and {"id": entry.reverses_id},
            "reversedBy": entry.reversed_by_id and {"id": entry.reversed_by_id},
            "lines": [_line(x, ref, entry.description) for x in entry.lines]}


_OPEN_BODY = {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["path"], "additionalProperties": False,
    "properties": {
        "path": {"type": "string", "description": "An account of the schema, or an instance "
                                                  "of a template: liabilities/users:alice/available"},
        "currency": {"type": "string", "description": "Required for a multi-currency "
                                                      "account; else its own currency."}}}}}}


# ---------------------------------------------------------------------------- endpoints
# The lines route comes first: an account path may hold slashes, so ".../lines" would
# otherwise read as an account named "lines".

@router.get("/ledgers/{ledger_ik}/accounts/{path:path}/lines",
            summary="An account's lines, newest posted first, each with its running balance",
            responses={404: _NOT_FOUND, 422: _BAD})
def account_lines(ledger_ik: str, path: str, request: Request,
                  first: int = Query(20, ge=0, le=200),
                  after: Optional[str] = Query(None, description="endCursor of the previous page"),
                  period: Optional[str] = Query(None, description="Only lines posted in this "
                                                "period (2025, 2025-Q1, 2025-02, 2025-02-03)"),
                  status: str = Query("posted", description="posted; pending: the lines of "
                                      "the account's pending holds; all: both"),
                  _principal=Depends(require_scope("read"))):
    """Reversed and reversing lines are listed too, so that every line's ``runningBalance``
    is the one before it plus its ``amount``."""
    try:
        if status != "posted":
            return pending_lines_page(request, ledger_ik, path, status, first, after, period)
        found = service.list_account_lines(deps.database(request), ledger_ik, path,
                                           first=first, after=after, period=period)
    except LedgerError as exc:
        return error_response(exc)
    out = []
    for line in found.lines:
        e = found.entries[line.entry_id]
        out.append(_line(line, {"id": e.id, "ik": e.ik, "type": e.type}, e.description))
    info = found.page_info
    return {"lines": out, "pageInfo": {"endCursor": info.end_cursor,
                                       "hasNextPage": info.has_next_page}}


@router.get("/ledgers/{ledger_ik}/accounts/{path:path}",
            summary="An account's own, child and total balances per currency, posted, "
                    "pending and available (holds)",
            responses={404: _NOT_FOUND, 422: _BAD})
def account(ledger_ik: str, path: str, request: Request,
            at: Optional[str] = Query(None, description="A time (ISO 8601): the balances "
                                      "then; or a period (2025-02): at its end"),
            _principal=Depends(require_scope("read"))):
    try:
        b = service.account_balances(deps.database(request), ledger_ik, path, at=at)
        h = service.hold_balances(deps.database(request), ledger_ik, path, at=at)
    except LedgerError as exc:
        return error_response(exc)
    return {"ledger": {"ik": ledger_ik}, "path": b.path, "type": b.type, "at": at,
            "ownBalances": _amounts(b.own), "childBalances": _amounts(b.child),
            "balances": _amounts(b.total),
            # With holds (ledger/holds/): pending counts every pending line, available
            # only their decreases.
            "ownPendingBalances": _amounts(h.own_pending),
            "ownAvailableBalances": _amounts(h.own_available),
            "pendingBalances": _amounts(h.total_pending),
            "availableBalances": _amounts(h.total_available)}


@router.get("/ledgers/{ledger_ik}/entries/{entry_ik}",
            summary="An entry by its ik (the latest version), with its lines",
            responses={404: _NOT_FOUND, 422: _BAD})
def entry(ledger_ik: str, entry_ik: str, request: Request,
          _principal=Depends(require_scope("read"))):
    try:
        found = service.get_ledger_entry(deps.database(request), ledger_ik=ledger_ik, ik=entry_ik)
    except LedgerError as exc:
        return error_response(exc)
    return _entry(found)


@router.post("/ledgers/{ledger_ik}/accounts",
             summary="Open an account ahead of its first entry (idempotent)",
             openapi_extra={"requestBody": _OPEN_BODY},
             responses={201: {"description": "Opened"},
                        200: {"description": "Already open: nothing changed"},
                        400: {"description": "The body nests deeper than "
                                             "LEDGER_MAX_JSON_DEPTH", "content": _TYPED_ERROR},
                        404: _NOT_FOUND,
                        422: {"description": "A path the schema does not allow, a currency "
                                             "the account cannot hold, or a body that is not "
                                             "that object", "content": _TYPED_ERROR}})
async def open_account(ledger_ik: str, request: Request,
                       _principal=Depends(require_scope("write"))):
    try:
        body = jsonbody.loads(await request_body(request), deps.settings(request).max_json_depth)
        if not isinstance(body, dict):
            raise BadRequestError("invalid_input", "body: expected {\"path\": ..., "
                                  "\"currency\": ...}", field="body")
        unknown = sorted(set(body) - {"path", "currency"})
        if unknown:
            raise BadRequestError("invalid_input", f"{unknown[0]}: unknown field (give path "
                                  "and currency)", field=unknown[0])
        opened = await run_in_threadpool(service.open_ledger_account, deps.database(request),
                                         ledger_ik, body.get("path"), body.get("currency"))
    except LedgerError as exc:
        return error_response(exc, statuses=_TOO_DEEP if exc.code == "json_too_deep"
                              else STATUS_OF)
    return JSONResponse({"ledger": {"ik": ledger_ik}, "path": opened.path, "type": opened.type,
                         "consistency": opened.consistency, "currency": opened.currency,
                         "created": opened.created.isoformat()},
                        status_code=201 if opened.is_new else 200)

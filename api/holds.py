"""REST holds (two-phase posting): post entries as holds, commit or void one by its ik.

Synchronous, unlike ``POST /v1/ledgers/{ik}/entries``: a hold answers whether it fits at
once, which is what an authorisation needs. Same token, scopes and typed error bodies as
the rest of ``/v1``; each handler is one call into `ledger.service`."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api import deps, jsonbody
from api.auth import require_scope
from api.errors import STATUS_OF, error_response
from api.v1 import _ENTRY_SCHEMA, _TOO_DEEP, _TYPED_ERROR
from ledger import service
from ledger.errors import BadRequestError, LedgerError

router = APIRouter(prefix="/v1", tags=["holds"])

_ANSWERS = {400: {"description": "The body nests deeper than LEDGER_MAX_JSON_DEPTH",
                  "content": _TYPED_ERROR},
            404: {"description": "No such ledger or entry, or the entry is no hold "
                                 "(hold_not_found)", "content": _TYPED_ERROR},
            422: {"description": "Refused, nothing written: the field is named; "
                                 "condition_failed, hold_committed, hold_voided, hold_expired, "
                                 "hold_exceeded", "content": _TYPED_ERROR}}

_HOLD_BODY = {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["expiresAt"], "properties": {
        "expiresAt": {"type": "string", "format": "date-time"},
        "entry": _ENTRY_SCHEMA,
        "entries": {"type": "array", "items": _ENTRY_SCHEMA, "minItems": 1,
                    "maxItems": 1000}}}}}}

_COMMIT_BODY = {"required": False, "content": {"application/json": {"schema": {
    "type": "object", "properties": {
        "amount": {"type": "string", "description": "A partial capture, when the entry's "
                                                    "lines are one parameter"},
        "parameters": {"type": "object", "description": "The entry's parameters again, for "
                                                        "a partial capture of other types"}}}}}}


def _hold(result: service.HoldResult) -> dict:
    entry, hold = result.entry, result.hold

    def line(x: service.Line) -> dict:
        return {"id": x.id, "key": x.key, "account": {"path": x.account_path},
                "amount": str(x.amount), "currency": x.currency,
                "description": x.description or entry.description}
    return {"entry": {"id": entry.id, "ik": entry.ik, "type": entry.type,
                      "description": entry.description, "posted": entry.posted.isoformat(),
                      "lines": [line(x) for x in entry.lines]},
            "status": hold.status, "expiresAt": hold.expires_at.isoformat(),
            "created": hold.created.isoformat(),
            "resolvedAt": hold.resolved.isoformat() if hold.resolved else None,
            "heldLines": [line(x) for x in hold.lines], "isIkReplay": result.is_ik_replay}


async def _body(request: Request, optional: bool = False) -> Any:
    raw = await request.body()
    if optional and not raw.strip():
        return {}
    body = jsonbody.loads(raw, deps.settings(request).max_json_depth)
    if not isinstance(body, dict):
        raise BadRequestError("invalid_input", "body: expected an object", field="body")
    return body


def _failed(exc: LedgerError) -> JSONResponse:
    return error_response(exc, statuses=_TOO_DEEP if exc.code == "json_too_deep" else STATUS_OF)


@router.post("/ledgers/{ledger_ik}/holds", summary="Post entries as holds (all or none)",
             openapi_extra={"requestBody": _HOLD_BODY},
             responses={201: {"description": "Held"},
                        200: {"description": "Every hold a replay"}, **_ANSWERS})
async def create_holds(ledger_ik: str, request: Request,
                       _principal=Depends(require_scope("write"))):
    """``{"expiresAt": ..., "entry": {...}}`` or ``{"expiresAt": ..., "entries": [...]}``."""
    try:
        body = await _body(request)
        raw = body.get("entries") if "entries" in body else [body.get("entry")]
        if not isinstance(raw, list) or not raw:
            raise BadRequestError("invalid_input", "entries: expected a non-empty list",
                                  field="entries")
        field = "entries[{}]" if "entries" in body else "entry"
        requests = [service.EntryRequest.from_input(x, field.format(i))
                    for i, x in enumerate(raw)]
        results = await run_in_threadpool(service.add_ledger_holds, deps.database(request),
                                          ledger_ik, requests, body.get("expiresAt"))
    except LedgerError as exc:
        return _failed(exc)
    replay = all(r.is_ik_replay for r in results)
    return JSONResponse({"holds": [_hold(r) for r in results]},
                        status_code=200 if replay else 201)


@router.post("/ledgers/{ledger_ik}/holds/{entry_ik}/commit",
             summary="Commit a hold: post all of it, or a part",
             openapi_extra={"requestBody": _COMMIT_BODY}, responses=_ANSWERS)
async def commit_hold(ledger_ik: str, entry_ik: str, request: Request,
                      _principal=Depends(require_scope("write"))):
    try:
        body = await _body(request, optional=True)
        result = await run_in_threadpool(
            lambda: service.commit_ledger_entry(
                deps.database(request), ledger_ik=ledger_ik, ik=entry_ik,
                amount=body.get("amount"), parameters=body.get("parameters")))
    except LedgerError as exc:
        return _failed(exc)
    return _hold(result)


@router.post("/ledgers/{ledger_ik}/holds/{entry_ik}/void", summary="Void a pending hold",
             responses=_ANSWERS)
async def void_hold(ledger_ik: str, entry_ik: str, request: Request,
                    _principal=Depends(require_scope("write"))):
    try:
        result = await run_in_threadpool(lambda: service.void_ledger_entry(
            deps.database(request), ledger_ik=ledger_ik, ik=entry_ik))
    except LedgerError as exc:
        return _failed(exc)
    return _hold(result)


def pending_lines_page(request: Request, ledger_ik: str, path: str, status: str, first: int,
                       after: str | None, period: str | None) -> dict:
    """``GET .../accounts/{path}/lines?status=pending|all`` (api/wallet.py): the account's
    lines of pending holds (``all``: merged with its posted lines), newest first, in the
    shape of its posted lines with ``status`` (a pending line has no running balance: it
    moves none); raises LedgerError for the caller to answer."""
    db = deps.database(request)
    # Reversed lines too, as the posted list of this endpoint shows them: every posted
    # line's running balance then follows from the one before it.
    page = service.list_lines_by_status(db, ledger_ik, path, {"reversed": None},
                                        status=status, first=first, after=after,
                                        period=period)
    lines = [{"id": x.id, "key": x.key, "account": {"path": x.account_path},
              "amount": str(x.amount), "currency": x.currency,
              "runningBalance": (None if x.running_balance is None
                                 else str(x.running_balance)),
              "status": s or "posted", "posted": x.posted.isoformat(),
              "description": x.description, "entry": {"id": x.entry_id}}
             for x, s in page.nodes]
    return {"lines": lines, "pageInfo": {"endCursor": page.page_info.end_cursor,
                                         "hasNextPage": page.page_info.has_next_page}}

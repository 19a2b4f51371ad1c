"""REST ``/v1``: asynchronous posting. Accept entries as jobs, answer 202, post them later.

Each endpoint is one call into `ledger.service`; this module only translates HTTP to that
call and its result or typed error back (`api.errors`). After the jobs commit, a "doorbell" message goes
to each partition's queue so a worker posts them; if the broker is unreachable the request
still succeeds (the jobs are durable) and the relay rings later.
"""
from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from api import deps, jsonbody, telemetry
from api.auth import require_scope
from api.errors import STATUS_OF, error_response
from api.middleware import request_body
from ledger import fastjson, service
from ledger.errors import LedgerError

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["async posting"])


# ---------------------------------------------------------------------------- plumbing

def _prefer_wait(header: str | None) -> float:
    """Seconds asked for by ``Prefer: wait=N`` (RFC 7240), 0 when absent or malformed."""
    for preference in (header or "").split(","):
        name, _, value = preference.split(";")[0].strip().partition("=")
        if name.strip().lower() == "wait":
            try:
                seconds = float(value.strip().strip('"'))
            except ValueError:
                return 0.0
            return max(0.0, min(seconds, service.MAX_WAIT_SECONDS))
    return 0.0


_HOLD_SCHEMA = {
    "type": "object", "required": ["expiresAt"],
    "properties": {"expiresAt": {"type": "string", "format": "date-time"}},
    "description": "Post as a hold expiring then (its lines pending until committed or "
                   "voided, /v1/ledgers/{ik}/holds/{entry_ik}/commit|void); the job is "
                   "posted once the hold is created.",
}

_ENTRY_SCHEMA = {
    "type": "object",
    "required": ["ik", "type"],
    "properties": {
        "ik": {"type": "string", "description": "Idempotency key, unique per ledger."},
        "type": {"type": "string", "description": "An entry type of the ledger's schema."},
        "parameters": {"type": "object", "additionalProperties": {"type": "string"},
                       "description": "Amounts as strings of integers in minor units."},
        "posted": {"type": "string", "format": "date-time"},
        "tags": {"type": "array", "items": {"type": "object", "properties": {
            "key": {"type": "string"}, "value": {"type": "string"}}}},
        "groups": {"type": "array", "items": {"type": "object", "properties": {
            "key": {"type": "string"}, "value": {"type": "string"}}}},
        "lines": {"type": "array", "items": {"type": "object"},
                  "description": "Runtime entry types only."},
        "hold": _HOLD_SCHEMA,
    },
}

_SUBMIT_BODY = {
    "required": True,
    "content": {"application/json": {"schema": {"oneOf": [
        _ENTRY_SCHEMA,
        {"type": "array", "items": _ENTRY_SCHEMA, "minItems": 1,
         "maxItems": service.MAX_SUBMISSION},
        {"type": "object", "required": ["entries"], "properties": {
            "entries": {"type": "array", "items": _ENTRY_SCHEMA, "minItems": 1,
                        "maxItems": service.MAX_SUBMISSION},
            "hold": _HOLD_SCHEMA}},
    ]}}},
}


# The typed error body (ledger.errors.LedgerError.to_dict); api.errors.document_answers adds
# the answers every route may give (401, 403, 413, 503, ...).
_TYPED_ERROR = {"application/json": {"schema": {"type": "object", "required": [
    "__typename", "code", "message", "retryable"]}}}
# A body nesting too deep is refused with 400 before any route runs (api.middleware); the
# same here. A body that is not JSON stays 422, as it always was.
_TOO_DEEP = {"BadRequestError": 400}


def _job_summary(job: service.Job) -> dict:
    out = {"id": str(job.id), "ik": job.ik, "status": job.status}
    if job.status == service.POSTED:
        out["entry"] = {"id": job.entry_id}
    elif job.status == service.FAILED:
        out["error"] = job.error
    return out


def _jobs_observer(request: Request):
    metrics = getattr(request.app.state, "metrics", None)
    return metrics.jobs_worked if metrics is not None else None


# ---------------------------------------------------------------------------- endpoints

@router.post(
    "/ledgers/{ledger_ik}/entries",
    summary="Accept entries for asynchronous posting",
    status_code=202,
    openapi_extra={"requestBody": _SUBMIT_BODY},
    responses={202: {"description": "Accepted: one job per entry"},
               200: {"description": "With Prefer: wait=N, every job finished in time"},
               400: {"description": "The body nests deeper than LEDGER_MAX_JSON_DEPTH "
                                    "(json_too_deep)", "content": _TYPED_ERROR},
               404: {"description": "No such ledger", "content": _TYPED_ERROR},
               422: {"description": "An entry is invalid, or the body is not JSON; nothing "
                                    "was accepted", "content": _TYPED_ERROR}},
)
async def submit_entries(ledger_ik: str, request: Request,
                         _principal=Depends(require_scope("write"))):
    """One entry, a list of up to 1,000, or ``{"entries": [...]}``. Every entry is checked
    against the ledger's schema first: one bad entry refuses the whole request (422 naming
    its index and field). An ik that already has a job returns that job. ``hold``
    (``{"expiresAt"}``, per entry or for the whole ``{"entries": [...]}``) posts as holds.
    ``Prefer: wait=N`` holds the answer up to N seconds (at most 30) for the jobs to finish."""
    try:
        body = jsonbody.loads(await request_body(request), deps.settings(request).max_json_depth)
    except LedgerError as exc:
        return error_response(exc, statuses=_TOO_DEEP if exc.code == "json_too_deep" else STATUS_OF)
    hold = None
    if isinstance(body, dict) and "entries" in body and "ik" not in body:
        hold = body.get("hold")
        body = body["entries"]
    entries = body if isinstance(body, list) else [body]
    wait = _prefer_wait(request.headers.get("prefer"))
    settings = deps.settings(request)
    doorbell = deps.doorbell(request)
    try:
        submission = await run_in_threadpool(
            service.submit_entries, deps.database(request), ledger_ik, entries,
            partitions=settings.partitions,
            after_commit=doorbell.ring if doorbell is not None else None, wait=wait,
            trace_context=telemetry.trace_context(settings), hold=hold,
            observe=_jobs_observer(request))
    except LedgerError as exc:
        return error_response(exc)
    finished = all(j.done for j in submission.jobs)
    headers = {"Preference-Applied": f"wait={wait:g}"} if wait else None
    # Up to 1,000 jobs: encoded by ledger.fastjson, the same text JSONResponse would send.
    return Response(fastjson.dumps({"jobs": [_job_summary(j) for j in submission.jobs]}),
                    status_code=200 if wait and finished else 202, headers=headers,
                    media_type="application/json")


@router.get("/jobs/{job_id}", summary="A posting job: pending, posted (entry id) or failed "
                                      "(typed error)",
            responses={404: {"description": "No such job (job_not_found), also for an id "
                                            "that is not a positive 64-bit integer",
                             "content": _TYPED_ERROR}})
def get_job(job_id: str, request: Request, _principal=Depends(require_scope("read"))):
    try:
        return service.get_job(deps.database(request), job_id).to_dict()
    except LedgerError as exc:
        return error_response(exc)


@router.get("/ledgers/{ledger_ik}/jobs", summary="A ledger's posting jobs, newest first",
            responses={404: {"description": "No such ledger", "content": _TYPED_ERROR},
                       422: {"description": "A bad status, page size or cursor, or a ledger "
                                            "ik the database cannot hold (NUL, lone "
                                            "surrogate)", "content": _TYPED_ERROR}})
def list_jobs(ledger_ik: str, request: Request,
              status: str | None = Query(None, description="pending, posted or failed"),
              first: int = Query(50, ge=1, le=service.MAX_JOB_PAGE),
              after: str | None = Query(None, description="endCursor of the previous page"),
              _principal=Depends(require_scope("read"))):
    try:
        page = service.list_jobs(deps.database(request), ledger_ik, status, first=first, after=after)
    except LedgerError as exc:
        return error_response(exc)
    return {"jobs": [j.to_dict() for j in page.jobs],
            "pageInfo": {"endCursor": page.end_cursor, "hasNextPage": page.has_next_page}}


"""REST ``/v1``: asynchronous posting. Accept entries as jobs, answer 202, post them later.

Each endpoint is one call into `ledger.jobs`; this module only translates HTTP to that
call and its result or typed error back. After the jobs commit, a "doorbell" message goes
to each partition's queue so a worker posts them; if the broker is unreachable the request
still succeeds (the jobs are durable) and the relay rings later.
"""
from __future__ import annotations

import json
import logging
import os
import threading
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from api.auth import require_scope
from ledger import fastjson, jobs
from ledger.db import Database
from ledger.errors import BadRequestError, LedgerError, NotFoundError

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["async posting"])

# Must match the task name in workers/tasks.py: the API sends it by name so that it does
# not import the worker code.
DOORBELL_TASK = "ledger.post"


# ---------------------------------------------------------------------------- plumbing

def _db(request: Request) -> Database:
    state = request.app.state
    db = getattr(state, "db", None)
    return db if db is not None else state.tokens.db


class _Doorbell:
    """Publishes doorbell messages, through one Celery client (and one Redis client, for the
    "a doorbell is waiting" keys) per broker URL."""

    def __init__(self):
        self._lock = threading.Lock()
        self._clients: dict[str, Any] = {}

    def _client(self, url: str):
        with self._lock:
            clients = self._clients.get(url)
            if clients is None:
                import redis
                from celery import Celery

                celery = Celery("ledger-api", broker=url)
                celery.conf.update(
                    broker_transport_options={"socket_timeout": 5,
                                              "socket_connect_timeout": 2},
                    broker_connection_timeout=2,
                )
                keys = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
                clients = self._clients[url] = (celery, keys)
            return clients

    def ring(self, url: str | None, partitions: list[int], *, coalesce: bool = True) -> None:
        """Wake the workers of ``partitions``. With ``coalesce``, a partition whose previous
        doorbell still waits in its queue is not rung again: under a steady stream of
        submissions that saves the worker a message per partition per request."""
        if not url:
            log.warning("no broker URL: no doorbell sent; the relay will post the jobs")
            return
        celery, keys = self._client(url)
        if coalesce:
            with keys.pipeline(transaction=False) as pipe:
                for partition in partitions:
                    pipe.set(jobs.doorbell_key(partition), 1, nx=True,
                             ex=jobs.DOORBELL_KEY_SECONDS)
                partitions = [p for p, fresh in zip(partitions, pipe.execute()) if fresh]
        for partition in partitions:
            try:
                # A short retry covers a blip; a longer outage is the relay's job, and must
                # not hold up the answer to a request whose jobs are already committed.
                celery.send_task(DOORBELL_TASK, args=[partition],
                                 queue=jobs.queue_name(partition), retry=True,
                                 retry_policy={"max_retries": 2, "interval_start": 0,
                                               "interval_step": 0.2, "interval_max": 0.5})
            except Exception:
                if coalesce:
                    # No doorbell waits after all: let the next submission ring.
                    try:
                        keys.delete(jobs.doorbell_key(partition))
                    except Exception:  # noqa: BLE001 - it expires on its own
                        pass
                raise


def _broker_url(request: Request) -> str | None:
    url = os.environ.get("REDIS_URL")
    if url:
        return url
    # The app started the embedded servers itself (DATABASE_URL and REDIS_URL unset).
    keepalive = getattr(request.app.state, "keepalive", None)
    redis = getattr(keepalive, "redis", None)
    return redis.redis_url if redis is not None else None


doorbell = _Doorbell()


def _error(exc: LedgerError) -> JSONResponse:
    # The same shape as the rest of the API's errors: the typed error itself.
    if isinstance(exc, NotFoundError):
        status = 404
    elif isinstance(exc, BadRequestError):
        status = 422
    else:
        status = 503
    headers = {"Retry-After": "1"} if status == 503 else None
    return JSONResponse(exc.to_dict(), status_code=status, headers=headers)


def _prefer_wait(header: str | None) -> float:
    """Seconds asked for by ``Prefer: wait=N`` (RFC 7240), 0 when absent or malformed."""
    for preference in (header or "").split(","):
        name, _, value = preference.split(";")[0].strip().partition("=")
        if name.strip().lower() == "wait":
            try:
                seconds = float(value.strip().strip('"'))
            except ValueError:
                return 0.0
            return max(0.0, min(seconds, jobs.MAX_WAIT_SECONDS))
    return 0.0


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
    },
}

_SUBMIT_BODY = {
    "required": True,
    "content": {"application/json": {"schema": {"oneOf": [
        _ENTRY_SCHEMA,
        {"type": "array", "items": _ENTRY_SCHEMA, "minItems": 1,
         "maxItems": jobs.MAX_SUBMISSION},
        {"type": "object", "required": ["entries"], "properties": {
            "entries": {"type": "array", "items": _ENTRY_SCHEMA, "minItems": 1,
                        "maxItems": jobs.MAX_SUBMISSION}}},
    ]}}},
}


def _job_summary(job: jobs.Job) -> dict:
    out = {"id": str(job.id), "ik": job.ik, "status": job.status}
    if job.status == jobs.POSTED:
        out["entry"] = {"id": job.entry_id}
    elif job.status == jobs.FAILED:
        out["error"] = job.error
    return out


# ---------------------------------------------------------------------------- endpoints

@router.post(
    "/ledgers/{ledger_ik}/entries",
    summary="Accept entries for asynchronous posting",
    status_code=202,
    openapi_extra={"requestBody": _SUBMIT_BODY},
    responses={202: {"description": "Accepted: one job per entry"},
               200: {"description": "With Prefer: wait=N, every job finished in time"},
               404: {"description": "No such ledger"},
               422: {"description": "An entry is invalid; nothing was accepted"}},
)
async def submit_entries(ledger_ik: str, request: Request,
                         _principal=Depends(require_scope("write"))):
    """One entry, a list of up to 1,000, or ``{"entries": [...]}``. Every entry is checked
    against the ledger's schema first: one bad entry refuses the whole request (422 naming
    its index and field). An ik that already has a job returns that job.
    ``Prefer: wait=N`` holds the answer up to N seconds (at most 30) for the jobs to finish."""
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError) as exc:
        return _error(BadRequestError("invalid_input", f"body: not valid JSON ({exc})",
                                      field="body"))
    if isinstance(body, dict) and "entries" in body and "ik" not in body:
        body = body["entries"]
    entries = body if isinstance(body, list) else [body]
    wait = _prefer_wait(request.headers.get("prefer"))
    broker = _broker_url(request)
    try:
        submission = await run_in_threadpool(
            jobs.submit_entries, _db(request), ledger_ik, entries,
            after_commit=lambda partitions: doorbell.ring(broker, partitions), wait=wait)
    except LedgerError as exc:
        return _error(exc)
    finished = all(j.done for j in submission.jobs)
    headers = {"Preference-Applied": f"wait={wait:g}"} if wait else None
    # Up to 1,000 jobs: encoded by ledger.fastjson, the same text JSONResponse would send.
    return Response(fastjson.dumps({"jobs": [_job_summary(j) for j in submission.jobs]}),
                    status_code=200 if wait and finished else 202, headers=headers,
                    media_type="application/json")


@router.get("/jobs/{job_id}", summary="A posting job: pending, posted (entry id) or failed "
                                      "(typed error)")
def get_job(job_id: str, request: Request, _principal=Depends(require_scope("read"))):
    try:
        return jobs.get_job(_db(request), job_id).to_dict()
    except LedgerError as exc:
        return _error(exc)


@router.get("/ledgers/{ledger_ik}/jobs", summary="A ledger's posting jobs, newest first")
def list_jobs(ledger_ik: str, request: Request,
              status: str | None = Query(None, description="pending, posted or failed"),
              first: int = Query(50, ge=1, le=jobs.MAX_PAGE),
              after: str | None = Query(None, description="endCursor of the previous page"),
              _principal=Depends(require_scope("read"))):
    try:
        page = jobs.list_jobs(_db(request), ledger_ik, status, first=first, after=after)
    except LedgerError as exc:
        return _error(exc)
    return {"jobs": [j.to_dict() for j in page.jobs],
            "pageInfo": {"endCursor": page.end_cursor, "hasNextPage": page.has_next_page}}


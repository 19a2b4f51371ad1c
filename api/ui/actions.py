"""The dashboard's forms that act: sign-in and sign-out, reversing an entry, retrying a
failed job, committing or voiding a hold. Each acting form needs a write client and the session's CSRF token
(`api.ui.session.writer`); each answers with a redirect to the page that shows the change."""
from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from api import deps
from api.auth import client_token, token_service
from api.ui.render import page
from api.ui.routing import UiRoute
from api.ui.session import COOKIE, PREFIX, check_origin, safe_next, writer
from ledger import service

router = APIRouter(prefix="/ui", route_class=UiRoute, include_in_schema=False)


@router.get("/signin")
def sign_in_form(request: Request, next: str = ""):
    return page(request, "signin.html", viewer=None, next=safe_next(next), error="",
                client_id="")


@router.post("/signin")
async def sign_in(request: Request, client_id: str = Form(""), client_secret: str = Form(""),
                  next: str = Form("")):
    check_origin(request)
    target = safe_next(next)
    if not client_id or not client_secret:
        return page(request, "signin.html", 400, viewer=None, next=target, client_id=client_id,
                    error="Enter the API client's id and secret.")
    outcome = await client_token(request, client_id.strip(), client_secret.strip(), None)
    if outcome.token is None:
        return page(request, "signin.html", outcome.status if outcome.status != 400 else 403,
                    viewer=None, next=target, client_id=client_id, error=outcome.message,
                    headers=outcome.headers)
    answer = RedirectResponse(target, status_code=303)
    answer.set_cookie(COOKIE, outcome.token, max_age=token_service(request).ttl_seconds,
                      path=PREFIX, httponly=True, samesite="strict",
                      secure=request.url.scheme == "https")
    return answer


@router.post("/signout")
def sign_out(request: Request):
    # No CSRF check: signing out is what a forged request could do at worst, and it works
    # with an expired session too.
    answer = RedirectResponse(f"{PREFIX}/signin", status_code=303)
    answer.delete_cookie(COOKIE, path=PREFIX, httponly=True, samesite="strict")
    return answer


@router.post("/ledgers/{ledger_ik}/entries/{entry_id}/reverse")
async def reverse(request: Request, ledger_ik: str, entry_id: str, csrf: str = Form("")):
    await run_in_threadpool(writer, request, csrf)
    result = await run_in_threadpool(service.reverse_ledger_entry, deps.database(request),
                                     id=entry_id, ledger_ik=ledger_ik)
    return RedirectResponse(f"{PREFIX}/ledgers/{quote(ledger_ik, safe='')}/entries/"
                            f"{result.reversed_entry.id}?reversed=1", status_code=303)


async def resolve_hold(request: Request, ledger_ik: str, entry_id: str, csrf: str, act,
                       **args):
    """Commit or void (``act``, with ``args``) the hold of entry ``entry_id``, then show
    the entry."""
    await run_in_threadpool(writer, request, csrf)
    await run_in_threadpool(lambda: act(deps.database(request), id=entry_id,
                                        ledger_ik=ledger_ik, **args))
    return RedirectResponse(f"{PREFIX}/ledgers/{quote(ledger_ik, safe='')}/entries/"
                            f"{quote(entry_id, safe='')}", status_code=303)


@router.post("/ledgers/{ledger_ik}/entries/{entry_id}/commit")
async def commit_hold(request: Request, ledger_ik: str, entry_id: str, csrf: str = Form(""),
                      amount: str = Form("")):
    # An empty field commits all of it; anything else is the engine's to check (as
    # commitLedgerEntry(amount) is), so a bad amount is refused naming the field.
    return await resolve_hold(request, ledger_ik, entry_id, csrf, service.commit_ledger_entry,
                              amount=amount.strip() or None)


@router.post("/ledgers/{ledger_ik}/entries/{entry_id}/void")
async def void_hold(request: Request, ledger_ik: str, entry_id: str, csrf: str = Form("")):
    return await resolve_hold(request, ledger_ik, entry_id, csrf, service.void_ledger_entry)


@router.post("/ledgers/{ledger_ik}/jobs/{job_id}/retry")
async def retry(request: Request, ledger_ik: str, job_id: str, csrf: str = Form("")):
    await run_in_threadpool(writer, request, csrf)
    job = await run_in_threadpool(service.retry_job, deps.database(request), ledger_ik, job_id)
    doorbell = deps.doorbell(request)
    if doorbell is not None:
        try:
            await run_in_threadpool(doorbell.ring, [job.partition])
        except Exception:  # noqa: BLE001 - the job is pending for good; the relay rings later
            deps.log.warning("job %s retried; its doorbell was not sent", job.id, exc_info=True)
    return RedirectResponse(f"{PREFIX}/ledgers/{quote(ledger_ik, safe='')}/jobs"
                            f"?retried={job.id}", status_code=303)

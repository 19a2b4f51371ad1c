"""The dashboard's route class: whatever a page raises is answered as a page, not as the
API's JSON (a typed ledger error with its status, a refusal, the sign-in redirect)."""
from __future__ import annotations

from typing import Callable

from fastapi import HTTPException, Request, Response
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute

from api.errors import status_of
from api.ui.render import error_page
from api.ui.session import SignInRequired, sign_in_location
from ledger.errors import LedgerError


class UiRoute(APIRoute):
    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInRequired as exc:
                return RedirectResponse(sign_in_location(exc.next_url), status_code=303)
            except LedgerError as exc:
                return error_page(request, status_of(exc), f"{exc.code}: {exc.message}")
            except HTTPException as exc:
                if exc.status_code == 422 or not isinstance(exc.detail, str):
                    return error_page(request, exc.status_code, str(exc.detail))
                return error_page(request, exc.status_code, exc.detail)

        return answer

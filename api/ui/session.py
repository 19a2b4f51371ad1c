"""Who looks at the dashboard: the signed-in API client, kept as its access token in an
HttpOnly, SameSite=Strict cookie scoped to /ui, and the CSRF token of its forms.

The CSRF token is an HMAC of the access token, so it needs no server state, changes with
every sign-in, and cannot be computed by a page that cannot read the cookie."""
from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from fastapi import HTTPException, Request

from api.auth import token_service
from ledger import service

COOKIE = "ledger_ui"
PREFIX = "/ui"


@dataclass(frozen=True)
class Viewer:
    client_id: str
    scope: str
    csrf: str

    @property
    def can_write(self) -> bool:
        return service.scope_allows(self.scope, "write")


class SignInRequired(Exception):
    """No valid session: the page answers with a redirect to the sign-in form."""

    def __init__(self, next_url: str, reason: str = ""):
        self.next_url = next_url
        self.reason = reason


def csrf_of(token: str) -> str:
    return hmac.new(token.encode(), b"moneyledger-ui-csrf", hashlib.sha256).hexdigest()


def viewer(request: Request) -> Viewer:
    """A FastAPI dependency (blocking: one database read when the client's state is not
    cached). Raises `SignInRequired` without a valid cookie."""
    token = request.cookies.get(COOKIE)
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if not token:
        raise SignInRequired(here)
    try:
        principal = token_service(request).verify(token)
    except HTTPException as exc:
        raise SignInRequired(here, str(exc.detail.get("message", ""))) from None
    return Viewer(principal.client_id, principal.scope, csrf_of(token))


def check_origin(request: Request) -> None:
    """Browsers name the page a form was posted from: a form of another site is refused
    even where the cookie's SameSite rule would let it through (an old browser), and the
    sign-in form, which has no session to tie a token to, cannot be posted from elsewhere
    (signing a victim in as the attacker's client)."""
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host"):
        raise HTTPException(403, "this form was posted from another site")


def writer(request: Request, csrf: str) -> Viewer:
    """The viewer of a form that acts: a write client whose form carries its CSRF token.
    403 otherwise (read-only client, or a form this session did not render)."""
    check_origin(request)
    found = viewer(request)
    if not hmac.compare_digest(found.csrf, csrf or ""):
        raise HTTPException(403, "this form is stale or was not sent by the dashboard; "
                                 "reload the page and try again")
    if not found.can_write:
        raise HTTPException(403, "this API client is read-only: it can look but not act")
    return found


def sign_in_location(next_url: str) -> str:
    return f"{PREFIX}/signin?next={quote(next_url, safe='')}"


def safe_next(value: str | None) -> str:
    """Only a dashboard page: never send a signed-in user to another site."""
    if value and value.startswith(PREFIX + "/") and not value.startswith("//") \
            and "\\" not in value:
        return value
    return f"{PREFIX}/ledgers"

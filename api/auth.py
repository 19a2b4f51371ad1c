"""OAuth2 client credentials (seed 002, "Authenticate"): the token endpoint, and the
dependency every protected endpoint uses.

Tokens are HS256 JWTs signed with the key `ledger.service.signing_key` keeps in the
database. A token names its client; each API process keeps what it last read of that
client (active, scope) for `LEDGER_CLIENT_CACHE_SECONDS` (1 s), so a revocation takes effect
within that time rather than when its tokens expire, and a busy client costs one database
read a second instead of one a request. A fresh answer lets the check run on the event
loop, without a thread hop. A token's signature is checked once per process: what it
says is kept until it expires (its HMAC and base64 work were a tenth of a request's CPU).
"""
from __future__ import annotations

import base64
import binascii
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import anyio
import jwt
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api.graphql.context import Principal
from api.throttle import FailureLimiter
from ledger import service
from ledger.db import Database

ISSUER = "moneyledger"
ALGORITHM = "HS256"
DEFAULT_TTL_SECONDS = 3600
# Attempts waiting for a hashing slot, per slot, beyond which the endpoint answers 503 at
# once rather than queue without end.
HASH_QUEUE_PER_SLOT = 8

router = APIRouter(tags=["auth"])


class ClientCache:
    """What was last read of each client, trusted for ``seconds``. Revoked and unknown
    clients are kept too: a revoked token retried in a loop must not cost a read each.
    When a client's read expires, the requests that find it stale together wait for one
    read: under 32 concurrent requests each expiry used to cost 32 reads."""

    # Beyond this many clients the oldest half is forgotten: client ids come only from
    # validly signed tokens, so this bounds memory, not an attack.
    MAX_ENTRIES = 10_000
    # Reads of different clients rarely wait for each other; the locks stay few.
    READ_LOCKS = 64

    def __init__(self, read: Callable[[str], "service.ApiClient | None"], seconds: float,
                 clock: Callable[[], float] = time.monotonic):
        self.read = read
        self.seconds = seconds
        self.clock = clock
        self.entries: dict[str, tuple[float, service.ApiClient | None]] = {}
        self._reading = [threading.Lock() for _ in range(self.READ_LOCKS)]

    def fresh(self, client_id: str) -> tuple[bool, "service.ApiClient | None"]:
        """(True, client or None) when a read younger than ``seconds`` is kept."""
        found = self.entries.get(client_id)
        if found is None or self.clock() >= found[0]:
            return False, None
        return True, found[1]

    def get(self, client_id: str) -> "service.ApiClient | None":
        """Blocking on a miss (one database read)."""
        hit, client = self.fresh(client_id)
        if hit:
            return client
        with self._reading[hash(client_id) % self.READ_LOCKS]:
            hit, client = self.fresh(client_id)  # read meanwhile by the thread we waited for
            if hit:
                return client
            # The deadline is taken before the read: what the read sees is at least that old.
            until = self.clock() + self.seconds
            client = self.read(client_id)
            if len(self.entries) >= self.MAX_ENTRIES:
                for key in list(self.entries)[: self.MAX_ENTRIES // 2]:
                    self.entries.pop(key, None)
            self.entries[client_id] = (until, client)
            return client


class TokenService:
    """Issues and checks access tokens for one database (one deployment)."""

    def __init__(self, db: Database, ttl_seconds: int = DEFAULT_TTL_SECONDS,
                 keyring: service.Keyring | None = None, client_cache_seconds: float = 1.0,
                 wall: Callable[[], float] = time.time):
        self.db = db
        self.wall = wall
        self.ttl_seconds = ttl_seconds
        # Decrypts the signing key the database keeps (LEDGER_SECRET_KEY).
        self.keyring = keyring or service.Keyring()
        self._key: str | None = None
        self.clients = ClientCache(lambda client_id: service.active_client(self.db, client_id),
                                   client_cache_seconds)
        # token -> (client id, scope, expiry): only validly signed tokens get in.
        self._verified: dict[str, tuple[str, str, int]] = {}

    def key(self) -> str:
        if self._key is None:
            self._key = service.signing_key(self.db, self.keyring)
        return self._key

    def issue(self, client: service.ApiClient, scope: str, *, now: float | None = None,
              ttl_seconds: int | None = None) -> str:
        issued = int(now if now is not None else time.time())
        claims = {"iss": ISSUER, "sub": client.id, "scope": scope, "iat": issued,
                  "exp": issued + (ttl_seconds if ttl_seconds is not None else self.ttl_seconds),
                  "jti": secrets.token_hex(8)}
        return jwt.encode(claims, self.key(), algorithm=ALGORITHM)

    def verify(self, token: str) -> Principal:
        """The principal of a valid token of an active client; `Unauthorized` otherwise.
        Blocking when the client's state is not cached (one database read)."""
        client_id, scope = self._claims(token)
        return self._principal(self.clients.get(client_id), scope)

    def verify_cached(self, token: str) -> Principal | None:
        """As `verify` without blocking: None when the database must be asked (the client
        not read lately, or the signing key not loaded yet)."""
        if self._key is None:
            return None
        client_id, scope = self._claims(token)
        hit, client = self.clients.fresh(client_id)
        return self._principal(client, scope) if hit else None

    # Beyond this many tokens the oldest half is forgotten (and checked again when used).
    MAX_VERIFIED = 10_000

    def _claims(self, token: str) -> tuple[str, str]:
        kept = self._verified.get(token)
        if kept is not None:
            client_id, scope, expires = kept
            if self.wall() < expires:
                return client_id, scope
            self._verified.pop(token, None)
            raise Unauthorized("the access token has expired; get a new one")
        try:
            claims = jwt.decode(token, self.key(), algorithms=[ALGORITHM], issuer=ISSUER,
                                options={"require": ["exp", "iat", "sub", "iss"]})
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the access token has expired; get a new one") from None
        except jwt.PyJWTError:
            raise Unauthorized("the access token is not valid") from None
        scope = claims.get("scope")
        if scope not in service.SCOPES or not isinstance(claims["sub"], str):
            raise Unauthorized("the access token is not valid")
        if len(self._verified) >= self.MAX_VERIFIED:
            for key in list(self._verified)[: self.MAX_VERIFIED // 2]:
                self._verified.pop(key, None)
        self._verified[token] = (claims["sub"], scope, int(claims["exp"]))
        return claims["sub"], scope

    @staticmethod
    def _principal(client: "service.ApiClient | None", scope: str) -> Principal:
        if client is None:
            raise Unauthorized("the API client of this token was revoked")
        # A token never grants more than its client has now (the client may be narrowed later).
        if not service.scope_allows(client.scope, scope):
            scope = client.scope
        return Principal(client_id=client.id, scope=scope)


class Unauthorized(HTTPException):
    def __init__(self, message: str):
        super().__init__(status_code=401,
                         detail={"code": "unauthorized", "message": message},
                         headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


class Forbidden(HTTPException):
    def __init__(self, needed: str):
        super().__init__(
            status_code=403,
            detail={"code": "insufficient_scope",
                    "message": f"this endpoint needs the {needed!r} scope; the token has less"},
            headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{needed}"'})


def _tokens(request: Request) -> TokenService:
    return request.app.state.tokens


def token_service(request: Request) -> TokenService:
    """The app's `TokenService`: other routers (the dashboard) verify tokens with it."""
    return _tokens(request)


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("an access token is required: Authorization: Bearer <token> "
                           "(POST /oauth2/token gives one)")
    return token.strip()


def authenticate(request: Request) -> Principal:
    """Blocking (one database read): call it from a thread, as FastAPI does for sync deps."""
    return _tokens(request).verify(bearer_token(request))


async def authenticate_async(request: Request) -> Principal:
    """On the event loop when the client's state is cached, else in a thread."""
    tokens, token = _tokens(request), bearer_token(request)
    principal = tokens.verify_cached(token)
    if principal is None:
        principal = await run_in_threadpool(tokens.verify, token)
    return principal


def check_scope(principal: Principal, needed: str) -> None:
    if not service.scope_allows(principal.scope, needed):
        raise Forbidden(needed)


def require_scope(needed: str) -> Callable[[Request], Principal]:
    """A FastAPI dependency: ``Depends(require_scope("write"))``. 401 without a valid token
    (missing, forged, expired, revoked client), 403 when its scope is not enough."""
    if needed not in service.SCOPES:
        raise ValueError(f"unknown scope {needed!r}")

    async def dependency(request: Request) -> Principal:
        principal = await authenticate_async(request)
        check_scope(principal, needed)
        request.state.principal = principal
        return principal

    dependency.__name__ = f"require_{needed}_scope"
    return dependency


# ------------------------------------------------------------------ token endpoint

def _oauth_error(status: int, error: str, description: str, **headers) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status,
                        headers={"Cache-Control": "no-store", **headers})


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return ("", "")
    client_id, sep, secret = decoded.partition(":")
    return (client_id, secret) if sep else ("", "")


def granted_scope(client_scope: str, requested: str | None) -> str | None:
    """The scope a token gets. Requested scopes other than ours (the seeds' clients send a URL
    such as ``https://api.example/*``) mean "what the client has"; asking for ``read`` narrows
    a full-access client's token; asking for ``write`` as a read-only client is refused."""
    words = set((requested or "").replace(",", " ").split())
    if "write" in words:
        return "write" if client_scope == "write" else None
    if "read" in words:
        return "read"
    return client_scope


_BUSY = object()


class TokenGuard:
    """Per app: the failed-attempt counters, and the gate that lets at most
    ``hash_concurrency`` secret checks (argon2: tens of milliseconds of CPU and memory
    each) run at once, in their own threads, so a flood of attempts neither holds the
    event loop nor takes every thread other requests need."""

    def __init__(self, failures: FailureLimiter, concurrency: int):
        self.failures = failures
        self.concurrency = concurrency
        self._limiter: anyio.CapacityLimiter | None = None

    async def authenticate(self, db: Database, client_id: str, secret: str):
        if self._limiter is None:  # made on first use: it belongs to the running loop
            self._limiter = anyio.CapacityLimiter(self.concurrency)
        if self._limiter.statistics().tasks_waiting >= HASH_QUEUE_PER_SLOT * self.concurrency:
            return _BUSY
        return await anyio.to_thread.run_sync(service.authenticate, db, client_id, secret,
                                              limiter=self._limiter)


def _guard(request: Request) -> TokenGuard:
    guard = getattr(request.app.state, "token_guard", None)
    if guard is None:
        settings = request.app.state.settings
        guard = request.app.state.token_guard = TokenGuard(
            FailureLimiter.from_settings(settings), settings.hash_concurrency)
    return guard


@router.post("/oauth2/token", summary="Client credentials grant (OAuth2)")
async def token(request: Request):
    form = await request.form()
    grant_type = form.get("grant_type")
    if grant_type != "client_credentials":
        return _oauth_error(400, "unsupported_grant_type",
                            "grant_type must be client_credentials")
    basic = _basic_credentials(request)
    if basic is not None:
        client_id, secret = basic
        form_id = form.get("client_id")
        if form_id and form_id != client_id:
            return _oauth_error(400, "invalid_request",
                                "client_id in the body differs from the Basic credentials")
    else:
        # client_secret_post (RFC 6749 2.3.1), for clients that cannot send Basic.
        client_id, secret = form.get("client_id") or "", form.get("client_secret") or ""
    if not client_id or not secret:
        return _oauth_error(401, "invalid_client",
                            "client credentials are required (HTTP Basic client_id:secret)",
                            **{"WWW-Authenticate": 'Basic realm="ledger"'})

    outcome = await client_token(request, str(client_id), str(secret), form.get("scope"))
    if outcome.token is None:
        return _oauth_error(outcome.status, outcome.error, outcome.message, **outcome.headers)
    return JSONResponse(
        {"access_token": outcome.token, "expires_in": _tokens(request).ttl_seconds,
         "token_type": "Bearer", "scope": outcome.scope},
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


@dataclass
class TokenOutcome:
    """An access token and its scope, or why none was issued (an OAuth2 error)."""

    token: str | None = None
    scope: str | None = None
    status: int = 200
    error: str = ""
    message: str = ""
    headers: dict = field(default_factory=dict)


async def client_token(request: Request, client_id: str, secret: str,
                       requested_scope: str | None) -> TokenOutcome:
    """A token for a client's credentials, with the token endpoint's rules (failed-attempt
    limits, the hashing gate, scopes); the dashboard's sign-in uses it too."""
    tokens = _tokens(request)
    guard = _guard(request)
    keys = guard.failures.keys(client_id, request.client.host if request.client else None)
    wait = await run_in_threadpool(guard.failures.retry_after, keys)
    if wait is not None:
        return TokenOutcome(status=429, error="too_many_attempts",
                            message=f"too many failed attempts; retry in {wait} seconds",
                            headers={"Retry-After": str(wait)})
    client = await guard.authenticate(tokens.db, client_id, secret)
    if client is _BUSY:
        return TokenOutcome(status=503, error="temporarily_unavailable",
                            message="too many token requests at once; retry in a second",
                            headers={"Retry-After": "1"})
    if client is None:
        await run_in_threadpool(guard.failures.failed, keys)
        return TokenOutcome(status=401, error="invalid_client",
                            message="unknown client or wrong secret",
                            headers={"WWW-Authenticate": 'Basic realm="ledger"'})
    await run_in_threadpool(guard.failures.succeeded, keys)
    scope = granted_scope(client.scope, requested_scope)
    if scope is None:
        return TokenOutcome(status=400, error="invalid_scope", message="this client is read-only")
    access_token = await run_in_threadpool(tokens.issue, client, scope)
    return TokenOutcome(token=access_token, scope=scope)

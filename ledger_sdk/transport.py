"""The HTTP half of the SDK clients: configuration, OAuth2 tokens (client credentials),
backoff with jitter, and reading one GraphQL response into a value, a `Retry` or the
final typed exception. It sends nothing itself: `Client` sends with httpx.AsyncClient,
`SyncClient` with httpx.Client, and both loop over `Retry` the same way.
"""
from __future__ import annotations

import random
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from ledger_sdk.errors import (AuthenticationError, GraphQLRequestError, InternalError,
                               LedgerAPIError, PermissionDeniedError, error_from_graphql_errors,
                               error_from_result)
from ledger_sdk.operations import Operation, Operations

# Refresh a token this long before the API would start refusing it.
TOKEN_MARGIN_SECONDS = 60


class Retry(Exception):
    """A failure worth another attempt: ``error`` is raised once the attempts run out;
    ``after`` is the server's Retry-After hint, if any."""

    def __init__(self, error: LedgerAPIError, after: float | None = None):
        self.error = error
        self.after = after


def graphql_url(api_url: str) -> str:
    url = api_url.rstrip("/")
    return url if url.endswith("/graphql") else url + "/graphql"


def default_auth_url(api_url: str) -> str:
    parts = urlsplit(api_url)
    return urlunsplit((parts.scheme, parts.netloc, "/oauth2/token", "", ""))


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


class Transport(Operations):
    """The HTTP half both clients share: configuration, tokens, backoff, and reading one
    response into a result or an exception. Sending is the client's (async or blocking)."""

    def __init__(self, client_id: str, client_secret: str, api_url: str,
                 auth_url: str | None = None, auth_scope: str | None = None, *,
                 ledger_ik: str | None = None, max_retries: int = 5,
                 backoff_base: float = 0.1, backoff_max: float = 5.0, timeout: float = 30.0,
                 headers: dict | None = None):
        self.client_id = client_id
        self._client_secret = client_secret
        self.api_url = graphql_url(api_url)
        self.auth_url = auth_url or default_auth_url(api_url)
        self.auth_scope = auth_scope
        self.ledger_ik = ledger_ik
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.timeout = timeout
        self.headers = dict(headers or {})
        self._token: str | None = None
        self._token_expires = 0.0

    def __repr__(self) -> str:  # never show the secret or the token
        return f"{type(self).__name__}(client_id={self.client_id!r}, api_url={self.api_url!r})"

    def _delay(self, attempt: int, hint: float | None) -> float:
        # "Full jitter" backoff: concurrent clients that failed together do not retry together.
        delay = random.uniform(0, min(self.backoff_max, self.backoff_base * (2 ** attempt)))
        if hint is not None:
            delay = max(delay, min(hint, 30.0))
        return delay

    def _token_valid(self) -> bool:
        return self._token is not None and time.monotonic() < self._token_expires

    def _token_request(self) -> dict:
        form = {"grant_type": "client_credentials", "client_id": self.client_id}
        if self.auth_scope:
            form["scope"] = self.auth_scope
        return {"url": self.auth_url, "data": form,
                "auth": (self.client_id, self._client_secret),
                "headers": {"Accept": "application/json"}}

    def _take_token(self, response: httpx.Response) -> str:
        if response.status_code == 429 or response.status_code >= 500:
            raise Retry(InternalError(f"http_{response.status_code}",
                                      "the token endpoint failed", status=response.status_code),
                        retry_after(response))
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code != 200 or not body.get("access_token"):
            cls = AuthenticationError if response.status_code in (400, 401) else LedgerAPIError
            raise cls(body.get("error") or f"http_{response.status_code}",
                      body.get("error_description") or "the token endpoint refused the client",
                      status=response.status_code)
        self._token = body["access_token"]
        lifetime = float(body.get("expires_in") or 3600)
        self._token_expires = time.monotonic() + max(lifetime - TOKEN_MARGIN_SECONDS, lifetime / 2)
        return self._token

    def _graphql_request(self, op: Operation, token: str) -> dict:
        return {"url": self.api_url,
                "json": {"query": op.document, "variables": op.variables},
                "headers": {**self.headers, "Authorization": f"Bearer {token}",
                            "Accept": "application/json"}}

    def _handle(self, op: Operation, response: httpx.Response) -> Any:
        """The result of one response, or `Retry`, or the final exception."""
        status = response.status_code
        if status == 429 or status >= 500:
            raise Retry(InternalError("rate_limited" if status == 429 else f"http_{status}",
                                      f"the API answered HTTP {status}", status=status),
                        retry_after(response))
        try:
            body = response.json()
        except ValueError:
            body = None
        if status == 403:
            detail = (body or {}).get("detail") or {}
            raise PermissionDeniedError(detail.get("code", "forbidden"),
                                        detail.get("message", "insufficient scope"), status=403)
        if status >= 400:
            if status == 401:
                detail = (body or {}).get("detail") or {}
                raise AuthenticationError(detail.get("code", "unauthorized"),
                                          detail.get("message", "token refused"), status=401)
            errors = (body or {}).get("errors") or []
            if errors:
                err = error_from_graphql_errors(errors)
                err.status = status
                raise err
            raise GraphQLRequestError(f"http_{status}", response.text[:500], status=status)
        if not isinstance(body, dict):
            raise Retry(InternalError("invalid_response", "the API answered something not JSON",
                                      status=status))
        data = body.get("data")
        errors = body.get("errors")
        if op.field is None:
            if errors:
                raise error_from_graphql_errors(errors)
            return op.parse(data)
        value = (data or {}).get(op.field)
        if value is None and errors:
            err = error_from_graphql_errors(errors)
            if err.retryable:
                raise Retry(err)
            raise err
        if isinstance(value, dict) and value.get("__typename") in (
                "BadRequestError", "InternalError", "NotFoundError"):
            err = error_from_result(value)
            if isinstance(err, InternalError):
                raise Retry(err)
            raise err
        return op.parse(value)

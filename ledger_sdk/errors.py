"""Exceptions the SDK raises. Every one carries ``code``, ``message`` and ``retryable``, the
same three fields the API's error results carry, so callers can branch on them alike."""
from __future__ import annotations


class LedgerAPIError(Exception):
    """Base of every SDK error."""

    retryable = False

    def __init__(self, code: str, message: str, *, retryable: bool | None = None,
                 typename: str | None = None, status: int | None = None,
                 errors: list | None = None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        if retryable is not None:
            self.retryable = retryable
        self.typename = typename or type(self).__name__
        self.status = status
        # The GraphQL ``errors`` list when the error came from one.
        self.errors = errors or []


class BadRequestError(LedgerAPIError):
    """The API refused the request as sent (BadRequestError result): never retried."""


class NotFoundError(LedgerAPIError):
    """What the request names does not exist."""


class InternalError(LedgerAPIError):
    """The API failed transiently and retries ran out (InternalError result, 5XX, 429)."""

    retryable = True


class TransportError(LedgerAPIError):
    """The API could not be reached, and retries ran out."""

    retryable = True


def network_error(exc: Exception) -> TransportError:
    """A `TransportError` for an httpx transport failure, naming the URL it tried: "connection
    refused" alone does not say whether the address or the server is wrong."""
    try:
        url = str(exc.request.url)  # type: ignore[attr-defined]
    except (AttributeError, RuntimeError):
        url = None
    detail = str(exc) or type(exc).__name__
    where = f" {url}" if url else ""
    return TransportError("network_error", f"cannot reach{where}: {type(exc).__name__}: {detail}")


class AuthenticationError(LedgerAPIError):
    """Bad client credentials, or a token the API does not accept (HTTP 401)."""


class PermissionDeniedError(LedgerAPIError):
    """The client's scope does not allow this call (HTTP 403), e.g. a read-only client."""


class GraphQLRequestError(LedgerAPIError):
    """The document or its variables do not conform to the API's GraphQL schema (HTTP 4XX)."""


def error_from_result(result: dict) -> LedgerAPIError:
    """An exception for a mutation's error member (``__typename``, ``code``, ``message``)."""
    typename = result.get("__typename") or "InternalError"
    cls = {"BadRequestError": BadRequestError, "InternalError": InternalError,
           "NotFoundError": NotFoundError}.get(typename, LedgerAPIError)
    return cls(result.get("code") or "unknown", result.get("message") or typename,
               retryable=result.get("retryable"), typename=typename)


def error_from_graphql_errors(errors: list) -> LedgerAPIError:
    first = errors[0] if errors else {}
    ext = first.get("extensions") or {}
    typename = ext.get("typename")
    cls = {"BadRequestError": BadRequestError, "InternalError": InternalError,
           "NotFoundError": NotFoundError}.get(typename, GraphQLRequestError)
    return cls(ext.get("code") or "graphql_error", first.get("message") or "GraphQL error",
               retryable=ext.get("retryable"), typename=typename, errors=errors)

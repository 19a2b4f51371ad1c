"""ASGI middleware of the API: request counts for /metrics (api.metrics), the request id
of log lines, the request body size limit, the JSON nesting limit, and the last-resort
500."""
from __future__ import annotations

import time
import uuid

from fastapi import Request
from fastapi.responses import JSONResponse

from api import jsonbody
from api.errors import unexpected_error_handler
from ledger import service


# ------------------------------------------------------------------ metrics and request ids

class MetricsMiddleware:
    def __init__(self, app, metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            # The route template, never the raw path: ids in paths would make the label
            # set grow without bound.
            name = getattr(route, "path", None) or "unmatched"
            self.metrics.http_request(scope.get("method", ""), name, status["code"],
                                      time.perf_counter() - started)


REQUEST_ID_HEADER = b"x-request-id"
# A caller's id is kept when it looks like one (a proxy's or a client's), so the logs of
# both sides join; anything longer or stranger is replaced rather than logged.
_MAX_REQUEST_ID = 128


def _request_id(headers) -> str:
    for name, value in headers:
        if name == REQUEST_ID_HEADER:
            text = value.decode("latin-1").strip()
            if 0 < len(text) <= _MAX_REQUEST_ID and text.isprintable():
                return text
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """Every log line written while a request is answered carries its ``request_id``
    (ledger.service.log_fields), and the response says it in ``X-Request-ID``."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request_id = _request_id(scope.get("headers", []))

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0] != REQUEST_ID_HEADER]
                message = {**message,
                           "headers": headers + [(REQUEST_ID_HEADER, request_id.encode())]}
            await send(message)

        with service.log_fields(request_id=request_id):
            await self.app(scope, receive, send_with_id)


# ------------------------------------------------------------------ body size limit

class _BodyTooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """413 for a request body over the limit: at once when Content-Length says so, else as
    soon as the streamed body passes it, before the application sees all of it."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def _refuse(self, send) -> None:
        body = (b'{"__typename":"BadRequestError","code":"payload_too_large",'
                b'"message":"request body over ' + str(self.max_bytes).encode()
                + b' bytes","retryable":false}')
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    return await self._refuse(send)
        received = 0
        sent = _Tracked(send)

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge()
            return message

        try:
            await self.app(scope, limited_receive, sent)
        except _BodyTooLarge:
            if not sent.started:
                await self._refuse(send)


class _Tracked:
    """An ASGI ``send`` that remembers whether the response has begun: once it has, an
    error can no longer be answered with a response of its own."""

    def __init__(self, send):
        self.send = send
        self.started = False

    async def __call__(self, message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        await self.send(message)


# ------------------------------------------------------------------ JSON nesting limit

class BodyDepthMiddleware:
    """400 ``json_too_deep`` for a request body that nests deeper than the limit, before
    any route decodes it (api.jsonbody says why). Every body is checked, whatever its
    content type claims: the GraphQL and webhook routes decode what they are sent as JSON.
    Runs inside the size limit, so the body it holds is at most ``max_body_bytes``."""

    def __init__(self, app, max_depth: int):
        self.app = app
        self.max_depth = max_depth

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                # The client left before sending its body: nothing to check.
                return await self.app(scope, _replay([message], receive), send)
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if jsonbody.nesting_depth(body) > self.max_depth:
            response = JSONResponse(jsonbody.too_deep(self.max_depth).to_dict(),
                                    status_code=400)
            return await response(scope, receive, send)
        await self.app(scope, _replay([{"type": "http.request", "body": body,
                                        "more_body": False}], receive), send)


def _replay(messages: list[dict], receive):
    """A ``receive`` that hands out ``messages`` first, then waits on the real one (for
    the disconnect)."""
    pending = list(messages)

    async def replay():
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


# ------------------------------------------------------------------ unexpected errors

class UnexpectedErrorMiddleware:
    """A 500 with the masked ``InternalError`` body for an exception no handler took, and
    the connection kept open. Starlette's own last-resort handler answers the same but then
    re-raises, so that the server logs it; uvicorn, seeing an exception after the response
    started, closes the transport, and a keep-alive client's next request on it is reset.
    Here the error is logged once and not re-raised. An exception after the response
    started still propagates: that response is cut short and the connection must go."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        sent = _Tracked(send)
        try:
            await self.app(scope, receive, sent)
        except Exception as exc:
            if sent.started:
                raise
            response = unexpected_error_handler(Request(scope), exc)
            await response(scope, receive, send)

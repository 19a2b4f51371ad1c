"""The API's ASGI middleware: every HTTP request's request id, the body size and nesting
limits, the last-resort 500 and the request counts of /metrics, in one layer (`Guard`)."""
from __future__ import annotations

import time
import uuid

from fastapi import Request
from fastapi.responses import JSONResponse

from api import jsonbody
from api.errors import unexpected_error_handler
from ledger import service

REQUEST_ID_HEADER = b"x-request-id"
# Where Guard leaves the body it read whole (an ASGI scope extension key), for the routes
# that decode it at once: starlette's Request.body() would read it again, message by
# message, through the replayed receive (4% of a post's event-loop time at 32 callers).
BODY_KEY = "ledger.body"
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


class Guard:
    """What every HTTP request goes through before the application, in one pass: five
    middleware classes did it before, each a call and a wrapped ``send`` more on the event
    loop for every request. Outermost first:

    - its request id is on every log line written while it is answered
      (ledger.service.log_fields), and the response says it in ``X-Request-ID``;
    - it is counted for /metrics by its route template (never the raw path: ids in paths
      would grow the label sets without bound), the refusals below included;
    - a body over ``max_bytes`` is refused with 413: at once when Content-Length says so,
      else as soon as the streamed body passes it, before the application sees any of it;
    - a body that nests deeper than ``max_depth`` is refused with 400 ``json_too_deep``
      before any route decodes it (api.jsonbody says why), whatever its content type
      claims: the GraphQL and webhook routes decode what they are sent as JSON;
    - an exception no handler took is answered with a 500 and the masked
      ``InternalError`` body, and the connection kept open. Starlette's own last-resort
      handler answers the same but then re-raises, so that the server logs it; uvicorn,
      seeing an exception after the response started, closes the transport, and a
      keep-alive client's next request on it is reset. Here the error is logged once and
      not re-raised. An exception after the response started still propagates: that
      response is cut short and the connection must go."""

    def __init__(self, app, metrics, max_bytes: int, max_depth: int):
        self.app = app
        self.metrics = metrics
        self.max_bytes = max_bytes
        self.max_depth = max_depth

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        request_id = _request_id(scope.get("headers", []))
        header = (REQUEST_ID_HEADER, request_id.encode())
        response = _Response(send, header)
        try:
            with service.log_fields(request_id=request_id):
                await self._limited(scope, receive, response)
        finally:
            route = scope.get("route")
            self.metrics.http_request(scope.get("method", ""),
                                      getattr(route, "path", None) or "unmatched",
                                      response.status, time.perf_counter() - started)

    async def _limited(self, scope, receive, response: "_Response") -> None:
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    return await self._too_large(response)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                # The client left before sending its body: nothing to check.
                return await self._answered(scope, _replay([message], receive), response)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return await self._too_large(response)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        scope[BODY_KEY] = body
        if jsonbody.nesting_depth(body) > self.max_depth:
            refusal = JSONResponse(jsonbody.too_deep(self.max_depth).to_dict(), status_code=400)
            return await refusal(scope, receive, response)
        await self._answered(scope, _replay([{"type": "http.request", "body": body,
                                              "more_body": False}], receive), response)

    async def _too_large(self, response: "_Response") -> None:
        body = (b'{"__typename":"BadRequestError","code":"payload_too_large",'
                b'"message":"request body over ' + str(self.max_bytes).encode()
                + b' bytes","retryable":false}')
        await response({"type": "http.response.start", "status": 413,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode()),
                                    (b"connection", b"close")]})
        await response({"type": "http.response.body", "body": body})

    async def _answered(self, scope, receive, response: "_Response") -> None:
        try:
            await self.app(scope, receive, response)
        except Exception as exc:
            if response.started:
                raise
            answer = unexpected_error_handler(Request(scope), exc)
            await answer(scope, receive, response)


class _Response:
    """The ASGI ``send`` the application gets: it adds the request id to the response's
    headers and remembers the status (500 until one is sent: an exception that escapes
    is counted as one)."""

    def __init__(self, send, header: tuple[bytes, bytes]):
        self.send = send
        self.header = header
        self.status = 500
        self.started = False

    async def __call__(self, message) -> None:
        if message["type"] == "http.response.start":
            self.status, self.started = message["status"], True
            headers = [h for h in message.get("headers", []) if h[0] != REQUEST_ID_HEADER]
            message = {**message, "headers": headers + [self.header]}
        await self.send(message)


async def request_body(request: Request) -> bytes:
    """The request's whole body: as Guard read it, else read now."""
    body = request.scope.get(BODY_KEY)
    return body if body is not None else await request.body()


def _replay(messages: list[dict], receive):
    """A ``receive`` that hands out ``messages`` first, then waits on the real one (for
    the disconnect)."""
    pending = list(messages)

    async def replay():
        if pending:
            return pending.pop(0)
        return await receive()

    return replay

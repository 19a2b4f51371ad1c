"""ASGI middleware of the API: Prometheus-style counters, the request body size limit, the
JSON nesting limit, and the last-resort 500."""
from __future__ import annotations

import threading
import time

from fastapi import Request
from fastapi.responses import JSONResponse

from api import jsonbody
from api.errors import unexpected_error_handler


# ------------------------------------------------------------------ metrics

class Metrics:
    """A few counters in the Prometheus text format, written by hand (no extra dependency)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, str], int] = {}
        self.durations: dict[str, list[float]] = {}
        self.operations: dict[tuple[str, str], int] = {}

    def http_request(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            key = (method, route, str(status))
            self.requests[key] = self.requests.get(key, 0) + 1
            total = self.durations.setdefault(route, [0.0, 0])
            total[0] += seconds
            total[1] += 1

    def graphql_operation(self, operation: str, outcomes: list[tuple[str, str]], result) -> None:
        with self._lock:
            if outcomes:
                for name, typename in outcomes:
                    key = (name, typename)
                    self.operations[key] = self.operations.get(key, 0) + 1
            else:
                key = (operation, "error" if result.errors else "ok")
                self.operations[key] = self.operations.get(key, 0) + 1

    @staticmethod
    def _label(value: str) -> str:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    def render(self) -> str:
        lab = self._label
        with self._lock:
            out = ["# HELP ledger_http_requests_total HTTP requests answered.",
                   "# TYPE ledger_http_requests_total counter"]
            for (method, route, status), n in sorted(self.requests.items()):
                out.append(f'ledger_http_requests_total{{method="{lab(method)}",'
                           f'route="{lab(route)}",status="{status}"}} {n}')
            out += ["# HELP ledger_http_request_duration_seconds Time spent answering requests.",
                    "# TYPE ledger_http_request_duration_seconds summary"]
            for route, (seconds, count) in sorted(self.durations.items()):
                out.append(f'ledger_http_request_duration_seconds_sum{{route="{lab(route)}"}} '
                           f'{seconds:.6f}')
                out.append(f'ledger_http_request_duration_seconds_count{{route="{lab(route)}"}} '
                           f'{count}')
            out += ["# HELP ledger_graphql_operations_total GraphQL mutations by result type "
                    "(queries by ok/error).",
                    "# TYPE ledger_graphql_operations_total counter"]
            for (name, result), n in sorted(self.operations.items()):
                out.append(f'ledger_graphql_operations_total{{field="{lab(name)}",'
                           f'result="{lab(result)}"}} {n}')
        return "\n".join(out) + "\n"


class MetricsMiddleware:
    def __init__(self, app, metrics: Metrics):
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

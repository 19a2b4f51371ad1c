"""The FastAPI application: GraphQL at /graphql, OAuth2 at /oauth2/token, REST at /v1 (when
present), /healthz and /metrics.

``create_app(settings)`` builds one; the module-level ``app`` (for ``uvicorn api.app:app``)
reads its settings from the environment. With ``DATABASE_URL`` unset it starts (or reuses)
the embedded PostgreSQL under the data folder, as ``ledger up`` does.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.concurrency import run_in_threadpool

from api import auth
from api.graphql.http import router as graphql_router
from api.graphql.schema import schema as graphql_schema
from api.webhooks import router as webhooks_router
from ledger.db import Database
from ledger.errors import LedgerError

log = logging.getLogger("api")

DEFAULT_MAX_BODY_BYTES = 1024 * 1024


def _env_bool(name: str) -> bool | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return None
    return value.strip().lower() in ("1", "true", "yes", "on")


@dataclass
class Settings:
    database_url: str | None = None
    data_dir: str = ".ledger"
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    token_ttl_seconds: int = auth.DEFAULT_TTL_SECONDS
    # Run the migrations at startup. None: only for the embedded database, which nobody
    # else would migrate; a shared server is migrated by `ledger migrate`, once.
    migrate_on_start: bool | None = None

    @classmethod
    def from_env(cls) -> "Settings":
        return cls(
            database_url=os.environ.get("DATABASE_URL") or None,
            data_dir=os.environ.get("LEDGER_DATA_DIR") or ".ledger",
            max_body_bytes=int(os.environ.get("LEDGER_MAX_BODY_BYTES") or DEFAULT_MAX_BODY_BYTES),
            token_ttl_seconds=int(os.environ.get("LEDGER_TOKEN_TTL_SECONDS")
                                  or auth.DEFAULT_TTL_SECONDS),
            migrate_on_start=_env_bool("LEDGER_MIGRATE_ON_START"),
        )


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
        started = False

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge()
            return message

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await self._refuse(send)


# ------------------------------------------------------------------ errors

_STATUS_OF = {"BadRequestError": 422, "NotFoundError": 404, "InternalError": 503}


def _ledger_error_response(request: Request, exc: LedgerError) -> JSONResponse:
    status = _STATUS_OF.get(exc.typename, 500)
    return JSONResponse(exc.to_dict(), status_code=status)


def _unexpected_error_response(request: Request, exc: Exception) -> JSONResponse:
    log.error("unexpected failure on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"__typename": "InternalError", "code": "internal_error",
                         "message": "internal error; retry the request", "retryable": True},
                        status_code=500)


def _validation_error_response(request: Request, exc: RequestValidationError) -> JSONResponse:
    # FastAPI's default echoes the offending input back; keep the location and reason only.
    problems = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
    first = problems[0] if problems else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(p) for p in first["loc"] if p != "body") or "body"
    return JSONResponse({"__typename": "BadRequestError", "code": "invalid_input",
                         "message": f"{where}: {first['msg']}", "retryable": False,
                         "errors": problems}, status_code=422)


# ------------------------------------------------------------------ the app

def _open_database(settings: Settings, state: Any) -> Database:
    url = settings.database_url
    embedded = False
    if not url:
        from ledger.embedded import resolve_urls

        url, _redis_url, keepalive = resolve_urls(Path(settings.data_dir))
        state.keepalive = keepalive
        embedded = True
    migrate = settings.migrate_on_start if settings.migrate_on_start is not None else embedded
    if migrate:
        from ledger.migrate import upgrade

        upgrade(url)
    return Database(url)


def create_app(settings: Settings | None = None, db: Database | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if getattr(app.state, "db", None) is None:
            app.state.db = await run_in_threadpool(_open_database, settings, app.state)
            app.state.tokens = auth.TokenService(app.state.db, settings.token_ttl_seconds)
            app.state.owns_db = True
        try:
            yield
        finally:
            if app.state.owns_db:
                app.state.db.dispose()
            keepalive = getattr(app.state, "keepalive", None)
            if keepalive is not None:
                keepalive.stop()

    app = FastAPI(
        title="moneyledger",
        summary="A self-hosted double-entry ledger: a database for money.",
        description="GraphQL at /graphql (the operations of the seeds' API documentation), "
                    "OAuth2 client credentials at /oauth2/token.",
        version="0.1.0",
        lifespan=lifespan,
        # The API's descriptions are served below behind a token like every other route
        # (only /healthz, /oauth2/token and the signed webhook are open); the interactive
        # pages would load their scripts from a CDN, which a self-hosted ledger can't assume.
        openapi_url=None, docs_url=None, redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.db = db
    # A database handed in belongs to the caller, who disposes of it.
    app.state.owns_db = False
    if db is not None:
        app.state.tokens = auth.TokenService(db, settings.token_ttl_seconds)
    elif settings.database_url:
        # Connecting is lazy, so this costs nothing until the first request; it also lets
        # apps driven without a lifespan (some test clients) work.
        app.state.db = _open_database(settings, app.state)
        app.state.tokens = auth.TokenService(app.state.db, settings.token_ttl_seconds)
        app.state.owns_db = True

    app.add_exception_handler(LedgerError, _ledger_error_response)
    app.add_exception_handler(RequestValidationError, _validation_error_response)
    app.add_exception_handler(Exception, _unexpected_error_response)
    # Starlette runs the last added middleware first: the size limit sees the request
    # before anything reads its body, and metrics count the 413s too.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)

    app.include_router(auth.router)
    app.include_router(graphql_router)
    app.include_router(webhooks_router)  # no token: the Stripe signature authenticates

    @app.get("/healthz", tags=["ops"], summary="Liveness and database reachability")
    def healthz(request: Request):
        database = request.app.state.db
        try:
            with database.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        except Exception:
            log.warning("health check: database unreachable", exc_info=True)
            return JSONResponse({"status": "unavailable", "database": "unreachable"},
                                status_code=503)
        return {"status": "ok", "database": "ok"}

    @app.get("/metrics", tags=["ops"], summary="Prometheus metrics",
             response_class=PlainTextResponse)
    def metrics_endpoint(_principal=Depends(auth.require_scope("read"))):
        return PlainTextResponse(metrics.render(),
                                 media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/openapi.json", tags=["ops"], summary="The OpenAPI description of this API")
    def openapi_json(_principal=Depends(auth.require_scope("read"))):
        return JSONResponse(app.openapi())

    @app.get("/schema.graphql", tags=["graphql"], response_class=PlainTextResponse,
             summary="The GraphQL schema (SDL), for SDK code generators")
    def schema_sdl(_principal=Depends(auth.require_scope("read"))):
        return PlainTextResponse(graphql_schema.as_str() + "\n")

    try:
        from api.v1 import router as v1_router
    except ModuleNotFoundError as exc:
        # Only a missing api.v1 is expected (the REST API is optional); a missing
        # dependency inside it is a real error.
        if exc.name != "api.v1":
            raise
    else:
        app.include_router(v1_router)

    return app


class _LazyApp:
    """``api.app:app`` for uvicorn, built on first use so importing this module (tests, the
    CLI) neither reads the environment nor starts an embedded database."""

    _app: FastAPI | None = None

    def _get(self) -> FastAPI:
        if self._app is None:
            self._app = create_app()
        return self._app

    async def __call__(self, scope, receive, send):
        await self._get()(scope, receive, send)

    def __getattr__(self, name):
        return getattr(self._get(), name)


app = _LazyApp()

"""The FastAPI application: GraphQL at /graphql, OAuth2 at /oauth2/token, REST at /v1 (when
present), the Stripe webhook, /healthz, /metrics and the dashboard at /ui.

``create_app(settings)`` builds one; building it starts nothing. For uvicorn,
``uvicorn api.app:app_from_env --factory`` reads the settings from the environment once.
With no database URL the app starts (or reuses) the embedded PostgreSQL under the data
folder when it starts serving, as ``ledger up`` does.
"""
from __future__ import annotations

import inspect
import logging
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool

from api import auth, errors, ops, telemetry, ui
from api.broker import Broker
from api.graphql.http import Shortcut
from api.graphql.http import router as graphql_router
from api.metrics import Metrics
from api.middleware import Guard
from api.webhooks import router as webhooks_router
from ledger import service
from ledger.db import Database
from ledger.embedded import resolve_servers
from ledger.errors import LedgerError
from ledger.settings import Settings

server_log = logging.getLogger("uvicorn.error")

# Tracing is configured by LEDGER_OTEL (api.telemetry). FastAPI's own OpenTelemetry (from
# 0.165) otherwise looks up three global providers on every request to learn it has nothing
# to do: 3% of a process's CPU under 32 concurrent posts (py-spy --gil).
_FASTAPI_OPTIONS = ({"telemetry": {"tracing": False, "metrics": False, "logs": False}}
                    if "telemetry" in inspect.signature(FastAPI.__init__).parameters else {})


def _open_database(settings: Settings, state: Any) -> Database:
    """The database of ``settings`` (the embedded one when it names none: the app then
    also sends to the embedded Redis), migrated first if asked or if embedded."""
    embedded = not settings.database_url
    if embedded:
        settings, state.keepalive = resolve_servers(settings, redis=False)
        state.settings = settings
    migrate = settings.migrate_on_start if settings.migrate_on_start is not None else embedded
    if migrate:
        from ledger.migrate import upgrade

        upgrade(settings.database_url)
    return Database(settings.database_url,
                    statement_timeout_seconds=settings.statement_timeout_seconds)


def _use_database(app: FastAPI, db: Database, owned: bool) -> None:
    app.state.db = db
    settings = app.state.settings
    app.state.tokens = auth.TokenService(db, settings.token_ttl_seconds,
                                         service.Keyring.of(settings),
                                         client_cache_seconds=settings.client_cache_seconds)
    app.state.owns_db = owned


@asynccontextmanager
async def _lifespan(app: FastAPI):
    if app.state.db is None:
        db = await run_in_threadpool(_open_database, app.state.settings, app.state)
        _use_database(app, db, owned=True)
    if app.state.owns_db:
        # Before the first request: the pool is rebuilt to this process's share.
        settings = app.state.settings
        size = await run_in_threadpool(app.state.db.fit_pool, settings.api_processes,
                                       settings.db_reserved_connections)
        # uvicorn's logger: the one its configuration shows at INFO.
        (server_log.warning if size.starved else server_log.info)("%s", size.describe())
    # Refuse to start, saying what to do, when the stored secrets need a key we lack.
    await run_in_threadpool(service.check_secrets, app.state.db,
                            service.Keyring.of(app.state.settings))
    # Before the first token request: an unknown client id is checked against it.
    await run_in_threadpool(service.dummy_hash)
    if getattr(app.state, "freeze_heap", False):
        server_log.info("startup heap frozen: %d objects left out of the garbage "
                        "collector's scans", service.freeze_startup_heap())
    try:
        yield
    finally:
        # Its threads go with it; an app served again makes a new one.
        runner, app.state.graphql_runner = getattr(app.state, "graphql_runner", None), None
        if runner is not None:
            runner.close()
        if app.state.owns_db:
            app.state.db.dispose()
        keepalive = getattr(app.state, "keepalive", None)
        if keepalive is not None:
            keepalive.stop()


def create_app(settings: Settings, db: Database | None = None) -> FastAPI:
    """The API for ``settings``. A database handed in belongs to the caller, who disposes
    of it; else the app opens its own (lazily: connecting costs nothing until the first
    request, so apps driven without a lifespan, as some test clients are, work too)."""
    app = FastAPI(
        title="moneyledger",
        summary="A self-hosted double-entry ledger: a database for money.",
        description="GraphQL at /graphql (the operations of the seeds' API documentation), "
                    "OAuth2 client credentials at /oauth2/token.",
        version="0.1.0",
        lifespan=_lifespan,
        # The API's descriptions are served behind a token like every other route (only
        # /healthz, /oauth2/token and the signed webhook are open); the interactive pages
        # would load their scripts from a CDN, which a self-hosted ledger can't assume.
        openapi_url=None, docs_url=None, redoc_url=None,
        **_FASTAPI_OPTIONS,
    )
    app.state.settings = settings
    service.configure_events(settings.events)
    if settings.metrics_dir:
        settings.metrics_dir.mkdir(parents=True, exist_ok=True)
    app.state.metrics = Metrics(settings, lambda: app.state.db)
    telemetry.instrument_process(settings)
    app.state.broker = Broker()
    app.state.db = None
    app.state.owns_db = False
    if db is not None:
        _use_database(app, db, owned=False)
    elif settings.database_url:
        _use_database(app, _open_database(settings, app.state), owned=True)

    app.add_exception_handler(LedgerError, errors.ledger_error_handler)
    app.add_exception_handler(RequestValidationError, errors.validation_error_handler)
    # Starlette runs the last added middleware first. The request id, /metrics, the body
    # limits and the last-resort 500 come first, in one layer (api.middleware.Guard):
    # unexpected errors are answered there, not by an exception handler for Exception,
    # which would re-raise and so close the connection. Inside it, POST /graphql skips the
    # router (api.graphql.http.Shortcut).
    app.add_middleware(Shortcut)
    app.add_middleware(Guard, metrics=app.state.metrics, max_bytes=settings.max_body_bytes,
                       max_depth=settings.max_json_depth)
    telemetry.instrument_app(app, settings)

    fastapi_openapi = app.openapi
    app.openapi = lambda: errors.document_answers(fastapi_openapi())

    app.include_router(auth.router)
    app.include_router(graphql_router)
    app.include_router(webhooks_router)  # no token: the Stripe signature authenticates
    app.include_router(ops.router)
    _include_rest(app)
    ui.install(app)
    return app


def _include_rest(app: FastAPI) -> None:
    try:
        from api.v1 import router as v1_router
    except ModuleNotFoundError as exc:
        # Only a missing api.v1 is expected (the REST API is optional); a missing
        # dependency inside it is a real error.
        if exc.name != "api.v1":
            raise
    else:
        from api.holds import router as holds_router
        from api.wallet import router as wallet_router
        from api.events import router as events_router
        app.include_router(v1_router)
        app.include_router(wallet_router)
        app.include_router(events_router)
        app.include_router(holds_router)


def app_from_env() -> FastAPI:
    """The factory uvicorn runs (``--factory``): the settings read once, from the
    environment."""
    settings = Settings.from_env()
    if settings.log_format == "json":
        # uvicorn has configured its loggers by now; the API's own go through the root.
        service.use_json_logs(*(logging.getLogger(name)
                                for name in ("uvicorn", "uvicorn.error", "uvicorn.access")))
    app = create_app(settings)
    # A process that serves only this app, until it stops: what it holds once started
    # stays, so it is frozen (ledger.heap). Not for apps made in a process that goes on to
    # make others (tests): their cyclic garbage would be kept until that process ends.
    app.state.freeze_heap = True
    return app

"""Operations routes: /healthz (open), and behind a read token /metrics, the OpenAPI
description and the GraphQL SDL."""
from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from api.auth import require_scope
from api.graphql.schema import schema as graphql_schema
from api.metrics import CONTENT_TYPE

log = logging.getLogger("api")

router = APIRouter()


@router.get("/healthz", tags=["ops"], summary="Liveness and database reachability")
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


@router.get("/metrics", tags=["ops"], summary="Prometheus metrics",
            description="This process's counters (every process's when "
                        "PROMETHEUS_MULTIPROC_DIR is set) and the queues' backlog, read from "
                        "the database now.",
            response_class=PlainTextResponse)
def metrics_endpoint(request: Request, _principal=Depends(require_scope("read"))):
    # A sync route: FastAPI runs it in a thread, and the backlog is read from the database.
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE)


@router.get("/openapi.json", tags=["ops"], summary="The OpenAPI description of this API")
def openapi_json(request: Request, _principal=Depends(require_scope("read"))):
    return JSONResponse(request.app.openapi())


@router.get("/schema.graphql", tags=["graphql"], response_class=PlainTextResponse,
            summary="The GraphQL schema (SDL), for SDK code generators")
def schema_sdl(_principal=Depends(require_scope("read"))):
    return PlainTextResponse(graphql_schema.as_str() + "\n")

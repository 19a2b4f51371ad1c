"""OpenTelemetry tracing of the API, when ``LEDGER_OTEL`` asks for it (settings.otel).

A request's trace: the FastAPI span, the SQLAlchemy and psycopg spans of its transactions
(the accepted jobs written to the outbox, or a synchronous post), and the Celery publish of
the doorbell, whose headers carry the trace to the worker that posts the jobs
(workers/telemetry.py). The provider and exporter: ledger.service.tracer_provider."""
from __future__ import annotations

import logging

from fastapi import FastAPI

from ledger import service
from ledger.settings import Settings

log = logging.getLogger("api")

SERVICE_NAME = "ledger-api"


def instrument_process(settings: Settings) -> None:
    """Trace the database and broker clients of this process: call before its database
    engine is made."""
    provider = service.tracer_provider(settings, SERVICE_NAME)
    if provider is None:
        return
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    service.trace_database_clients(provider)
    # In the API only the publish signals fire: the doorbell's message gets the headers.
    if not CeleryInstrumentor().is_instrumented_by_opentelemetry:
        CeleryInstrumentor().instrument(tracer_provider=provider)


def trace_context(settings: Settings) -> str | None:
    """The current span's W3C ``traceparent`` (None when tracing is off), for the posting
    jobs a request submits: the worker links its span to it (workers/telemetry.py)."""
    if settings.otel == "off":
        return None
    from opentelemetry.propagate import inject

    carrier: dict[str, str] = {}
    inject(carrier)
    return carrier.get("traceparent")


def instrument_app(app: FastAPI, settings: Settings) -> None:
    provider = service.tracer_provider(settings, SERVICE_NAME)
    if provider is None:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    # /healthz and /metrics are polled every few seconds: traces of them are noise.
    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider,
                                       excluded_urls="/healthz,/metrics")
    log.info("OpenTelemetry tracing on (%s exporter)", settings.otel)

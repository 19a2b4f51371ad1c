"""OpenTelemetry tracing of the API, when ``LEDGER_OTEL`` asks for it (settings.otel).

A request's trace: the FastAPI span, the SQLAlchemy and psycopg spans of its
transactions (the accepted jobs written to the outbox, or a synchronous post), and the
Celery publish of the doorbell, whose headers carry the trace to the worker that posts the
jobs (workers/telemetry.py). The exporter is OTLP over HTTP, configured by the standard
``OTEL_EXPORTER_OTLP_*`` and ``OTEL_SERVICE_NAME`` variables, or the console.

Tracing is set up once per process: a tracer provider already installed (by
``opentelemetry-instrument``, or a test's in-memory exporter) is used as it is."""
from __future__ import annotations

import logging
import threading

from fastapi import FastAPI

from ledger.settings import Settings

log = logging.getLogger("api")

_LOCK = threading.Lock()


def tracer_provider(settings: Settings):
    """The process's SDK tracer provider, installed on first call; None when tracing is
    off."""
    if settings.otel == "off":
        return None
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    with _LOCK:
        current = trace.get_tracer_provider()
        if isinstance(current, TracerProvider):
            return current
        if settings.otel == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            exporter = OTLPSpanExporter()
        else:
            exporter = ConsoleSpanExporter()
        # OTEL_SERVICE_NAME, when set, wins over this default (Resource.create reads it).
        provider = TracerProvider(resource=Resource.create({"service.name": "ledger-api"}))
        provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        return provider


def instrument_process(settings: Settings) -> None:
    """Trace the database and broker clients of this process: call before its database
    engine is made (the SQLAlchemy instrumentation wraps engines as they are created)."""
    provider = tracer_provider(settings)
    if provider is None:
        return
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    # Each instrumentor is a singleton that instruments once per process.
    for instrumentor in (SQLAlchemyInstrumentor(), PsycopgInstrumentor(), CeleryInstrumentor()):
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument(tracer_provider=provider)


def instrument_app(app: FastAPI, settings: Settings) -> None:
    provider = tracer_provider(settings)
    if provider is None:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    # /healthz and /metrics are polled every few seconds: traces of them are noise.
    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider,
                                       excluded_urls="/healthz,/metrics")
    log.info("OpenTelemetry tracing on (%s exporter)", settings.otel)

"""The OpenTelemetry tracer provider of a process, and the tracing of its database clients
(SQLAlchemy and psycopg), when ``LEDGER_OTEL`` asks for them (settings.otel). The edges add
their own instrumentations on top: FastAPI in api/telemetry.py, Celery in both.

The exporter is OTLP over HTTP, configured by the standard ``OTEL_EXPORTER_OTLP_*`` and
``OTEL_SERVICE_NAME`` variables, or the console. A tracer provider already installed (by
``opentelemetry-instrument``, or a test's in-memory exporter) is used as it is. The
opentelemetry packages (the ``otel`` extra) are imported only when tracing is on."""
from __future__ import annotations

import threading
from typing import Any

from ledger.settings import Settings, SettingsError

_LOCK = threading.Lock()


def tracer_provider(settings: Settings, service_name: str) -> Any:
    """The process's SDK tracer provider, installed on first call; None when tracing is
    off."""
    if settings.otel == "off":
        return None
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
    except ModuleNotFoundError as exc:
        raise SettingsError(f"LEDGER_OTEL={settings.otel} needs the otel extra: pip install "
                            f"'moneyledger[otel]' ({exc.name} is missing)") from None
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
        provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        return provider


def trace_database_clients(provider: Any) -> None:
    """Spans for every statement: call before the process makes its database engine (the
    SQLAlchemy instrumentation wraps engines as they are created). Once per process."""
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    for instrumentor in (SQLAlchemyInstrumentor(), PsycopgInstrumentor()):
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument(tracer_provider=provider)

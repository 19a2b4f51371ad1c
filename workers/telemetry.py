"""OpenTelemetry tracing of the workers, when ``LEDGER_OTEL`` asks for it: a task's span
continues the trace of the request that rang its doorbell (the Celery instrumentation
reads the message's headers), with the SQLAlchemy and psycopg spans of the posting
transaction inside it. Set up in each pool child, after the fork: the exporter's thread
and connections do not survive one. See api/telemetry.py for the exporter's variables."""
from __future__ import annotations

from ledger.settings import Settings


def start(settings: Settings) -> None:
    if settings.otel == "off":
        return
    from opentelemetry import trace
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        if settings.otel == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            exporter = OTLPSpanExporter()
        else:
            exporter = ConsoleSpanExporter()
        provider = TracerProvider(resource=Resource.create({"service.name": "ledger-worker"}))
        provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
    for instrumentor in (CeleryInstrumentor(), SQLAlchemyInstrumentor(), PsycopgInstrumentor()):
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument(tracer_provider=provider)


def annotate(result) -> None:
    """Put what a batch did on the current task's span (a no-op without tracing)."""
    from opentelemetry import trace

    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes({"ledger.partition": result.partition,
                             "ledger.jobs.claimed": result.claimed,
                             "ledger.jobs.posted": result.posted,
                             "ledger.jobs.failed": result.failed})

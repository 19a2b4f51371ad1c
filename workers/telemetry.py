"""OpenTelemetry tracing of the workers, when ``LEDGER_OTEL`` asks for it: a task's span
continues the trace of the request that rang its doorbell (the Celery instrumentation
reads the message's headers), with the SQLAlchemy and psycopg spans of the posting
transaction inside it. Set up in the main process and again in each pool child (a no-op
when inherited): ledger.service.tracer_provider has the exporter's variables."""
from __future__ import annotations

from ledger import service
from ledger.settings import Settings


def start(settings: Settings) -> None:
    provider = service.tracer_provider(settings, "ledger-worker")
    if provider is None:
        return
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    service.trace_database_clients(provider)
    if not CeleryInstrumentor().is_instrumented_by_opentelemetry:
        CeleryInstrumentor().instrument(tracer_provider=provider)


def annotate(result) -> None:
    """Put what a batch did on the current task's span, linked to the trace of each request
    that submitted one of its jobs (the doorbell's own request is its parent already)."""
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    span = trace.get_current_span()
    if span.is_recording():
        propagator = TraceContextTextMapPropagator()
        for traceparent in result.trace_contexts:
            linked = trace.get_current_span(propagator.extract({"traceparent": traceparent}))
            if linked.get_span_context().is_valid:
                span.add_link(linked.get_span_context())
        span.set_attributes({"ledger.partition": result.partition,
                             "ledger.jobs.claimed": result.claimed,
                             "ledger.jobs.posted": result.posted,
                             "ledger.jobs.failed": result.failed})

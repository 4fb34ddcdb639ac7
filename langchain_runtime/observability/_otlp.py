"""``serve --otel``: export traces and metrics over OTLP, configured by the standard
``OTEL_*`` environment variables (``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_SERVICE_NAME``,
``OTEL_EXPORTER_OTLP_PROTOCOL``, ...)."""

from __future__ import annotations

import logging
import os
from typing import Any

from langchain_runtime.observability._install import instrument_langchain
from langchain_runtime.observability.otel import OpenTelemetryCallbackHandler

__all__ = ["setup_otlp"]

logger = logging.getLogger(__name__)

_NEEDS = (
    "--otel needs opentelemetry-sdk and opentelemetry-exporter-otlp; install them with: "
    "pip install 'langchain-runtime[otel]' opentelemetry-exporter-otlp"
)


def _exporters() -> tuple[Any, Any]:
    grpc = os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf").startswith("grpc")
    if grpc:
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    return OTLPSpanExporter(), OTLPMetricExporter()


def setup_otlp(service_name: str = "langchain-runtime") -> OpenTelemetryCallbackHandler:
    """Trace every run of this process and export spans and metrics over OTLP.

    Raises:
        ImportError: the SDK or the OTLP exporter is not installed.
        ValueError: no ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or per-signal endpoint) is set.
    """
    if not any(
        os.environ.get(k)
        for k in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    ):
        raise ValueError(
            "--otel: set OTEL_EXPORTER_OTLP_ENDPOINT (e.g. http://localhost:4318) to say "
            "where traces go"
        )
    try:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        span_exporter, metric_exporter = _exporters()
    except ImportError as exc:
        raise ImportError(f"{_NEEDS} ({exc.name} is missing)") from exc
    resource = Resource.create({SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME", service_name)})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
    meter_provider = MeterProvider(
        resource=resource, metric_readers=[PeriodicExportingMetricReader(metric_exporter)]
    )
    handler = OpenTelemetryCallbackHandler(
        tracer_provider=tracer_provider, meter_provider=meter_provider
    )
    instrument_langchain(handler)
    logger.info("exporting traces and metrics over OTLP as %s", resource.attributes[SERVICE_NAME])
    return handler

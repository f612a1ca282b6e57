"""Per-process CPU and memory (the user's metrics-map rows 8 and 9), labelled by service instance."""

from opentelemetry.instrumentation.system_metrics import SystemMetricsInstrumentor

from otel_kit._config.settings import Settings

# Only this process: host-wide metrics belong to a node exporter, not to every service.
_PROCESS_METRICS: dict[str, list[str] | None] = {
    "process.cpu.time": ["user", "system"],
    "process.cpu.utilization": ["user", "system"],
    "process.memory.usage": None,
    "process.memory.virtual": None,
    "process.thread.count": None,
    "process.open_file_descriptor.count": None,
}


def instrument(settings: Settings) -> None:
    SystemMetricsInstrumentor(config=_PROCESS_METRICS).instrument()

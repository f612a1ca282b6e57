"""Every setting of the kit, declared once, resolved as: argument > standard OTEL_* > OTEL_KIT_* > default."""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal, TypedDict, get_args
from urllib.parse import unquote, urlsplit


class ConfigError(ValueError):
    """A setting has a value the kit cannot use; the message names the setting, the value and the fix."""


# The choices, once: for init()'s types (InitSettings) and for the parsers.
Exporter = Literal["otlp", "console", "none"]
MetricsExporter = Literal["prometheus", "otlp", "console", "none"]
ExemplarFilter = Literal["trace_based", "always_on", "always_off"]
Protocol = Literal["grpc", "http/protobuf"]
Sampler = Literal[
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
]
_SAMPLERS = get_args(Sampler)
_KNOWN_INSTRUMENTATIONS = ("fastapi", "requests", "httpx", "pika", "psycopg2", "logging", "system_metrics")


def choice(*accepted: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in accepted:
            raise ValueError(f"one of {', '.join(accepted)}")
        return value

    return parse


def _bool(raw: str | bool) -> bool:
    if isinstance(raw, bool):
        return raw
    value = raw.strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise ValueError("true or false")


def _export_mode(raw: str | bool) -> str:
    if isinstance(raw, str) and raw.strip().lower() == "auto":
        return "auto"
    try:
        return "true" if _bool(raw) else "false"
    except ValueError:
        raise ValueError("auto, true or false") from None


def _number(convert: Callable[[Any], Any], accepts: Callable[[Any], bool], expected: str) -> Callable:
    """A parser converting with `convert` (int, float) and refusing what `accepts` does not."""

    def parse(raw: Any) -> Any:
        try:
            value = convert(raw)
        except (TypeError, ValueError):
            raise ValueError(expected) from None
        if not accepts(value):
            raise ValueError(expected)
        return value

    return parse


_port = _number(
    int, lambda port: 0 <= port <= 65535, "a TCP port number between 0 and 65535 (0 picks a free port)"
)
_ratio = _number(float, lambda ratio: 0.0 <= ratio <= 1.0, "a number between 0 and 1, e.g. 0.25")


def seconds(expected: str) -> Callable[[Any], float]:
    return _number(float, lambda seconds: 0.0 < seconds < math.inf, expected)


def whole_number(minimum: int) -> Callable[[Any], int]:
    expected = "a whole number" + (" greater than 0" if minimum > 0 else " (0 or more)")
    return _number(int, lambda value: value >= minimum, expected)


def name_list(raw: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    return tuple(dict.fromkeys(item.strip() for item in items if item.strip()))


def _instrumentation_list(raw: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    names = tuple(name.lower() for name in name_list(raw))
    unknown = [name for name in names if name not in _KNOWN_INSTRUMENTATIONS]
    if unknown:
        raise ValueError(f"a comma-separated list of {', '.join(_KNOWN_INSTRUMENTATIONS)}")
    return names


def _endpoint(raw: str) -> str:
    value = raw.strip()
    expected = "an absolute URL such as http://localhost:4317"
    try:
        parts = urlsplit(value)  # raises on a malformed IPv6 host
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as exc:
        raise ValueError(f"{expected} ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(expected)
    return value


def _text(raw: str) -> str:
    value = raw.strip()
    if not value:
        raise ValueError("a non-empty string")
    return value


@dataclass(frozen=True)
class _Spec:
    """How one setting is read: its environment variables (in order) and its parser."""

    env: tuple[str, ...]
    parse: Callable[[Any], Any]
    default: Any


def _spec(*env: str, parse: Callable[[Any], Any] = _text, default: Any = None) -> Any:
    return field(default=default, metadata={"spec": _Spec(env, parse, default)})


_PROTOCOLS = choice(*get_args(Protocol))
_EXPORTERS = choice(*get_args(Exporter))
_METRICS_EXPORTERS = choice(*get_args(MetricsExporter))
_SAMPLER = choice(*_SAMPLERS)


@dataclass(frozen=True)
class Settings:
    """The resolved settings of one `otel_kit.init` call."""

    service_name: str = _spec("OTEL_SERVICE_NAME", "OTEL_KIT_SERVICE_NAME")
    service_version: str | None = _spec(
        "OTEL_RESOURCE_ATTRIBUTES:service.version", "OTEL_KIT_SERVICE_VERSION"
    )
    service_namespace: str | None = _spec(
        "OTEL_RESOURCE_ATTRIBUTES:service.namespace", "OTEL_KIT_SERVICE_NAMESPACE"
    )
    environment: str = _spec(
        "OTEL_RESOURCE_ATTRIBUTES:deployment.environment.name", "OTEL_KIT_ENVIRONMENT", default="development"
    )
    disabled: bool = _spec("OTEL_SDK_DISABLED", parse=_bool, default=False)
    traces_exporter: str = _spec("OTEL_TRACES_EXPORTER", parse=_EXPORTERS, default="otlp")
    logs_exporter: str = _spec("OTEL_LOGS_EXPORTER", parse=_EXPORTERS, default="otlp")
    metrics_exporter: str = _spec("OTEL_METRICS_EXPORTER", parse=_METRICS_EXPORTERS, default="prometheus")
    # None: always_off with the Prometheus reader, whose exposition here carries no exemplars
    # (sampling them would cost ~20% of each measurement for nothing); else trace_based.
    metrics_exemplar_filter: str | None = _spec(
        "OTEL_METRICS_EXEMPLAR_FILTER", parse=choice(*get_args(ExemplarFilter))
    )
    otlp_protocol: str = _spec("OTEL_EXPORTER_OTLP_PROTOCOL", parse=_PROTOCOLS, default="grpc")
    otlp_endpoint: str | None = _spec("OTEL_EXPORTER_OTLP_ENDPOINT", parse=_endpoint)
    prometheus_host: str = _spec("OTEL_EXPORTER_PROMETHEUS_HOST", default="0.0.0.0")
    prometheus_port: int = _spec(
        "OTEL_EXPORTER_PROMETHEUS_PORT", "OTEL_KIT_METRICS_PORT", parse=_port, default=9464
    )
    sampler: str = _spec("OTEL_TRACES_SAMPLER", parse=_SAMPLER, default="parentbased_always_on")
    sampler_arg: float = _spec("OTEL_TRACES_SAMPLER_ARG", parse=_ratio, default=1.0)
    instrumentations: tuple[str, ...] | None = _spec("OTEL_KIT_INSTRUMENTATIONS", parse=_instrumentation_list)
    disabled_instrumentations: tuple[str, ...] = _spec(
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", parse=name_list, default=()
    )
    excluded_urls: str = _spec(
        "OTEL_PYTHON_FASTAPI_EXCLUDED_URLS",
        "OTEL_PYTHON_EXCLUDED_URLS",
        parse=str.strip,
        default="/health$,/healthz$,/metrics$",
    )
    baggage_span_attributes: tuple[str, ...] = _spec(
        "OTEL_KIT_BAGGAGE_SPAN_ATTRIBUTES", parse=name_list, default=("order.id",)
    )
    trust_incoming_context: bool = _spec("OTEL_KIT_TRUST_INCOMING_CONTEXT", parse=_bool, default=True)
    export_process: str = _spec("OTEL_KIT_EXPORT_PROCESS", parse=_export_mode, default="auto")
    # shutdown() and the flush at exit, all signals together: a dead collector must not hold
    # a stopping service past its orchestrator's grace period (docker stop: 10 s).
    shutdown_timeout: float = _spec(
        "OTEL_KIT_SHUTDOWN_TIMEOUT",
        parse=seconds("a number of seconds greater than 0, e.g. 5 or 2.5"),
        default=5.0,
    )


class InitSettings(TypedDict, total=False):
    """`otel_kit.init()`'s keyword arguments: each field of Settings but service_name (the
    positional one), typed as init takes them (strings as the variables hold them, too)."""

    service_version: str
    service_namespace: str
    environment: str
    disabled: bool | str
    traces_exporter: Exporter
    logs_exporter: Exporter
    metrics_exporter: MetricsExporter
    metrics_exemplar_filter: ExemplarFilter
    otlp_protocol: Protocol
    otlp_endpoint: str
    prometheus_host: str
    prometheus_port: int | str
    sampler: Sampler
    sampler_arg: float | str
    instrumentations: str | Sequence[str]
    disabled_instrumentations: str | Sequence[str]
    excluded_urls: str
    baggage_span_attributes: str | Sequence[str]
    trust_incoming_context: bool | str
    export_process: Literal["auto"] | bool | str
    shutdown_timeout: float | str


# OTEL_KIT_* variables read by the kit's CLI and scripts, not by init(). Services the local
# stack starts inherit them, so they are not typos.
_TOOL_VARIABLES = frozenset(
    (
        "OTEL_KIT_CACHE",
        "OTEL_KIT_VENV",
        "OTEL_KIT_STACK_DIR",
        "OTEL_KIT_OTELCOL_BIN",
        "OTEL_KIT_JAEGER_BIN",
        "OTEL_KIT_MINIO_BIN",
        "OTEL_KIT_LABEL_PROXY_BIN",
        "OTEL_KIT_JAEGER_URL",
        "OTEL_KIT_ORDER_ENTRY",
        "OTEL_KIT_ORDER_DONE",
        "OTEL_KIT_PAGERDUTY_EVENTS",  # deploy/local/incident
        "OTEL_KIT_PROMETHEUS",
        "OTEL_KIT_ELASTICSEARCH_URL",  # otel-kit logs / trace
        "OTEL_KIT_ELASTICSEARCH_HOME",  # deploy/local: Elasticsearch's home, its heap, log retention
        "OTEL_KIT_ELASTICSEARCH_HEAP",
        "OTEL_KIT_LOG_RETENTION",
        "OTEL_KIT_QUERY_PROMETHEUS_URL",  # query_service/settings.py
        "OTEL_KIT_QUERY_FRESHNESS",
        "OTEL_KIT_QUERY_TAIL_SHARE",
        "OTEL_KIT_QUERY_LABEL_PROXY_URL",
        "OTEL_KIT_QUERY_PROMETHEUS_RETENTION",
        "OTEL_KIT_QUERY_CACHE_BYTES",
        "OTEL_KIT_QUERY_MAX_CONCURRENT",
        "OTEL_KIT_QUERY_TIMEOUT",
        "OTEL_KIT_QUERY_REDIS_URL",
        "OTEL_KIT_QUERY_API_KEYS_FILE",
        "OTEL_KIT_QUERY_MAX_RANGE",
        "OTEL_KIT_QUERY_MAX_SERIES",
    )
)


def unknown_kit_variables(environ: Mapping[str, str]) -> list[str]:
    """A message for each OTEL_KIT_* variable nothing in the kit reads: a misspelt setting, most likely.

    A warning, not a ConfigError: the value is not invalid, and a newer deployment may set a
    variable this version does not know. But silence would hide a misspelt
    OTEL_KIT_TRUST_INCOMING_CONTEXT=false on the internet edge, which then trusts every caller.
    """
    settings = sorted(
        name for f in fields(Settings) for name in f.metadata["spec"].env if name.startswith("OTEL_KIT_")
    )
    messages = []
    for name in sorted(environ):
        if not name.startswith("OTEL_KIT_") or name in settings or name in _TOOL_VARIABLES:
            continue
        close = difflib.get_close_matches(name, settings, n=1, cutoff=0.8)
        hint = f"did you mean {close[0]}?" if close else f"the settings are {', '.join(settings)}"
        messages.append(f"{name} is not an otel_kit setting and is ignored; {hint}")
    return messages


def env_value(environ: Mapping[str, str], name: str) -> str | None:
    if name.startswith("OTEL_RESOURCE_ATTRIBUTES:"):
        value = _resource_attributes(environ).get(name.partition(":")[2])
    else:
        value = environ.get(name)
    # An empty variable counts as unset, as in the OTel SDK.
    return value if value is not None and value.strip() != "" else None


def _resource_attributes(environ: Mapping[str, str]) -> dict[str, str]:
    pairs = (item.partition("=") for item in environ.get("OTEL_RESOURCE_ATTRIBUTES", "").split(","))
    return {key.strip(): unquote(value.strip()) for key, sep, value in pairs if sep}


def resolve(arguments: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Settings:
    """Resolve every setting; raise ConfigError naming the first bad one."""
    environ = os.environ if environ is None else environ
    known = {f.name for f in fields(Settings)}
    unknown = sorted(set(arguments) - known)
    if unknown:
        raise ConfigError(
            f"otel_kit.init() got unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    values: dict[str, Any] = {}
    for f in fields(Settings):
        spec: _Spec = f.metadata["spec"]
        source, raw = None, None
        if arguments.get(f.name) is not None:
            source, raw = f"otel_kit.init({f.name}=...)", arguments[f.name]
        else:
            for name in spec.env:
                if (found := env_value(environ, name)) is not None:
                    source, raw = name, found
                    break
        if source is None:
            values[f.name] = spec.default
            continue
        try:
            values[f.name] = spec.parse(raw)
        except ValueError as exc:
            raise ConfigError(f"{source}={raw!r} is not valid: expected {exc}") from None
    if not values["service_name"] and not values["disabled"]:
        raise ConfigError("no service name: call otel_kit.init('shop') or set OTEL_SERVICE_NAME=shop")
    return Settings(**values)

"""Every setting of the kit, declared once, resolved as: argument > standard OTEL_* > OTEL_KIT_* > default."""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Callable, Mapping, MutableMapping, Sequence
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


def _choice(*accepted: str) -> Callable[[str], str]:
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


def _seconds(expected: str) -> Callable[[Any], float]:
    return _number(float, lambda seconds: 0.0 < seconds < math.inf, expected)


def _whole_number(minimum: int) -> Callable[[Any], int]:
    expected = "a whole number" + (" greater than 0" if minimum > 0 else " (0 or more)")
    return _number(int, lambda value: value >= minimum, expected)


def _name_list(raw: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    return tuple(dict.fromkeys(item.strip() for item in items if item.strip()))


def _instrumentation_list(raw: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    names = tuple(name.lower() for name in _name_list(raw))
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


_PROTOCOLS = _choice(*get_args(Protocol))
_EXPORTERS = _choice(*get_args(Exporter))
_METRICS_EXPORTERS = _choice(*get_args(MetricsExporter))
_SAMPLER = _choice(*_SAMPLERS)


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
        "OTEL_METRICS_EXEMPLAR_FILTER", parse=_choice(*get_args(ExemplarFilter))
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
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", parse=_name_list, default=()
    )
    excluded_urls: str = _spec(
        "OTEL_PYTHON_FASTAPI_EXCLUDED_URLS",
        "OTEL_PYTHON_EXCLUDED_URLS",
        parse=str.strip,
        default="/health$,/healthz$,/metrics$",
    )
    baggage_span_attributes: tuple[str, ...] = _spec(
        "OTEL_KIT_BAGGAGE_SPAN_ATTRIBUTES", parse=_name_list, default=("order.id",)
    )
    trust_incoming_context: bool = _spec("OTEL_KIT_TRUST_INCOMING_CONTEXT", parse=_bool, default=True)
    export_process: str = _spec("OTEL_KIT_EXPORT_PROCESS", parse=_export_mode, default="auto")
    # shutdown() and the flush at exit, all signals together: a dead collector must not hold
    # a stopping service past its orchestrator's grace period (docker stop: 10 s).
    shutdown_timeout: float = _spec(
        "OTEL_KIT_SHUTDOWN_TIMEOUT",
        parse=_seconds("a number of seconds greater than 0, e.g. 5 or 2.5"),
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


def _headers(raw: str) -> str:
    for number, item in enumerate(raw.split(","), start=1):
        key, sep, _value = item.partition("=")
        if item.strip() and (not sep or not key.strip()):
            raise ValueError(
                f"comma-separated key=value pairs, values URL-encoded (e.g. authorization=Bearer%20abc); "
                f"pair {number} has no key=value"
            )
    return raw


def _readable_file(raw: str) -> str:
    path = raw.strip()
    if not os.path.isfile(path) or not os.access(path, os.R_OK):
        raise ValueError("the path of a readable PEM file (no such file, or not readable)")
    return path


def _propagators(raw: str) -> tuple[str, ...]:
    from importlib.metadata import entry_points

    installed = sorted({entry.name for entry in entry_points(group="opentelemetry_propagator")})
    names = _name_list(raw)
    if any(name not in installed and name != "none" for name in names):
        raise ValueError(f"a comma-separated list of installed propagators: {', '.join(installed)}, or none")
    return names


_SIGNAL_INFIXES = ("", "_TRACES", "_LOGS", "_METRICS")
# The standard variables the SDK and its exporters read themselves. init() checks them, so a
# bad value is a ConfigError naming it: the SDK raised a bare ValueError from an import
# (limits, propagators) or an exporter, read 'x' as its default (OTEL_BSP_*), or skipped a
# header pair without '=' (the collector's authentication then failing at every export).
_SDK_VARIABLES: dict[str, Callable[[str], Any]] = {
    **dict.fromkeys(
        (
            "OTEL_ATTRIBUTE_COUNT_LIMIT",
            "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT",
            "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT",
            "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
            "OTEL_SPAN_EVENT_COUNT_LIMIT",
            "OTEL_SPAN_LINK_COUNT_LIMIT",
            "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT",
            "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT",
            "OTEL_BSP_EXPORT_TIMEOUT",
            "OTEL_BLRP_EXPORT_TIMEOUT",
        ),
        _whole_number(0),
    ),
    **dict.fromkeys(
        (
            f"OTEL_{processor}_{name}"
            for processor in ("BSP", "BLRP")
            for name in ("SCHEDULE_DELAY", "MAX_QUEUE_SIZE", "MAX_EXPORT_BATCH_SIZE")
        ),
        _whole_number(1),
    ),
    **dict.fromkeys(("OTEL_METRIC_EXPORT_INTERVAL", "OTEL_METRIC_EXPORT_TIMEOUT"), _whole_number(1)),
    # The Python OTLP exporters read these in seconds (the specification says milliseconds).
    **dict.fromkeys(
        (f"OTEL_EXPORTER_OTLP{s}_TIMEOUT" for s in _SIGNAL_INFIXES),
        _seconds("a number of seconds greater than 0 (the Python exporters read seconds), e.g. 10"),
    ),
    **{f"OTEL_EXPORTER_OTLP{s}_HEADERS": _headers for s in _SIGNAL_INFIXES},
    **{
        f"OTEL_EXPORTER_OTLP{s}_{name}": _readable_file
        for s in _SIGNAL_INFIXES
        for name in ("CERTIFICATE", "CLIENT_KEY", "CLIENT_CERTIFICATE")
    },
    "OTEL_PROPAGATORS": _propagators,
}
# Values that may hold credentials are not repeated in an error.
_SECRET_SUFFIXES = ("_HEADERS",)
# The gRPC exporter knows gzip only (unset: no compression); the HTTP one gzip, deflate, none.
_COMPRESSIONS = {"grpc": _choice("gzip"), "http/protobuf": _choice("gzip", "deflate", "none")}
_COMPRESSION_HINT = {"grpc": " (unset for none)", "http/protobuf": ""}


def check_sdk_environment(environ: Mapping[str, str], protocol: str) -> None:
    """Raise ConfigError naming the first standard variable the SDK would refuse or misread."""
    checks = {
        **_SDK_VARIABLES,
        **{f"OTEL_EXPORTER_OTLP{s}_COMPRESSION": _COMPRESSIONS[protocol] for s in _SIGNAL_INFIXES},
    }
    values: dict[str, Any] = {}
    for name, parse in checks.items():
        if (raw := _env(environ, name)) is None:
            continue
        try:
            values[name] = parse(raw)
        except ValueError as exc:
            shown = " (value not shown)" if name.endswith(_SECRET_SUFFIXES) else f"={raw!r}"
            where, hint = "", ""
            if name.endswith("_COMPRESSION"):
                where, hint = f" with OTEL_EXPORTER_OTLP_PROTOCOL={protocol}", _COMPRESSION_HINT[protocol]
            raise ConfigError(f"{name}{shown} is not valid{where}: expected {exc}{hint}") from None
    for prefix in ("OTEL_BSP_", "OTEL_BLRP_"):  # the SDK's defaults: a queue of 2048, batches of 512
        queue = values.get(f"{prefix}MAX_QUEUE_SIZE", 2048)
        batch = values.get(f"{prefix}MAX_EXPORT_BATCH_SIZE", 512)
        if batch > queue:
            raise ConfigError(
                f"{prefix}MAX_EXPORT_BATCH_SIZE ({batch}) is larger than {prefix}MAX_QUEUE_SIZE ({queue}): "
                "a batch must fit in the queue; raise the queue size or lower the batch size"
            )


def _env(environ: Mapping[str, str], name: str) -> str | None:
    if name.startswith("OTEL_RESOURCE_ATTRIBUTES:"):
        value = _resource_attributes(environ).get(name.partition(":")[2])
    else:
        value = environ.get(name)
    # An empty variable counts as unset, as in the OTel SDK.
    return value if value is not None and value.strip() != "" else None


def align_environment(environ: MutableMapping[str, str]) -> None:
    """Make the OTEL_* variables the SDK's exporters read say what the kit read in them.

    The kit, as the OTel specification asks, takes an empty variable as unset and an endpoint
    without the blanks around it. The Python OTLP exporters take `OTEL_EXPORTER_OTLP_ENDPOINT=""`
    (what compose writes for an unset `${VAR}`) as the endpoint "" and `" http://c:4317"` as
    it stands: both sent every span nowhere, while the kit reported the default or the URL.
    """
    for name in [name for name in environ if name.startswith("OTEL_")]:
        value = environ[name]
        if not value.strip():
            del environ[name]
        elif name.startswith("OTEL_EXPORTER_OTLP_") and name.endswith("ENDPOINT"):
            environ[name] = value.strip()


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
                if (env_value := _env(environ, name)) is not None:
                    source, raw = name, env_value
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

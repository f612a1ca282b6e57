"""The standard OTEL_* variables the SDK and its exporters read themselves, checked and aligned.

init() checks them so that a bad value is a ConfigError naming it, rather than the SDK's
bare ValueError from an import (limits, propagators) or an exporter, a silent default
(OTEL_BSP_* read 'x' as unset), or a header pair without '=' skipped (the collector's
authentication then failing at every export).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

from otel_kit._config.settings import ConfigError, choice, env_value, name_list, seconds, whole_number


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
    names = name_list(raw)
    if any(name not in installed and name != "none" for name in names):
        raise ValueError(f"a comma-separated list of installed propagators: {', '.join(installed)}, or none")
    return names


_SIGNAL_INFIXES = ("", "_TRACES", "_LOGS", "_METRICS")
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
        whole_number(0),
    ),
    **dict.fromkeys(
        (
            f"OTEL_{processor}_{name}"
            for processor in ("BSP", "BLRP")
            for name in ("SCHEDULE_DELAY", "MAX_QUEUE_SIZE", "MAX_EXPORT_BATCH_SIZE")
        ),
        whole_number(1),
    ),
    **dict.fromkeys(("OTEL_METRIC_EXPORT_INTERVAL", "OTEL_METRIC_EXPORT_TIMEOUT"), whole_number(1)),
    # The Python OTLP exporters read these in seconds (the specification says milliseconds).
    **dict.fromkeys(
        (f"OTEL_EXPORTER_OTLP{s}_TIMEOUT" for s in _SIGNAL_INFIXES),
        seconds("a number of seconds greater than 0 (the Python exporters read seconds), e.g. 10"),
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
_COMPRESSIONS = {"grpc": choice("gzip"), "http/protobuf": choice("gzip", "deflate", "none")}
_COMPRESSION_HINT = {"grpc": " (unset for none)", "http/protobuf": ""}


def check_sdk_environment(environ: Mapping[str, str], protocol: str) -> None:
    """Raise ConfigError naming the first standard variable the SDK would refuse or misread."""
    checks = {
        **_SDK_VARIABLES,
        **{f"OTEL_EXPORTER_OTLP{s}_COMPRESSION": _COMPRESSIONS[protocol] for s in _SIGNAL_INFIXES},
    }
    values: dict[str, Any] = {}
    for name, parse in checks.items():
        if (raw := env_value(environ, name)) is None:
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

"""Settings: argument > standard OTEL_* > OTEL_KIT_* > default, and errors that say what to do."""

import dataclasses
import inspect
import re
import typing
from pathlib import Path

import pytest

import otel_kit
from otel_kit import ConfigError, Settings
from otel_kit._config.sdk_environment import align_environment, check_sdk_environment
from otel_kit._config.settings import (
    InitSettings,
    resolve,
    unknown_kit_variables,
)
from tests.helpers import run_python

REPO = Path(__file__).resolve().parents[2]


def test_defaults_need_only_a_service_name():
    settings = resolve({"service_name": "shop"}, environ={})
    assert settings.service_name == "shop"
    assert settings.otlp_protocol == "grpc"
    assert settings.metrics_exporter == "prometheus"
    assert settings.prometheus_port == 9464
    assert settings.baggage_span_attributes == ("order.id",)
    assert settings.trust_incoming_context is True
    assert settings.sampler == "parentbased_always_on"


def test_argument_beats_standard_variable_which_beats_kit_variable():
    environ = {"OTEL_EXPORTER_PROMETHEUS_PORT": "9500", "OTEL_KIT_METRICS_PORT": "9600"}
    assert resolve({"service_name": "shop"}, environ).prometheus_port == 9500
    assert resolve({"service_name": "shop"}, {"OTEL_KIT_METRICS_PORT": "9600"}).prometheus_port == 9600
    assert resolve({"service_name": "shop", "prometheus_port": 9700}, environ).prometheus_port == 9700


def test_service_name_from_environment_and_argument_wins():
    assert resolve({}, {"OTEL_SERVICE_NAME": "crm"}).service_name == "crm"
    assert resolve({"service_name": "shop"}, {"OTEL_SERVICE_NAME": "crm"}).service_name == "shop"


def test_resource_attributes_variable_beats_kit_variable():
    environ = {
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=prod,service.version=1.2.3",
        "OTEL_KIT_ENVIRONMENT": "staging",
        "OTEL_KIT_SERVICE_VERSION": "9",
    }
    settings = resolve({"service_name": "shop"}, environ)
    assert (settings.environment, settings.service_version) == ("prod", "1.2.3")


def test_empty_variable_counts_as_unset():
    assert resolve({"service_name": "shop"}, {"OTEL_EXPORTER_OTLP_PROTOCOL": " "}).otlp_protocol == "grpc"


def test_the_exporters_read_the_environment_as_the_kit_reads_it():
    environ = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "  http://collector:4317 ",
        "OTEL_EXPORTER_OTLP_HEADERS": " api-key=a b",
        "OTEL_BSP_SCHEDULE_DELAY": " ",
        "PATH": "",
    }
    align_environment(environ)
    assert environ == {
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4317",
        "OTEL_EXPORTER_OTLP_HEADERS": " api-key=a b",  # only endpoints are trimmed
        "PATH": "",  # not ours
    }


def test_an_empty_endpoint_variable_leaves_the_exporters_their_default():
    # What compose writes for OTEL_EXPORTER_OTLP_ENDPOINT=${OTEL_ENDPOINT} with OTEL_ENDPOINT unset.
    result = run_python(
        """
        import otel_kit
        otel_kit.init("shop", metrics_exporter="none", logs_exporter="none", export_process="false")
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as Grpc
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as Http
        print(Grpc()._endpoint, Http()._endpoint)
        """,
        env={"OTEL_EXPORTER_OTLP_ENDPOINT": ""},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["localhost:4317", "http://localhost:4318/v1/traces"]


def test_lists_are_split_and_trimmed():
    environ = {
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "pika , psycopg2,,",
        "OTEL_KIT_INSTRUMENTATIONS": "FastAPI",
    }
    settings = resolve({"service_name": "shop"}, environ)
    assert settings.disabled_instrumentations == ("pika", "psycopg2")
    assert settings.instrumentations == ("fastapi",)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"OTEL_TRACES_SAMPLER_ARG": "abc"},
            "OTEL_TRACES_SAMPLER_ARG='abc' is not valid: expected a number between 0 and 1, e.g. 0.25",
        ),
        ({"OTEL_TRACES_SAMPLER_ARG": "1.5"}, "OTEL_TRACES_SAMPLER_ARG='1.5' is not valid"),
        (
            {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
            "OTEL_EXPORTER_OTLP_PROTOCOL='http/json' is not valid: expected one of grpc, http/protobuf",
        ),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "localhost:4317"},
            "expected an absolute URL such as http://localhost:4317",
        ),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:43x7"}, "OTEL_EXPORTER_OTLP_ENDPOINT="),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://[::1"},
            "'http://[::1' is not valid: expected an absolute URL such as http://localhost:4317 (Invalid",
        ),
        (
            {"OTEL_KIT_METRICS_PORT": "70000"},
            "OTEL_KIT_METRICS_PORT='70000' is not valid: expected a TCP port",
        ),
        ({"OTEL_KIT_TRUST_INCOMING_CONTEXT": "maybe"}, "expected true or false"),
        (
            {"OTEL_KIT_EXPORT_PROCESS": "sometimes"},
            "OTEL_KIT_EXPORT_PROCESS='sometimes' is not valid: expected auto",
        ),
        (
            {"OTEL_KIT_SHUTDOWN_TIMEOUT": "0"},
            "OTEL_KIT_SHUTDOWN_TIMEOUT='0' is not valid: expected a number of seconds greater than 0, e.g. 5",
        ),
        ({"OTEL_KIT_SHUTDOWN_TIMEOUT": "5s"}, "OTEL_KIT_SHUTDOWN_TIMEOUT='5s' is not valid: expected a"),
        ({"OTEL_KIT_SHUTDOWN_TIMEOUT": "nan"}, "OTEL_KIT_SHUTDOWN_TIMEOUT='nan' is not valid: expected a"),
        ({"OTEL_METRICS_EXPORTER": "statsd"}, "expected one of prometheus, otlp, console, none"),
        (
            {"OTEL_TRACES_SAMPLER": "sometimes"},
            "OTEL_TRACES_SAMPLER='sometimes' is not valid: expected one of",
        ),
        (
            {"OTEL_METRICS_EXEMPLAR_FILTER": "sometimes"},
            "OTEL_METRICS_EXEMPLAR_FILTER='sometimes' is not valid: "
            "expected one of trace_based, always_on, always_off",
        ),
        (
            {"OTEL_KIT_INSTRUMENTATIONS": "fastapi,flask"},
            "expected a comma-separated list of fastapi, requests",
        ),
    ],
)
def test_invalid_value_names_setting_value_and_accepted_form(environ, message):
    with pytest.raises(ConfigError) as error:
        resolve({"service_name": "shop"}, environ)
    assert message in str(error.value)


def test_invalid_argument_is_named_as_an_argument():
    with pytest.raises(ConfigError, match=r"otel_kit.init\(prometheus_port=...\)='x' is not valid"):
        resolve({"service_name": "shop", "prometheus_port": "x"}, {})


def test_unknown_argument_is_rejected_with_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown setting\(s\) metrics_prot; known: .*prometheus_port"):
        resolve({"service_name": "shop", "metrics_prot": 1}, {})


def test_missing_service_name_says_how_to_set_it():
    with pytest.raises(ConfigError, match=r"call otel_kit.init\('shop'\) or set OTEL_SERVICE_NAME=shop"):
        resolve({}, {})


def test_disabled_needs_no_service_name():
    assert resolve({}, {"OTEL_SDK_DISABLED": "true"}).disabled is True


@pytest.mark.parametrize(
    ("raw", "mode"), [(None, "auto"), ("AUTO", "auto"), ("true", "true"), ("1", "true"), ("off", "false")]
)
def test_export_process_modes(raw, mode):
    environ = {} if raw is None else {"OTEL_KIT_EXPORT_PROCESS": raw}
    assert resolve({"service_name": "shop"}, environ).export_process == mode


@pytest.mark.parametrize(("raw", "seconds"), [(None, 5.0), ("2.5", 2.5), (" 30 ", 30.0)])
def test_shutdown_timeout_is_in_seconds(raw, seconds):
    environ = {} if raw is None else {"OTEL_KIT_SHUTDOWN_TIMEOUT": raw}
    assert resolve({"service_name": "shop"}, environ).shutdown_timeout == seconds


@pytest.mark.parametrize(
    ("environ", "protocol", "message"),
    [
        (
            {"OTEL_BSP_SCHEDULE_DELAY": "1s"},
            "grpc",
            "OTEL_BSP_SCHEDULE_DELAY='1s' is not valid: expected a whole",
        ),
        ({"OTEL_BLRP_MAX_QUEUE_SIZE": "0"}, "grpc", "OTEL_BLRP_MAX_QUEUE_SIZE='0' is not valid"),
        (
            {"OTEL_BSP_MAX_QUEUE_SIZE": "100", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "200"},
            "grpc",
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE (200) is larger than OTEL_BSP_MAX_QUEUE_SIZE (100)",
        ),
        ({"OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "-1"}, "grpc", "expected a whole number (0 or more)"),
        ({"OTEL_METRIC_EXPORT_INTERVAL": "60s"}, "grpc", "OTEL_METRIC_EXPORT_INTERVAL='60s' is not valid"),
        ({"OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "0"}, "grpc", "expected a number of seconds greater than 0"),
        (
            {"OTEL_EXPORTER_OTLP_COMPRESSION": "none"},
            "grpc",
            "OTEL_EXPORTER_OTLP_COMPRESSION='none' is not valid with OTEL_EXPORTER_OTLP_PROTOCOL=grpc: "
            "expected one of gzip (unset for none)",
        ),
        (
            {"OTEL_EXPORTER_OTLP_LOGS_COMPRESSION": "br"},
            "http/protobuf",
            "expected one of gzip, deflate, none",
        ),
        (
            {"OTEL_EXPORTER_OTLP_CERTIFICATE": "/no/such.pem"},
            "grpc",
            "expected the path of a readable PEM file",
        ),
        ({"OTEL_PROPAGATORS": "tracecontext,jaeger"}, "grpc", "expected a comma-separated list of installed"),
    ],
)
def test_sdk_variables_are_checked_with_the_kits_error(environ, protocol, message):
    with pytest.raises(ConfigError) as error:
        check_sdk_environment(environ, protocol)
    assert message in str(error.value)


def test_a_bad_header_variable_is_named_without_its_value():
    """OTLP headers carry credentials: the error says which pair is wrong, never the value."""
    with pytest.raises(ConfigError) as error:
        check_sdk_environment({"OTEL_EXPORTER_OTLP_HEADERS": "api-key=s3cret,s3cret2"}, "grpc")
    assert str(error.value).startswith("OTEL_EXPORTER_OTLP_HEADERS (value not shown) is not valid")
    assert "pair 2 has no key=value" in str(error.value)
    assert "s3cret" not in str(error.value)


def test_good_and_blank_sdk_variables_pass(tmp_path):
    certificate = tmp_path / "ca.pem"
    certificate.write_text("-----BEGIN CERTIFICATE-----\n")
    environ = {
        "OTEL_BSP_MAX_QUEUE_SIZE": "4096",
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "1024",
        "OTEL_BLRP_SCHEDULE_DELAY": "",  # blank is unset
        "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "0",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "2.5",
        "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20abc, x-tenant=shop,",
        "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
        "OTEL_EXPORTER_OTLP_CERTIFICATE": str(certificate),
        "OTEL_PROPAGATORS": "tracecontext, baggage",
    }
    for protocol in ("grpc", "http/protobuf"):
        check_sdk_environment(environ, protocol)  # raises nothing
    check_sdk_environment({"OTEL_EXPORTER_OTLP_COMPRESSION": "deflate"}, "http/protobuf")


def test_a_misspelt_kit_variable_is_named_with_the_setting_it_resembles():
    environ = {
        "OTEL_KIT_TRUST_INCOMING_CONTEX": "false",  # the edge would trust every caller
        "OTEL_KIT_SHUTDOWN_TIMEOUT": "2",
        "OTEL_KIT_STACK_DIR": "/tmp/stack",  # the stack tool's, inherited by the services it starts
        "OTEL_KIT_COLOUR": "blue",
        "OTEL_TRACES_SAMPLER": "always_on",
    }
    colour, contex = unknown_kit_variables(environ)  # in name order
    assert contex == (
        "OTEL_KIT_TRUST_INCOMING_CONTEX is not an otel_kit setting and is ignored; "
        "did you mean OTEL_KIT_TRUST_INCOMING_CONTEXT?"
    )
    assert colour.startswith("OTEL_KIT_COLOUR is not an otel_kit setting and is ignored; the settings are ")
    assert "OTEL_KIT_EXPORT_PROCESS, OTEL_KIT_INSTRUMENTATIONS" in colour


def test_every_kit_variable_the_repository_names_is_known():
    """The tools' variables are listed by hand: one added to a script must be added there too."""
    named = set()
    for folder in ("otel_kit", "deploy", "scripts", "collector", "benchmarks", "examples", ".ci"):
        for path in (REPO / folder).rglob("*"):
            if path.is_file() and "results" not in path.parts and path.suffix not in (".json", ".pyc"):
                named.update(re.findall(r"OTEL_KIT_[A-Z0-9_]*[A-Z0-9]", path.read_text(errors="replace")))
    named.update(re.findall(r"OTEL_KIT_[A-Z0-9_]*[A-Z0-9]", (REPO / "README.md").read_text()))
    assert len(named) > 10
    assert unknown_kit_variables(dict.fromkeys(named, "x")) == []


def test_init_keyword_types_name_every_setting():
    hints = typing.get_type_hints(InitSettings)
    assert {"service_name", *hints} == {f.name for f in dataclasses.fields(Settings)}
    assert list(inspect.signature(otel_kit.init).parameters)[:2] == ["service_name", "app"]


@pytest.mark.parametrize(
    "name", [n for n, hint in typing.get_type_hints(InitSettings).items() if "Literal" in str(hint)]
)
def test_each_value_the_types_offer_is_accepted(name):
    hint = typing.get_type_hints(InitSettings)[name]
    literals = [
        value
        for arg in (typing.get_args(hint) if typing.get_origin(hint) is typing.Union else (hint,))
        if typing.get_origin(arg) is typing.Literal
        for value in typing.get_args(arg)
    ]
    assert literals
    for value in literals:
        assert getattr(resolve({"service_name": "shop", name: value}, environ={}), name) == value


def test_the_readme_settings_table_names_every_setting_and_its_variables():
    text = (REPO / "README.md").read_text()
    table = text[text.index("| argument | variables | default |") :].split("\n\n")[0]
    rows = {}
    for line in table.splitlines()[2:]:
        arguments, variables = line.split("|")[1:3]
        for argument in re.findall(r"`(\w+)`", arguments):
            rows[argument] = set(re.findall(r"OTEL_\w+", variables))
    assert set(rows) == {f.name for f in dataclasses.fields(Settings)}
    for f in dataclasses.fields(Settings):
        variables = {name.split(":")[0] for name in f.metadata["spec"].env}
        assert variables <= rows[f.name], (
            f"README.md's settings row for {f.name} lacks {variables - rows[f.name]}"
        )

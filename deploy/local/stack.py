"""The no-Docker local stack: start, stop and show the status of every server, with readiness checks.

supervisord (a well-kept process manager) runs the servers, restarts none of them behind the
user's back, and writes each one's output to one log folder; this module only generates its
config, checks ports and binaries before starting, and waits for each server's own
readiness endpoint. Run it through deploy/local/stack, which installs what it needs first.
(mirakuru, which the tests use for their own servers, does not fit here: it stops what it
started when the starting process exits, and `start` must leave the stack running.)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from string import Template
from typing import Annotated
from xmlrpc.client import Fault, ServerProxy

import postgres_cluster  # deploy/local/postgres_cluster.py: a script's folder is on sys.path
import typer
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[2]
STATE = Path(os.environ.get("OTEL_KIT_STACK_DIR", REPO / ".stack"))
LOGS, DATA = STATE / "logs", STATE / "data"
PG_BIN = postgres_cluster.PG_BIN
SUPERVISORD_TEMPLATES = Path(__file__).resolve().parent / "supervisord"
SUPERVISOR_PORT = 9011
MINIO_USER, MINIO_PASSWORD = "otelkit", "otelkit-local-only"  # a local dev stack on loopback
# The MES's own S3 user (examples/_shared.py's defaults): an incident can disable it, which
# the root user cannot be.
S3_SERVICE_USER, S3_SERVICE_SECRET = "mes-service", "mes-service-local-only"
PAGERDUTY_PORT = 9094
QUERY_SERVICE_PORT = 9095
LABEL_PROXY_PORT = 9096  # the query service's per-team view of Prometheus (prom-label-proxy)
ELASTICSEARCH_PORT = 9200
ELASTICSEARCH = f"http://127.0.0.1:{ELASTICSEARCH_PORT}"
ELASTICSEARCH_USER = "elasticsearch"  # Elasticsearch refuses to run as root
TEAMS = ("services", "messaging", "databases", "storage", "platform")

console = Console(stderr=True)
app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.splitlines()[0])


class StackError(Exception):
    """A problem the user can fix; the message says how."""


def _http_ok(url: str, contains: str | None = None) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return contains is None or contains in response.read().decode(errors="replace")
        except (OSError, urllib.error.URLError):
            return False

    return check


def _elasticsearch_ready() -> bool:
    """Its cluster health answers green or yellow (yellow: an index someone made with replicas,
    which one node cannot place; the logs' own indices have none)."""
    try:
        url = f"{ELASTICSEARCH}/_cluster/health?wait_for_status=yellow&timeout=1s"
        with urllib.request.urlopen(url, timeout=3) as response:
            return json.load(response).get("status") in ("green", "yellow")
    except (OSError, urllib.error.URLError, ValueError):
        return False


def _java_home() -> str:
    """Debian's Java (openjdk-17-jre-headless), whatever the architecture's folder is called."""
    java = shutil.which("java")
    return str(Path(java).resolve().parents[1]) if java else "/usr/lib/jvm/default-java"


def _pg_ready(port: int, database: str) -> Callable[[], bool]:
    def check() -> bool:
        result = subprocess.run(
            # As postgres: pg_isready's default user (root) makes the server log a failed login.
            [
                str(PG_BIN / "pg_isready"),
                "-q",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-d",
                database,
                "-U",
                "postgres",
            ],
            check=False,
        )
        return result.returncode == 0

    return check


@dataclass
class Server:
    name: str
    command: list[str]
    ports: dict[str, int]
    ready: Callable[[], bool]
    package: str  # where the binary comes from, for the 'missing' error
    env: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    stop_signal: str = "TERM"
    urls: tuple[str, ...] = ()
    directory: Path = STATE
    # Servers the others need before they start: epmd (else RabbitMQ forks its own epmd
    # daemon, which then outlives the stack) and PostgreSQL (its databases are created
    # before the exporters connect).
    first: bool = False


def _binary(env_var: str) -> str:
    """Go binaries are built by deploy/local/stack (build-go.sh) and passed in by path."""
    return os.environ.get(env_var, f"<{env_var} not set: run deploy/local/stack, not stack.py>")


def _postgres(name: str, port: int) -> Server:
    return Server(
        name=f"postgres-{name}",
        command=[
            str(PG_BIN / "postgres"),
            "-D",
            str(DATA / f"postgres-{name}"),
            "-p",
            str(port),
            "-k",
            str(DATA / f"postgres-{name}"),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",  # query time per database (deploy/postgres-exporter/queries.yaml)
            "shared_preload_libraries=pg_stat_statements",
            # Its log as JSON lines for the collector (collector/otelcol-config.yaml), one file a
            # day, the collector reading from the end of it.
            *("-c", "logging_collector=on", "-c", "log_destination=jsonlog"),
            *("-c", f"log_directory={LOGS / f'postgres-{name}'}", "-c", "log_filename=postgresql-%a.log"),
            *("-c", "log_rotation_age=1d", "-c", "log_truncate_on_rotation=on"),
        ],
        ports={"sql": port},
        ready=_pg_ready(port, "postgres"),
        package="Debian postgresql",
        user="postgres" if os.geteuid() == 0 else None,
        stop_signal="INT",  # PostgreSQL's "fast" shutdown
        first=True,
        urls=(f"postgresql://postgres@127.0.0.1:{port}/{name}",),
    )


def _postgres_exporter(name: str, pg_port: int, port: int) -> Server:
    return Server(
        name=f"postgres-exporter-{name}",
        command=[
            "/usr/bin/prometheus-postgres-exporter",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--extend.query-path={REPO / 'deploy/postgres-exporter/queries.yaml'}",
        ],
        ports={"metrics": port},
        ready=_http_ok(f"http://127.0.0.1:{port}/metrics", "pg_up 1"),
        package="Debian prometheus-postgres-exporter",
        env={"DATA_SOURCE_NAME": f"postgresql://postgres@127.0.0.1:{pg_port}/{name}?sslmode=disable"},
    )


_NODE_COLLECTORS = ("cpu", "meminfo", "filesystem", "diskstats", "loadavg", "netdev")


def servers() -> list[Server]:
    """Every server of the stack; the ports here are the ones the committed configs use."""
    rabbit = STATE / "rabbitmq"
    return [
        _postgres("shop", 5433),
        _postgres("mes", 5434),
        Server(
            name="epmd",  # run in the foreground so that it is stopped with the stack
            command=["/usr/bin/epmd", "-port", "4369", "-address", "127.0.0.1"],
            ports={"epmd": 4369},
            ready=lambda: _port_taken(4369),
            package="Debian erlang-base (with rabbitmq-server)",
            first=True,
        ),
        Server(
            name="rabbitmq",
            command=["/usr/lib/rabbitmq/bin/rabbitmq-server"],
            ports={"amqp": 5672, "management": 15672, "prometheus": 15692, "distribution": 25672},
            ready=_http_ok("http://127.0.0.1:15692/metrics", "rabbitmq_identity_info"),
            package="Debian rabbitmq-server",
            env={
                "HOME": str(rabbit),  # the Erlang cookie lives here
                "RABBITMQ_NODENAME": "otelkit@localhost",
                "RABBITMQ_MNESIA_BASE": str(DATA / "rabbitmq"),
                "RABBITMQ_LOG_BASE": str(LOGS / "rabbitmq"),
                # management and rabbitmq_prometheus, the file compose mounts too
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(REPO / "deploy/rabbitmq/enabled_plugins"),
                "RABBITMQ_CONFIG_FILE": str(rabbit / "rabbitmq"),
                "RABBITMQ_DIST_PORT": "25672",
            },
            urls=("amqp://guest:guest@127.0.0.1:5672/", "http://127.0.0.1:15672 (guest/guest)"),
        ),
        Server(
            name="minio",
            command=[
                _binary("OTEL_KIT_MINIO_BIN"),
                "server",
                str(DATA / "minio"),
                "--quiet",
                "--address",
                "127.0.0.1:9000",
                "--console-address",
                "127.0.0.1:9001",
            ],
            ports={"s3": 9000, "console": 9001},
            ready=_http_ok("http://127.0.0.1:9000/minio/health/ready"),
            package="MinIO from its Go module (deploy/local/build-go.sh minio)",
            env={
                "MINIO_ROOT_USER": MINIO_USER,
                "MINIO_ROOT_PASSWORD": MINIO_PASSWORD,
                "MINIO_PROMETHEUS_AUTH_TYPE": "public",
                # Its background scanner counts each bucket's size and objects (the bucket
                # metrics) once a minute. At the default speed it took ~8% of a core for
                # ~20 s with 40k documents here, slowing S3 writes at random (the flow
                # benchmark's noise); "slow" waits 10x each object's cost between objects and
                # still cycles every minute ("slowest" cycles every 30 min: sizes too stale).
                "MINIO_SCANNER_SPEED": "slow",
            },
            urls=(f"http://127.0.0.1:9000 (S3, {MINIO_USER} / {MINIO_PASSWORD})",),
        ),
        Server(
            name="jaeger",
            command=[_binary("OTEL_KIT_JAEGER_BIN"), "--config", str(REPO / "deploy/jaeger/config.yaml")],
            ports={
                "otlp-grpc": 4327,
                "otlp-http": 4328,
                "query": 16686,
                "query-grpc": 16685,
                "metrics": 14269,
                "health": 14133,
            },
            ready=_http_ok("http://127.0.0.1:16686/api/services"),
            package="Jaeger from its Go module (deploy/local/build-go.sh jaeger)",
            env={"JAEGER_BADGER_DIR": str(DATA / "jaeger")},
            urls=("http://127.0.0.1:16686/api/traces?service=shop (query API; no UI assets here)",),
        ),
        Server(
            name="elasticsearch",  # the collector's log store; its template before the collector
            command=[_binary("OTEL_KIT_ELASTICSEARCH_HOME") + "/bin/elasticsearch"],
            ports={"http": ELASTICSEARCH_PORT, "transport": 9300},
            ready=_elasticsearch_ready,
            package="Elasticsearch from Maven Central (deploy/local/fetch-elasticsearch.sh)",
            env={
                "ES_PATH_CONF": str(STATE / "elasticsearch"),
                # Otherwise a new folder in /tmp on every start, left there.
                "ES_TMPDIR": str(DATA / "elasticsearch-tmp"),
                "ES_JAVA_HOME": os.environ.get("ES_JAVA_HOME", _java_home()),
            },
            user=ELASTICSEARCH_USER if os.geteuid() == 0 else None,
            first=True,
            urls=(f"{ELASTICSEARCH}/logs-*.otel-*/_search (log records; `otel-kit logs` reads them)",),
        ),
        Server(
            name="log-retention",  # rollover and deletion of old log indices (no ILM here)
            command=[
                sys.executable,
                str(REPO / "deploy/elasticsearch/retention.py"),
                f"--url={ELASTICSEARCH}",
                f"--keep={os.environ.get('OTEL_KIT_LOG_RETENTION', '7d')}",
                "--every=1h",
            ],
            ports={},
            ready=lambda: True,
            package="this repository's virtualenv (deploy/local/stack installs it)",
        ),
        Server(
            name="otelcol",
            command=[
                _binary("OTEL_KIT_OTELCOL_BIN"),
                "--config",
                str(REPO / "collector/otelcol-config.yaml"),
            ],
            ports={
                "otlp-grpc": 4317,
                "otlp-http": 4318,
                "span-metrics": 8889,
                "metrics": 8888,
                "health": 13133,
            },
            ready=_http_ok("http://127.0.0.1:13133/"),
            package="the collector built by collector/build.sh",
            env={
                "ELASTICSEARCH_URL": ELASTICSEARCH,
                "OTELCOL_RABBITMQ_LOGS": str(LOGS / "rabbitmq" / "*.log"),
                "OTELCOL_POSTGRES_SHOP_LOGS": str(LOGS / "postgres-shop" / "*.json"),
                "OTELCOL_POSTGRES_MES_LOGS": str(LOGS / "postgres-mes" / "*.json"),
            },
            urls=("OTLP: 127.0.0.1:4317 (gRPC), http://127.0.0.1:4318",),
        ),
        Server(
            name="prometheus",
            command=[
                "/usr/bin/prometheus",
                f"--config.file={REPO / 'deploy/prometheus/prometheus.yml'}",
                f"--storage.tsdb.path={DATA / 'prometheus'}",
                "--web.listen-address=127.0.0.1:9090",
                "--enable-feature=exemplar-storage",
                "--web.enable-lifecycle",
            ],
            ports={"web": 9090},
            ready=_http_ok("http://127.0.0.1:9090/-/ready"),
            package="Debian prometheus",
            urls=("http://127.0.0.1:9090",),
        ),
        Server(
            name="alertmanager",
            command=[
                "/usr/bin/prometheus-alertmanager",
                f"--config.file={STATE / 'alertmanager/alertmanager.yml'}",
                f"--storage.path={DATA / 'alertmanager'}",
                "--web.listen-address=127.0.0.1:9093",
                "--cluster.listen-address=",
            ],
            ports={"web": 9093},
            ready=_http_ok("http://127.0.0.1:9093/-/ready"),
            package="Debian prometheus-alertmanager",
            urls=("http://127.0.0.1:9093",),
        ),
        Server(
            name="pagerduty",  # PagerDuty's Events API v2, local: its service is unreachable here
            command=[
                sys.executable,
                str(REPO / "deploy/pagerduty/local_events.py"),
                f"--port={PAGERDUTY_PORT}",
                f"--store={STATE / 'pagerduty/events.jsonl'}",
            ],
            ports={"events-api": PAGERDUTY_PORT},
            ready=_http_ok(f"http://127.0.0.1:{PAGERDUTY_PORT}/health"),
            package="this repository's virtualenv (deploy/local/stack installs it)",
            urls=(f"http://127.0.0.1:{PAGERDUTY_PORT}/events (the pages Alertmanager sent)",),
        ),
        Server(
            # Rewrites each query of a team's key to the team's services (service_name), as the
            # query service asks it to; the query service is the only client.
            name="prom-label-proxy",
            command=[
                _binary("OTEL_KIT_LABEL_PROXY_BIN"),
                "-label=service_name",
                "-header-name=X-Otel-Kit-Services",
                "-upstream=http://127.0.0.1:9090",
                f"-insecure-listen-address=127.0.0.1:{LABEL_PROXY_PORT}",
                f"-internal-listen-address=127.0.0.1:{LABEL_PROXY_PORT + 1}",
                "-enable-label-apis",
                "-error-on-replace",  # a query naming another team's service is refused, not rewritten
            ],
            ports={"http": LABEL_PROXY_PORT, "internal": LABEL_PROXY_PORT + 1},
            ready=_http_ok(f"http://127.0.0.1:{LABEL_PROXY_PORT + 1}/metrics"),
            package="prom-label-proxy from its Go module (deploy/local/build-go.sh prom-label-proxy)",
        ),
        Server(
            name="query-service",  # Prometheus's query API, cached (query_service/)
            command=[
                sys.executable,
                "-m",
                "uvicorn",
                "query_service.app:app",
                "--port",
                str(QUERY_SERVICE_PORT),
                "--timeout-keep-alive",  # above Grafana's 15 s refresh: uvicorn's 5 s drops the
                "75",  # dashboards' connections between refreshes, a reconnect on every one
            ],
            ports={"http": QUERY_SERVICE_PORT},
            ready=_http_ok(f"http://127.0.0.1:{QUERY_SERVICE_PORT}/health"),
            package="this repository's virtualenv (deploy/local/stack installs it)",
            env={
                "OTEL_KIT_QUERY_PROMETHEUS_URL": "http://127.0.0.1:9090",
                "OTEL_KIT_QUERY_LABEL_PROXY_URL": f"http://127.0.0.1:{LABEL_PROXY_PORT}",
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317",  # traced like any service
                "OTEL_METRICS_EXPORTER": "none",  # its own /metrics has the cache's figures
            },
            directory=REPO,
            urls=(f"http://127.0.0.1:{QUERY_SERVICE_PORT}/docs",),
        ),
        _postgres_exporter("shop", 5433, 9187),
        _postgres_exporter("mes", 5434, 9188),
        Server(
            name="node-exporter",  # the host's CPU, memory and disks
            command=[
                "/usr/bin/prometheus-node-exporter",
                "--web.listen-address=127.0.0.1:9100",
                # What the system dashboard reads; the Debian defaults add systemd, apt and
                # textfile collectors that answer with errors in a container.
                "--collector.disable-defaults",
                *(f"--collector.{name}" for name in _NODE_COLLECTORS),
            ],
            ports={"metrics": 9100},
            ready=_http_ok("http://127.0.0.1:9100/metrics", "node_cpu_seconds_total"),
            package="Debian prometheus-node-exporter",
        ),
        Server(
            name="process-exporter",  # each PostgreSQL instance's memory and CPU
            command=[
                "/usr/bin/prometheus-process-exporter",
                "-web.listen-address=127.0.0.1:9256",
                f"-config.path={REPO / 'deploy/process-exporter/config.yaml'}",
                "-recheck",  # a cluster restarted after the exporter is found again
            ],
            ports={"metrics": 9256},
            ready=_http_ok("http://127.0.0.1:9256/metrics", "namedprocess_namegroup_num_procs"),
            package="Debian prometheus-process-exporter",
        ),
    ]


def example_services() -> list[Server]:
    """The shop, CRM and MES examples (examples/), as `start --examples` runs them for the demo."""
    ports = {"shop": 8001, "crm": 8002, "mes": 8003}
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317",
        "OTEL_METRICS_EXPORTER": "otlp",
        # Every scrape (10 s) sees fresh process and HTTP metrics; the SDK default is 60 s.
        "OTEL_METRIC_EXPORT_INTERVAL": "10000",
        "CRM_URL": f"http://127.0.0.1:{ports['crm']}",
        "MES_URL": f"http://127.0.0.1:{ports['mes']}",
    }
    # The shop faces the internet: a client's traceparent or baggage must not enter our traces.
    edge = {"OTEL_KIT_TRUST_INCOMING_CONTEXT": "false"}
    return [
        Server(
            name=f"example-{name}",
            command=[sys.executable, "-m", "uvicorn", f"examples.{name}.app:app", "--port", str(port)],
            ports={"http": port},
            ready=_http_ok(f"http://127.0.0.1:{port}/health"),
            package="this repository's virtualenv (deploy/local/stack installs it)",
            env={**env, **edge} if name == "shop" else env,
            directory=REPO,
            urls=(f"http://127.0.0.1:{port}/docs",),
        )
        for name, port in ports.items()
    ]


def _port_taken(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _supervisor() -> ServerProxy:
    return ServerProxy(f"http://127.0.0.1:{SUPERVISOR_PORT}/RPC2")


def _running_states() -> dict[str, str] | None:
    """State of each program under our supervisord, or None when it does not run."""
    try:
        return {p["name"]: p["statename"] for p in _supervisor().supervisor.getAllProcessInfo()}
    except OSError:
        return None


def _prepare(all_servers: list[Server]) -> None:
    """Data folders and generated configs: what `setup` does, safe to repeat."""
    for setting, folder in (("OTEL_KIT_STACK_DIR", STATE), ("the repository path", REPO)):
        if "%" in str(folder):
            # supervisord expands %(name)s in its config values, paths included.
            raise StackError(f"{setting} {folder} contains '%', which supervisord cannot take: use another")
    missing = [s for s in all_servers if not Path(s.command[0]).is_file()]
    if missing:
        lines = "\n".join(f"  {s.name}: {s.command[0]} (from {s.package})" for s in missing)
        raise StackError(f"missing binaries:\n{lines}\nrun deploy/local/stack setup, which installs them")
    if os.geteuid() == 0:
        # PostgreSQL and Elasticsearch run as their own users and must reach their folders.
        closed = [folder for folder in STATE.parents if folder.exists() and not folder.stat().st_mode & 0o001]
        if closed:
            raise StackError(
                f"the stack's folder {STATE} is inside {closed[0]}, which other users cannot enter, "
                "so PostgreSQL and Elasticsearch (run as their own users) could not reach their data: "
                "set OTEL_KIT_STACK_DIR to a folder outside it (e.g. /var/tmp/otel-kit-stack)"
            )
    for folder in (LOGS, DATA, STATE / "rabbitmq"):
        folder.mkdir(parents=True, exist_ok=True)
    rabbit = STATE / "rabbitmq"
    (rabbit / "rabbitmq.conf").write_text(
        "listeners.tcp.default = 127.0.0.1:5672\n"
        "management.tcp.ip = 127.0.0.1\nmanagement.tcp.port = 15672\n"
        "prometheus.tcp.ip = 127.0.0.1\nprometheus.tcp.port = 15692\n"
        # JSON lines for the collector's file_log receiver (deploy/rabbitmq/rabbitmq.conf too)
        "log.file.formatter = json\n"
    )
    for name in ("shop", "mes"):
        _init_postgres(DATA / f"postgres-{name}")
        postgres_cluster.give_to(LOGS / f"postgres-{name}", "postgres")
    if any(server.name == "elasticsearch" for server in all_servers):
        _prepare_elasticsearch()
    render_alertmanager_config(STATE / "alertmanager", f"http://127.0.0.1:{PAGERDUTY_PORT}")


def render_alertmanager_config(folder: Path, pagerduty: str) -> Path:
    """deploy/alertmanager/ as the local stack runs it: pages go to the local Events API.

    The committed file is the production one (PagerDuty, keys from files); this copy in
    `folder` changes only where pages, heartbeats and links go (`pagerduty`: the local
    endpoint's base URL), and writes one local key per team. Returns the config's path.
    """
    (folder / "secrets").mkdir(parents=True, exist_ok=True)
    (folder / "templates").mkdir(exist_ok=True)
    source = REPO / "deploy/alertmanager"
    config = (source / "alertmanager.yml").read_text()
    replacements = {
        "https://events.pagerduty.com/v2/enqueue": f"{pagerduty}/v2/enqueue",
        "https://deadmans-switch.invalid/ping/REPLACE-WITH-YOUR-CHECK": f"{pagerduty}/heartbeat",
        "/etc/alertmanager/secrets/": f"{folder / 'secrets'}/",
    }
    for committed, local in replacements.items():
        if committed not in config:
            raise StackError(f"deploy/alertmanager/alertmanager.yml no longer contains {committed!r}")
        config = config.replace(committed, local)
    (folder / "alertmanager.yml").write_text(config)
    for template in (source / "templates").glob("*.tmpl"):
        text = template.read_text().replace(
            "https://github.com/your-org/otel-kit/blob/main/", f"file://{REPO}/"
        )
        (folder / "templates" / template.name).write_text(text)
    for team in TEAMS:  # an integration key has 32 characters
        (folder / "secrets" / f"pagerduty-{team}.key").write_text(hashlib.md5(team.encode()).hexdigest())
    return folder / "alertmanager.yml"


def _prepare_elasticsearch() -> None:
    """Its config folder (ES_PATH_CONF) in the state folder: single node, loopback, no security."""
    home = Path(_binary("OTEL_KIT_ELASTICSEARCH_HOME"))
    config = STATE / "elasticsearch"
    if os.geteuid() == 0 and not _user_exists(ELASTICSEARCH_USER):
        account = [
            "--system",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
        ]
        subprocess.run(["useradd", *account, ELASTICSEARCH_USER], check=True)
    if not (config / "jvm.options").exists():
        shutil.copytree(home / "config", config, dirs_exist_ok=True)
    (config / "elasticsearch.yml").write_text(
        "cluster.name: otel-kit\n"
        "node.name: local\n"
        "discovery.type: single-node\n"
        "network.host: 127.0.0.1\n"
        f"http.port: {ELASTICSEARCH_PORT}\n"
        "transport.port: 9300\n"
        # A local store on loopback; compose and production enable security (docs/logs.md).
        "xpack.security.enabled: false\n"
        f"path.data: {DATA / 'elasticsearch'}\n"
        f"path.logs: {LOGS / 'elasticsearch'}\n"
        # The disk watermarks would make a nearly full developer disk read-only.
        "cluster.routing.allocation.disk.threshold_enabled: false\n"
    )
    heap = os.environ.get("OTEL_KIT_ELASTICSEARCH_HEAP", "512m")
    (config / "jvm.options.d").mkdir(exist_ok=True)
    (config / "jvm.options.d" / "heap.options").write_text(f"-Xms{heap}\n-Xmx{heap}\n")
    for folder in (DATA / "elasticsearch", DATA / "elasticsearch-tmp", LOGS / "elasticsearch"):
        postgres_cluster.give_to(folder, ELASTICSEARCH_USER)
    if os.geteuid() == 0:  # it writes its keystore into the config folder
        for path in (config, *config.rglob("*")):
            shutil.chown(path, ELASTICSEARCH_USER, ELASTICSEARCH_USER)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _init_postgres(data: Path) -> None:
    try:
        postgres_cluster.init_cluster(data)
    except postgres_cluster.InitdbError as error:
        raise StackError(str(error)) from None


def _write_supervisor_config(all_servers: list[Server]) -> Path:
    """supervisord.conf from the committed templates (deploy/local/supervisord/), one program per server."""
    main = Template((SUPERVISORD_TEMPLATES / "supervisord.conf").read_text())
    program = Template((SUPERVISORD_TEMPLATES / "program.conf").read_text())
    sections = [main.substitute(logs=LOGS, state=STATE, port=SUPERVISOR_PORT)]
    for priority, server in enumerate(all_servers, start=1):
        section = program.substitute(
            name=server.name,
            command=" ".join(_quote(part) for part in server.command),
            priority=priority,
            stop_signal=server.stop_signal,
            logs=LOGS,
            directory=server.directory,
        )
        if server.user:
            section += f"user={server.user}\n"
        if server.env:
            section += (
                "environment=" + ",".join(f'{key}="{value}"' for key, value in server.env.items()) + "\n"
            )
        sections.append(section)
    path = STATE / "supervisord.conf"
    path.write_text("".join(sections))
    return path


def _quote(part: str) -> str:
    # supervisord splits command lines shell-style (an empty argument must stay one) and
    # expands %(name)s in them (a literal % is written %%).
    part = part.replace("%", "%%")
    return f'"{part}"' if part == "" or " " in part else part


def _start_supervisord(config: Path) -> None:
    if _running_states() is not None:
        # Already running, perhaps with the config of an older checkout: take in servers
        # that were added since, and the new command of a changed one that is not running
        # (running ones are left alone).
        supervisor = _supervisor().supervisor
        [[added, changed, _removed]] = supervisor.reloadConfig()
        states = _running_states() or {}
        for name in changed:
            if states.get(name) not in ("RUNNING", "STARTING"):
                supervisor.removeProcessGroup(name)
                added.append(name)
        for name in added:
            supervisor.addProcessGroup(name)
        return
    if _port_taken(SUPERVISOR_PORT):
        raise StackError(f"port {SUPERVISOR_PORT} (the stack's supervisord) is taken by another program")
    subprocess.run([sys.executable, "-m", "supervisor.supervisord", "-c", str(config)], check=True)
    deadline = time.monotonic() + 15
    while _running_states() is None:
        if time.monotonic() > deadline:
            raise StackError(f"supervisord did not start: see {LOGS / 'supervisord.log'}")
        time.sleep(0.2)


@app.command()
def setup() -> None:
    """Create data folders, PostgreSQL clusters and generated configs (idempotent)."""
    all_servers = servers()
    _prepare(all_servers)
    _write_supervisor_config(all_servers)
    console.print(f"stack prepared in {STATE}")


@app.command()
def start(
    names: Annotated[list[str] | None, typer.Argument(help="Only these servers (as `status` names).")] = None,
    timeout: float = typer.Option(120.0, help="Seconds to wait for every server to be ready."),
    examples: bool = typer.Option(False, "--examples", help="Also run the shop, CRM and MES examples."),
) -> None:
    """Start every server that is not running and wait until each answers its readiness check."""
    all_servers = servers() + (example_services() if examples else [])
    try:
        if names:
            all_servers = _named(names, servers() + example_services())
        _prepare(all_servers)
        states = _running_states() or {}
        # A port held by something other than our own running server is a clear error, not a
        # server that dies on start with the reason buried in its log.
        for server in all_servers:
            if states.get(server.name) == "RUNNING":
                continue
            for purpose, port in server.ports.items():
                if _port_taken(port):
                    raise StackError(
                        f"port {port} ({server.name} {purpose}) is already in use by another program; "
                        f"stop it (`ss -ltnp 'sport = :{port}'` shows which) and run start again"
                    )
        _start_supervisord(_write_supervisor_config(servers() + example_services()))
        supervisor = _supervisor().supervisor
        started = time.monotonic()
        example_names = {server.name for server in example_services()}
        for group in (
            [s for s in all_servers if s.first],
            [s for s in all_servers if not s.first and s.name not in example_names],
            [s for s in all_servers if s.name in example_names],  # after the databases and S3 they use
        ):
            if not group:
                continue
            for server in group:
                if (_running_states() or {}).get(server.name) != "RUNNING":
                    supervisor.startProcess(server.name, False)
            _wait_ready(group, started + timeout)
            if group[0].first:
                _ensure_databases()
            if any(server.name == "minio" for server in group):
                _ensure_s3_user()
            if any(server.name == "elasticsearch" for server in group):
                _ensure_log_template()
        # Prometheus and Alertmanager may have run since before their configs or rules
        # changed: reload them.
        running = _running_states() or {}
        for name, port in (("prometheus", 9090), ("alertmanager", 9093)):
            if running.get(name) == "RUNNING":
                reload = urllib.request.Request(f"http://127.0.0.1:{port}/-/reload", method="POST")
                urllib.request.urlopen(reload, timeout=10).close()
    except StackError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(1) from None
    console.print(f"stack ready in {time.monotonic() - started:.1f} s; logs in {LOGS}")
    _print_status(all_servers)


def _wait_ready(all_servers: list[Server], deadline: float) -> None:
    pending = list(all_servers)
    with console.status("waiting for the servers") as status:
        while pending:
            states = _running_states() or {}
            for server in list(pending):
                if states.get(server.name) not in ("RUNNING", "STARTING"):
                    state, log = states.get(server.name), LOGS / f"{server.name}.log"
                    raise StackError(f"{server.name} exited ({state}): see {log}")
                if server.ready():
                    pending.remove(server)
                    console.print(f"  [green]ready[/green] {server.name}")
            if pending and time.monotonic() > deadline:
                names = ", ".join(s.name for s in pending)
                raise StackError(f"not ready in time: {names}; see their logs in {LOGS}")
            status.update("waiting for " + ", ".join(s.name for s in pending))
            if pending:
                time.sleep(0.3)


def _ensure_databases() -> None:
    for name, port in (("shop", 5433), ("mes", 5434)):
        psql = [str(PG_BIN / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-tAc"]
        exists = subprocess.run(
            [*psql, f"SELECT 1 FROM pg_database WHERE datname = '{name}'"], capture_output=True, text=True
        )
        if exists.stdout.strip() != "1":
            subprocess.run([*psql, f"CREATE DATABASE {name}"], check=True, capture_output=True)
        statements = "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"
        subprocess.run([*psql, statements, "-d", name], check=True, capture_output=True)


def _ensure_s3_user() -> None:
    """The MES's S3 user (deploy/minio/service_user.py; compose runs it too)."""
    env = {
        **os.environ,
        "MINIO_ROOT_USER": MINIO_USER,
        "MINIO_ROOT_PASSWORD": MINIO_PASSWORD,
        "S3_ACCESS_KEY": S3_SERVICE_USER,
        "S3_SECRET_KEY": S3_SERVICE_SECRET,
    }
    done = subprocess.run(
        [sys.executable, str(REPO / "deploy/minio/service_user.py")], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise StackError(f"could not create the MES's MinIO user: {done.stderr.strip()[-2000:]}")


def _ensure_log_template() -> None:
    """The log data streams' index template (deploy/elasticsearch/templates.py), before the
    collector's first record creates a data stream."""
    done = subprocess.run(
        [sys.executable, str(REPO / "deploy/elasticsearch/templates.py")],
        env={**os.environ, "ELASTICSEARCH_URL": ELASTICSEARCH},
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise StackError(f"could not install the log index template: {done.stderr.strip()[-2000:]}")


def _named(names: list[str], known: list[Server]) -> list[Server]:
    by_name = {server.name: server for server in known}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        raise StackError(f"no server named {', '.join(unknown)}; the servers are: {', '.join(by_name)}")
    return [by_name[name] for name in names]


@app.command()
def stop(
    names: Annotated[
        list[str] | None,
        typer.Argument(help="Only these servers, the rest left running (an outage to try the forensics on)."),
    ] = None,
) -> None:
    """Stop every server and supervisord, the collector first; data and logs stay in the state folder."""
    if _running_states() is None:
        console.print("stack is not running")
        return
    if names:
        try:
            chosen = _named(names, servers() + example_services())
        except StackError as error:
            console.print(f"[red]error:[/red] {error}")
            raise typer.Exit(1) from None
        supervisor = _supervisor().supervisor
        for server in chosen:
            with contextlib.suppress(Fault):  # already stopped
                supervisor.stopProcess(server.name)
            console.print(f"  stopped {server.name}")
        return
    _retire_collector_series()
    # supervisord's own shutdown stops one server at a time, in reverse priority order;
    # stopAllProcesses would signal them all at once, and RabbitMQ's stop script, finding
    # epmd already gone, starts an epmd daemon that outlives the stack and holds port 4369.
    _supervisor().supervisor.shutdown()
    deadline = time.monotonic() + 180  # each server gets stopwaitsecs=30 before a SIGKILL
    while _port_taken(SUPERVISOR_PORT) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _port_taken(SUPERVISOR_PORT):
        console.print(f"[red]error:[/red] still stopping after 180 s; see {LOGS / 'supervisord.log'}")
        raise typer.Exit(1)
    console.print("stack stopped")


def _retire_collector_series(timeout: float = 30.0) -> None:
    """Stop the examples and the collector while Prometheus still runs, and wait until it has
    marked the collector's series stale and evaluated its rules on that.

    Prometheus marks a target's series stale when a scrape of it fails, never when it stops
    itself. The span metrics carry each service's service_instance_id, so after a stop and
    start the last run's series stayed in every sum for 5 minutes (the query lookback): the
    order funnel counted the previous run's orders, then dropped them.
    """
    states = _running_states() or {}
    if states.get("prometheus") != "RUNNING" or states.get("otelcol") != "RUNNING":
        return
    supervisor = _supervisor().supervisor
    # The examples first: their last spans still reach the collector. One that exited in the
    # meantime (a Fault) must not keep the rest of the stack from stopping.
    for name in [s.name for s in example_services() if states.get(s.name) == "RUNNING"] + ["otelcol"]:
        with contextlib.suppress(Fault):
            supervisor.stopProcess(name)
    stopped = datetime.now(UTC)
    deadline = time.monotonic() + timeout
    with console.status("waiting for Prometheus to mark the collector's series stale"):
        while time.monotonic() < deadline:
            if _prometheus_noticed(stopped):
                return
            time.sleep(0.5)
    console.print(
        "[yellow]warning:[/yellow] Prometheus did not scrape the stopped collector within "
        f"{timeout:.0f} s: its series stay in queries for 5 minutes after the next start"
    )


def _prometheus_noticed(stopped: datetime) -> bool:
    """Whether Prometheus has failed a scrape of the collector since `stopped` and evaluated
    every rule group after that scrape."""
    try:
        targets = _prometheus_api("targets?scrapePool=span-metrics")["activeTargets"]
        groups = _prometheus_api("rules?type=record")["groups"]
    except (OSError, KeyError, ValueError):
        return False
    # Python 3.11 reads Prometheus's RFC 3339 times, nanoseconds cut to microseconds.
    failed = [
        scraped
        for target in targets
        if target["health"] != "up" and (scraped := datetime.fromisoformat(target["lastScrape"])) > stopped
    ]
    if len(failed) < len(targets):
        return False
    noticed = max(failed, default=stopped)
    return all(datetime.fromisoformat(group["lastEvaluation"]) > noticed for group in groups)


def _prometheus_api(path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:9090/api/v1/{path}", timeout=2) as response:
        return json.load(response)["data"]


@app.command()
def status() -> None:
    """Each server's state, readiness and address; exit 1 if any is not ready."""
    states = _running_states() or {}
    started = [s for s in example_services() if states.get(s.name, "STOPPED") != "STOPPED"]
    all_servers = servers() + started
    if not _print_status(all_servers):
        raise typer.Exit(1)


def _print_status(all_servers: list[Server]) -> bool:
    states = _running_states() or {}
    table = Table("server", "process", "ready", "ports", "where")
    all_ready = True
    for server in all_servers:
        ready = server.ready() if states.get(server.name) == "RUNNING" else False
        all_ready &= ready
        ports = " ".join(f"{purpose}:{port}" for purpose, port in server.ports.items())
        table.add_row(
            server.name,
            states.get(server.name, "not running"),
            "[green]yes[/green]" if ready else "[red]no[/red]",
            ports,
            "\n".join(server.urls),
        )
    # A log file or a pipe gets the whole table, not one folded to 80 columns.
    Console(width=None if sys.stdout.isatty() else 160).print(table)
    return all_ready


if __name__ == "__main__":
    app()

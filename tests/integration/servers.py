"""Private RabbitMQ and PostgreSQL servers for the integration tests, from the Debian packages.

Each runs on a free port with its data in a temporary folder, is started with mirakuru
(ready when its port accepts connections) and stopped with its whole process group.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mirakuru import TCPExecutor

from tests.helpers import load_script

REPO = Path(__file__).resolve().parents[2]

postgres_cluster = load_script(REPO / "deploy/local/postgres_cluster.py")
PG_BIN = postgres_cluster.PG_BIN
RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _require(path: Path, package: str) -> None:
    if not path.exists():
        raise RuntimeError(f"{path} is missing: install the Debian package {package} (scripts/test does)")


@dataclass
class Server:
    executor: TCPExecutor
    port: int
    log: Path
    env: dict[str, str] | None = None

    def stop(self) -> None:
        self.executor.stop()
        if self.env and "ERL_EPMD_PORT" in self.env:
            # epmd daemonises out of the broker's process group; stop ours by its port.
            subprocess.run(["epmd", "-kill"], env=self.env, capture_output=True, check=False)


def start_postgres(workdir: Path) -> Server:
    """A PostgreSQL cluster made as the local stack makes its own (deploy/local/postgres_cluster.py)."""
    _require(PG_BIN / "postgres", "postgresql")
    if os.geteuid() == 0:
        # pytest's temporary folders are private to root: give postgres a folder of its own.
        workdir = Path(tempfile.mkdtemp(prefix="otel-kit-postgres-"))
    postgres_cluster.give_to_postgres(workdir)  # its socket (-k) and log are written there
    data, log = workdir / "pgdata", workdir / "postgres.log"
    postgres_cluster.init_cluster(data)
    run_as = postgres_cluster.run_as_postgres()
    port = free_port()
    command = [
        *run_as,
        str(PG_BIN / "postgres"),
        "-D", str(data),
        "-p", str(port),
        "-k", str(workdir),
        "-c", "listen_addresses=127.0.0.1",
        "-c", "fsync=off",
    ]  # fmt: skip
    executor = TCPExecutor(
        command, host="127.0.0.1", port=port, timeout=60, stdout=log.open("w"), stderr=subprocess.STDOUT
    )
    executor.start()
    return Server(executor, port, log)


def start_rabbitmq(workdir: Path) -> Server:
    _require(RABBITMQ_SERVER, "rabbitmq-server")
    workdir.mkdir(parents=True, exist_ok=True)
    port, log = free_port(), workdir / "rabbitmq.log"
    (workdir / "enabled_plugins").write_text("[].\n")
    env = {
        "HOME": str(workdir),  # the Erlang cookie lives here
        "RABBITMQ_NODENAME": f"otelkit{port}@localhost",
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(port),
        "RABBITMQ_DIST_PORT": str(free_port()),
        "ERL_EPMD_PORT": str(free_port()),
        "RABBITMQ_MNESIA_BASE": str(workdir / "mnesia"),
        "RABBITMQ_LOG_BASE": str(workdir / "log"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(workdir / "enabled_plugins"),
        "RABBITMQ_CONFIG_FILE": str(workdir / "rabbitmq"),
    }
    executor = TCPExecutor(
        [str(RABBITMQ_SERVER)],
        host="127.0.0.1",
        port=port,
        timeout=90,
        envvars={**os.environ, **env},
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    executor.start()
    return Server(executor, port, log, {**os.environ, **env})

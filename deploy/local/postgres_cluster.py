"""A PostgreSQL data folder made with initdb, owned by the postgres user when run as root.

One helper for the local stack (deploy/local/stack.py) and the integration tests'
fixtures (tests/integration/servers.py): PostgreSQL refuses to run as root, so as root the
folder is given to the postgres user and initdb, like the server, runs as that user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from pathlib import Path

PG_BIN = Path("/usr/lib/postgresql/15/bin")  # Debian's postgresql package


class InitdbError(RuntimeError):
    """initdb failed; the message holds its output."""


def run_as_postgres() -> list[str]:
    """The command prefix that runs a PostgreSQL program as the postgres user, if we are root."""
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def give_to_postgres(folder: Path) -> None:
    """Make `folder` the postgres user's (as root; otherwise it is ours already), private to it."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        shutil.chown(folder, user.pw_uid, user.pw_gid)
    folder.chmod(0o700)


def init_cluster(data: Path) -> None:
    """A cluster in `data`, superuser postgres, trust authentication, UTF8; kept if it exists."""
    if (data / "PG_VERSION").exists():
        return
    give_to_postgres(data)
    command = [str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]
    result = subprocess.run([*run_as_postgres(), *command], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise InitdbError(f"initdb {data} failed:\n{result.stderr}")

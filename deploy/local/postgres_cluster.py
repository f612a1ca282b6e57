"""A PostgreSQL data folder made with initdb, owned by the postgres user when run as root.

One helper for the local stack (deploy/local/stack.py) and the integration tests'
fixtures (tests/integration/servers.py): PostgreSQL refuses to run as root, so as root the
folder is given to the postgres user and initdb, like the server, runs as that user.
`give_to` gives the stack's other servers (Elasticsearch) their folders the same way.
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


def give_to(folder: Path, user: str) -> None:
    """Make `folder` the server user's (as root servers run as their own users; otherwise it is ours)."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        account = pwd.getpwnam(user)
        shutil.chown(folder, account.pw_uid, account.pw_gid)


def give_to_postgres(folder: Path) -> None:
    """Make `folder` the postgres user's, private to it (initdb refuses a folder others can read)."""
    give_to(folder, "postgres")
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

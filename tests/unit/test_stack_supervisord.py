"""deploy/local/stack.py's supervisord.conf, from the committed templates, as supervisord reads it."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from supervisor.options import ServerOptions

from tests.helpers import load_script

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def stack(tmp_path, monkeypatch):
    monkeypatch.setenv("OTEL_KIT_STACK_DIR", str(tmp_path))
    (tmp_path / "logs").mkdir()
    return load_script(REPO / "deploy/local/stack.py")


def test_every_server_is_a_program_in_start_order_with_its_command_intact(stack):
    servers = stack.servers() + stack.example_services()

    options = ServerOptions()
    options.realize(["-c", str(stack._write_supervisor_config(servers))])

    programs = [group.process_configs[0] for group in options.process_group_configs]
    assert [p.name for p in sorted(programs, key=lambda p: p.priority)] == [s.name for s in servers]
    by_name = {p.name: p for p in programs}
    for server in servers:
        program = by_name[server.name]
        assert shlex.split(program.command) == server.command  # quoted as supervisord splits it, `%` kept
        assert (program.uid is not None) == (server.user is not None)
        assert (program.environment or {}) == server.env
        assert program.stdout_logfile == str(stack.LOGS / f"{server.name}.log")
        assert (program.autostart, program.autorestart) == (False, False)  # the stack starts them in order

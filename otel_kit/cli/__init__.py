"""The `otel-kit` command: lost-order forensics over Jaeger, log search over Elasticsearch.

commands (the typer app), jaeger (the query API client), verdict (where an order stopped),
log_store (its log records in Elasticsearch).
"""

from otel_kit.cli.commands import main

__all__ = ["main"]

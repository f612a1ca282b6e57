"""`otel-kit`: lost-order forensics over Jaeger, and log search over Elasticsearch.

    otel-kit trace ORDER_ID          the order's path across services, its warnings and errors
                                     logged, and where it stopped
    otel-kit lost-orders --since 15m the orders that never completed, grouped by where they stopped
    otel-kit logs --order ORDER_ID   log records: by order, trace, service, severity, text, time

Exit codes of `trace`, for scripts: 0 completed, 1 failed, 3 stuck, 4 no such order in Jaeger,
5 Jaeger unreachable (2 is a usage error); `logs` exits 6 when Elasticsearch is unreachable.
"""

from __future__ import annotations

import functools
import json
import os
import re
import sys
import time
from collections import defaultdict
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Annotated

try:
    import typer
    from rich.console import Console
    from rich.table import Table
except ImportError:  # the CLI is an extra; the kit itself does not need these
    typer = None

from otel_kit.cli.jaeger import Jaeger, JaegerUnreachable
from otel_kit.cli.log_store import SEVERITIES, LogLine, LogQuery, LogStore, LogStoreUnreachable
from otel_kit.cli.verdict import Verdict, verdict

EXIT = {"completed": 0, "failed": 1, "stuck": 3, "unknown": 4}
JAEGER_DOWN = 5
LOGS_DOWN = 6  # `otel-kit logs` only: `trace` goes on without the log records


def _step(value: str, setting: str) -> tuple[str, str]:
    service, sep, operation = value.partition(":")
    if not sep or not service or not operation:
        raise typer.BadParameter(f"{setting}={value!r}: expected SERVICE:OPERATION, e.g. 'shop:POST /orders'")
    return service.strip(), operation.strip()


def _seconds(value: str, setting: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(s|m|h|d)", value.strip())
    if not match:
        raise typer.BadParameter(f"{setting}={value!r}: expected a duration such as 30s, 15m, 2h or 1d")
    return float(match[1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match[2]]


if typer is not None:
    app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.splitlines()[0])
    # Piped or logged output keeps whole table rows instead of folding them at 80 columns.
    out, err = Console(width=None if sys.stdout.isatty() else 200), Console(stderr=True)
    jaeger_option = typer.Option(
        "http://127.0.0.1:16686", envvar="OTEL_KIT_JAEGER_URL", help="Jaeger query API base URL."
    )
    entry_option = typer.Option(
        "shop:POST /orders", envvar="OTEL_KIT_ORDER_ENTRY", help="SERVICE:OPERATION where an order enters."
    )
    done_option = typer.Option(
        "shop:orders receive",
        envvar="OTEL_KIT_ORDER_DONE",
        help="SERVICE:OPERATION of the order's terminal step (the shop consuming its final status).",
    )

    logs_option = typer.Option(
        "http://127.0.0.1:9200", envvar="OTEL_KIT_ELASTICSEARCH_URL", help="Elasticsearch holding the logs."
    )

    def _severity(value: str | None) -> str | None:
        if value is None or value.lower() in SEVERITIES:
            return value.lower() if value else None
        raise typer.BadParameter(f"--severity={value!r}: expected one of {', '.join(SEVERITIES)}")

    def _print_logs(lines: list[LogLine], title: str) -> None:
        table = Table("time (UTC)", "service", "level", "message", "trace", "order", title=title)
        for line in lines:
            level = (
                f"[red]{line.severity}[/red]"
                if line.severity_number >= SEVERITIES["error"]
                else line.severity
            )
            trace_id = line.trace_id[:16] if line.trace_id else ""
            table.add_row(
                line.time[:23].replace("T", " "),
                line.service,
                level,
                line.message,
                trace_id,
                line.order_id or "",
            )
        out.print(table)

    def _print_timeline(result: Verdict) -> None:
        table = Table("+ms", "service", "operation", "ms", "status", "note", title=f"order {result.order_id}")
        for step in result.timeline:
            status = "[red]ERROR[/red]" if step.error else "ok"
            table.add_row(
                f"{step.start_ms:.0f}",
                step.service,
                step.operation,
                f"{step.duration_ms:.1f}",
                status,
                step.note,
            )
        out.print(table)

    @app.command()
    def trace(
        order_id: str,
        jaeger: str = jaeger_option,
        entry: str = entry_option,
        done: str = done_option,
        lookback: str = typer.Option("2d", help="How far back to search, e.g. 1h, 2d."),
        logs: str = logs_option,
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    ) -> None:
        """The order's path across services, its warnings and errors logged, and where it stopped."""
        entry_service, _ = _step(entry, "OTEL_KIT_ORDER_ENTRY")
        done_step = _step(done, "OTEL_KIT_ORDER_DONE")
        _seconds(lookback, "--lookback")
        client = Jaeger(jaeger)
        try:
            traces = client.traces_of_order(order_id, entry_service, lookback)
            if not traces:  # an order that entered elsewhere: look in every service
                for service in client.services():
                    traces = client.traces_of_order(order_id, service, lookback)
                    if traces:
                        break
        except JaegerUnreachable as error:
            err.print(f"[red]error:[/red] {error} (set OTEL_KIT_JAEGER_URL or --jaeger)")
            raise typer.Exit(JAEGER_DOWN) from None
        found_logs = _order_logs(logs, order_id, traces, _seconds(lookback, "--lookback"))
        result = verdict(order_id, traces, done_step, client.service_at, found_logs)
        if as_json:
            out.print_json(result.to_json())
        elif result.outcome == "unknown":
            err.print(
                f"order {order_id}: no trace in Jaeger at {jaeger} within {lookback} "
                f"(is the id right? was it placed before Jaeger's retention?)"
            )
        else:
            _print_timeline(result)
            if result.logs:
                _print_logs(result.logs, f"warnings and errors logged for order {order_id}")
            slowest = result.slowest_leaf()
            if slowest:
                where = f"{slowest.service}: {slowest.operation}"
                out.print(f"slowest step: {where} ({slowest.duration_ms:.0f} ms)")
            out.print(f"[bold]{result.summary()}[/bold]")
        raise typer.Exit(EXIT[result.outcome])

    def _order_logs(url: str, order_id: str, traces: list[dict], lookback_s: float) -> list[LogLine]:
        """The order's warnings and errors, by its id or its traces; none (and a warning) if
        Elasticsearch is unreachable: the verdict from the spans still stands."""
        query = LogQuery(
            order_id=order_id,
            trace_ids=tuple(sorted({t["traceID"] for t in traces})),
            order_or_traces=True,
            min_severity="warn",
            since=datetime.now(UTC) - timedelta(seconds=lookback_s),
            limit=200,
        )
        try:
            return LogStore(url).search(query)
        except LogStoreUnreachable as error:
            err.print(
                f"[yellow]warning:[/yellow] no log records: {error} "
                "(set OTEL_KIT_ELASTICSEARCH_URL or --logs)"
            )
            return []

    @app.command("logs")
    def logs_(
        order: str | None = typer.Option(None, "--order", help="Records of this order id."),
        trace_id: Annotated[
            list[str] | None, typer.Option("--trace", help="This trace id (repeatable).")
        ] = None,
        service: Annotated[
            list[str] | None, typer.Option("--service", help="This service (repeatable).")
        ] = None,
        severity: str | None = typer.Option(None, help="At least this level: " + ", ".join(SEVERITIES) + "."),
        text: str | None = typer.Option(None, help="Words the message contains (all of them)."),
        since: str = typer.Option("1h", help="Records of this window, e.g. 15m, 2h, 7d."),
        until: str | None = typer.Option(None, help="Up to this long ago, e.g. 5m (default: now)."),
        limit: int = typer.Option(100, min=1, max=10_000, help="Most records shown (the newest)."),
        url: str = logs_option,
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output, one record per line."),
    ) -> None:
        """Log records of the services, RabbitMQ and PostgreSQL, oldest first."""
        now = datetime.now(UTC)
        query = LogQuery(
            order_id=order,
            trace_ids=tuple(trace_id or ()),
            services=tuple(service or ()),
            min_severity=_severity(severity),
            text=text,
            since=now - timedelta(seconds=_seconds(since, "--since")),
            until=now - timedelta(seconds=_seconds(until, "--until")) if until else None,
            limit=limit,
        )
        try:
            lines = LogStore(url).search(query)
        except LogStoreUnreachable as error:
            err.print(f"[red]error:[/red] {error} (set OTEL_KIT_ELASTICSEARCH_URL or --url)")
            raise typer.Exit(LOGS_DOWN) from None
        if as_json:
            for line in lines:
                print(json.dumps(asdict(line)))
            return
        _print_logs(lines, f"log records, last {since}")
        if not lines:
            err.print("no record matched (widen --since, or check the service name: `--service shop`)")

    @app.command("lost-orders")
    def lost_orders(
        since: str = typer.Option("15m", help="Orders placed in this window, e.g. 15m, 2h."),
        settle: str = typer.Option(
            "30s", help="Leave out orders younger than this: they may still be moving."
        ),
        jaeger: str = jaeger_option,
        entry: str = entry_option,
        done: str = done_option,
        limit: int = typer.Option(20_000, help="Most traces to read."),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    ) -> None:
        """Orders whose trace started but never reached the terminal step, grouped by where they stopped."""
        entry_service, entry_operation = _step(entry, "OTEL_KIT_ORDER_ENTRY")
        done_step = _step(done, "OTEL_KIT_ORDER_DONE")
        now = time.time()
        start_us = int((now - _seconds(since, "--since")) * 1e6)
        end_us = int((now - _seconds(settle, "--settle")) * 1e6)
        client = Jaeger(jaeger)
        try:
            traces = client.traces(entry_service, entry_operation, start_us, end_us, limit)
        except JaegerUnreachable as error:
            err.print(f"[red]error:[/red] {error} (set OTEL_KIT_JAEGER_URL or --jaeger)")
            raise typer.Exit(JAEGER_DOWN) from None
        by_order: dict[str, list[dict]] = defaultdict(list)
        for trace_ in traces:
            ids = {
                tag["value"] for span in trace_["spans"] for tag in span["tags"] if tag["key"] == "order.id"
            }
            for order_id in ids:
                by_order[order_id].append(trace_)
        service_at = functools.cache(client.service_at)  # one look-up per address, not per order
        lost = [
            verdict(order_id, found, done_step, service_at) for order_id, found in sorted(by_order.items())
        ]
        lost = [v for v in lost if v.outcome != "completed"]
        # Grouped by where they stopped; the reason shown is the first order's (reasons can
        # carry per-order details such as a URL).
        groups: dict[tuple, list[Verdict]] = defaultdict(list)
        for v in lost:
            groups[(v.outcome, v.service, v.step, v.peer)].append(v)
        if as_json:
            out.print_json(
                data={
                    "orders_seen": len(by_order),
                    "lost": [
                        {
                            "outcome": outcome,
                            "service": service,
                            "step": step,
                            "peer": peer,
                            "reason": found[0].reason,
                            "orders": [v.order_id for v in found],
                        }
                        for (outcome, service, step, peer), found in groups.items()
                    ],
                }
            )
            return
        table = Table("orders", "where", "reason", "order ids", title=f"lost orders, last {since}")
        for (outcome, service, step, peer), found in sorted(groups.items(), key=lambda kv: -len(kv[1])):
            to = f" -> {peer}" if peer else ""
            where = f"{'stuck after' if outcome == 'stuck' else 'failed at'} {service}{to}: {step}"
            ids = [v.order_id for v in found]
            shown = " ".join(ids[:5]) + (" ..." if len(ids) > 5 else "")
            table.add_row(str(len(ids)), where, found[0].reason or "", shown)
        out.print(table)
        out.print(f"{len(lost)} of {len(by_order)} orders did not complete")


def main() -> None:
    if typer is None:
        sys.stderr.write("otel-kit CLI needs its extra: pip install 'otel-kit[cli]'\n")
        raise SystemExit(2)
    os.environ.setdefault("OTEL_SDK_DISABLED", "true")  # the CLI itself is never traced
    app()


if __name__ == "__main__":
    main()

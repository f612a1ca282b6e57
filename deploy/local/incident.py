"""Incidents on the local stack, caused for real, bounded in time and undone: what proves the alerts.

    deploy/local/incident list                       the incidents and the alerts they page
    deploy/local/incident lock --duration 120        cause one; Ctrl-C undoes it early
    deploy/local/incident drill                      every incident, each page checked

Each incident runs until --duration has passed or it is interrupted, then undoes itself,
whatever happened meanwhile. They act on the stack's servers and the example services
(SHOP_URL, CRM_URL, MES_URL; the stack's own ports by default), and the ones that need
traffic make it: a few quotes and orders a second through the shop.

`drill` runs them in waves of incidents that do not disturb each other, reads the pages
that reach the stack's PagerDuty Events API endpoint, and reports for each incident how
long its alert took to page and, once undone, to resolve; and any page nobody expected.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import httpx
import pika
import psycopg2
import typer
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from examples import _shared  # noqa: E402 - the examples' topology and addresses

SHOP_URL = os.environ.get("SHOP_URL", "http://127.0.0.1:8001")
PAGERDUTY = os.environ.get("OTEL_KIT_PAGERDUTY_EVENTS", "http://127.0.0.1:9094")
PROMETHEUS = os.environ.get("OTEL_KIT_PROMETHEUS", "http://127.0.0.1:9090")
MINIO_ROOT = (
    os.environ.get("MINIO_ROOT_USER", "otelkit"),
    os.environ.get("MINIO_ROOT_PASSWORD", "otelkit-local-only"),
)
MAX_DURATION = 900.0

console = Console(stderr=True)
app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.splitlines()[0])


@dataclass(frozen=True)
class Page:
    """An alert that pages, and the labels that say what it is about."""

    alert: str
    labels: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        about = ",".join(f"{k}={v}" for k, v in self.labels.items())
        return f"{self.alert}{{{about}}}" if about else self.alert

    def matches(self, event: dict[str, Any]) -> bool:
        """A trigger for this alert: its class, and these labels in the details Alertmanager sends."""
        payload = event.get("payload") or {}
        firing = str((payload.get("custom_details") or {}).get("firing", ""))
        return payload.get("class") == self.alert and all(
            f"{k} = {v}\n" in firing for k, v in self.labels.items()
        )


@dataclass(frozen=True)
class Incident:
    name: str
    help: str
    cause: Callable[[threading.Event], None]  # causes it, holds it until the event is set, undoes it
    pages: tuple[Page, ...]  # must page
    may_page: tuple[Page, ...] = ()  # its real consequences, which may page too
    wave: int = 1


# -- traffic and the servers' clients -----------------------------------------------------


@contextlib.contextmanager
def _traffic(stop: threading.Event, per_second: float = 2.0, quotes_only: bool = False) -> Iterator[None]:
    """Healthy quotes and orders through the shop until stop, as customers would make them."""

    def run() -> None:
        basket = {"customer_id": "cust-incident", "items": [{"sku": "gear", "quantity": 1}]}
        with httpx.Client(base_url=SHOP_URL, timeout=10) as client:
            while not stop.is_set():
                with contextlib.suppress(httpx.HTTPError):  # an incident may fail them: that is its point
                    client.post("/quotes", json=basket)
                    if not quotes_only:
                        client.post("/orders", json={**basket, "fault": None})
                stop.wait(1 / per_second)

    thread = threading.Thread(target=run, name="incident-traffic", daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join(15)


def _connect(dsn: str, purpose: str, **settings: Any) -> psycopg2.extensions.connection:
    """A session that names itself in pg_stat_activity, as the runbooks' SQL shows it."""
    return psycopg2.connect(
        dsn, application_name=f"otel-kit-incident {purpose}", connect_timeout=5, **settings
    )


@contextlib.contextmanager
def _side_table(dsn: str, name: str) -> Iterator[str]:
    """A two-row table of the incident's own, dropped afterwards: locks on it block no service."""
    with contextlib.closing(_connect(dsn, "setup")) as conn, conn.cursor() as cur:
        conn.autocommit = True
        cur.execute(f"CREATE TABLE IF NOT EXISTS {name} (id int PRIMARY KEY)")
        cur.execute(f"INSERT INTO {name} VALUES (1), (2) ON CONFLICT DO NOTHING")
    try:
        yield name
    finally:
        with contextlib.closing(_connect(dsn, "cleanup")) as conn, conn.cursor() as cur:
            conn.autocommit = True
            cur.execute(f"DROP TABLE IF EXISTS {name}")


def _http(method: str, url: str, **kwargs: Any) -> None:
    response = httpx.request(method, url, timeout=10, **kwargs)
    if response.status_code >= 400:
        raise IncidentError(f"{method} {url} answered {response.status_code}: {response.text[:300]}")


class IncidentError(Exception):
    """The incident could not be caused (a server is missing or refuses); the message says which."""


# -- the incidents ------------------------------------------------------------------------


@contextlib.contextmanager
def _switched_on(url: str, **params: Any) -> Iterator[None]:
    """An example service's /ops switch on (POST) until the block ends, then off (DELETE).

    The service bounds it by itself too (MAX_DURATION), in case this process dies first.
    """
    _http("POST", url, params={"seconds": MAX_DURATION, **params})
    try:
        yield
    finally:
        _http("DELETE", url)


def _consumer_stop(stop: threading.Event) -> None:
    with _switched_on(f"{_shared.MES_URL}/ops/consumer/pause"), _traffic(stop, per_second=1):
        stop.wait()


def _hold_lock(stop: threading.Event) -> None:
    with _side_table(_shared.SHOP_DSN, "otel_kit_incident_lock") as table:
        holder, waiter = _connect(_shared.SHOP_DSN, "lock holder"), _connect(_shared.SHOP_DSN, "lock waiter")
        waiting = threading.Thread(
            target=lambda: waiter.cursor().execute(f"SELECT id FROM {table} WHERE id = 1 FOR UPDATE"),
            daemon=True,
        )
        try:
            holder.cursor().execute(f"SELECT id FROM {table} WHERE id = 1 FOR UPDATE")
            waiting.start()
            stop.wait()
        finally:
            holder.rollback()  # the waiter gets the row, and lets it go at once
            waiting.join(10)
            waiter.rollback()
            holder.close()
            waiter.close()


def _deadlock(stop: threading.Event, count: int = 3) -> None:
    """`count` real deadlocks, one every few seconds; PostgreSQL aborts one side of each."""
    with _side_table(_shared.MES_DSN, "otel_kit_incident_deadlock") as table:
        for _ in range(count):
            first, second = _connect(_shared.MES_DSN, "deadlock a"), _connect(_shared.MES_DSN, "deadlock b")
            try:
                first.cursor().execute(f"UPDATE {table} SET id = id WHERE id = 1")
                second.cursor().execute(f"UPDATE {table} SET id = id WHERE id = 2")
                crossing = threading.Thread(
                    target=_deadlocked, args=(first, f"UPDATE {table} SET id = id WHERE id = 2"), daemon=True
                )
                crossing.start()
                time.sleep(0.2)  # the first side waits for row 2 before the second asks for row 1
                _deadlocked(second, f"UPDATE {table} SET id = id WHERE id = 1")
                crossing.join(10)
            finally:
                first.close()
                second.close()
            if stop.wait(3):
                return


def _deadlocked(conn: psycopg2.extensions.connection, statement: str) -> None:
    try:
        conn.cursor().execute(statement)
    except psycopg2.errors.DeadlockDetected:
        pass  # this side was chosen as the victim
    finally:
        conn.rollback()


def _exhaust_connections(stop: threading.Event, share: float = 0.93) -> None:
    """Open sessions until the shop db uses `share` of what non-superusers may open."""
    with contextlib.closing(_connect(_shared.SHOP_DSN, "count")) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT current_setting('max_connections')::int,"
            " current_setting('superuser_reserved_connections')::int"
        )
        max_connections, reserved = cur.fetchone()
        cur.execute("SELECT sum(numbackends) FROM pg_stat_database")
        (used,) = cur.fetchone()
    wanted = math.ceil(share * (max_connections - reserved)) - int(used)
    sessions = []
    try:
        for _ in range(max(wanted, 0)):
            sessions.append(_connect(_shared.SHOP_DSN, "idle session"))
        stop.wait()
    finally:
        for session in sessions:
            session.close()


def _deny_s3(stop: threading.Event) -> None:
    """Disable the MES's S3 user: each production document it writes is refused (403)."""
    from minio.credentials import StaticProvider
    from minio.minioadmin import MinioAdmin

    endpoint = _shared.S3_ENDPOINT.removeprefix("http://")
    admin = MinioAdmin(endpoint=endpoint, credentials=StaticProvider(*MINIO_ROOT), secure=False)
    admin.user_disable(_shared.S3_KEY)
    try:
        with _traffic(stop, per_second=1):
            stop.wait()
    finally:
        admin.user_enable(_shared.S3_KEY)


def _burn_cpu(stop: threading.Event) -> None:
    with _switched_on(f"{_shared.CRM_URL}/ops/burn-cpu"):
        stop.wait()


def _hold_memory(stop: threading.Event, mb: int = 1200) -> None:
    with _switched_on(f"{_shared.CRM_URL}/ops/hold-memory", mb=mb):
        stop.wait()


def _broker_down(stop: threading.Event) -> None:
    """Stop RabbitMQ as an operator would (`deploy/local/stack stop rabbitmq`); start it after."""
    stack = [str(REPO / "deploy/local/stack")]
    done = subprocess.run([*stack, "stop", "rabbitmq"], capture_output=True, text=True)
    if done.returncode != 0:
        raise IncidentError(f"could not stop RabbitMQ: {done.stderr.strip()[-500:]}")
    try:
        stop.wait()
    finally:
        subprocess.run([*stack, "start", "rabbitmq"], capture_output=True, check=True)


def _error_storm(stop: threading.Event, per_second: float = 10) -> None:
    """Registrations the CRM fails with 500 (its database is 'unavailable'), 10 a second."""
    with httpx.Client(base_url=_shared.CRM_URL, timeout=5) as client:
        sent = 0
        while not stop.is_set():
            registration = {"order_id": f"incident-{sent}", "price": 1.0, "fault": "crm_500"}
            with contextlib.suppress(httpx.HTTPError):
                client.post("/customers/cust-incident/orders", json=registration)
            sent += 1
            stop.wait(1 / per_second)


def _slow_queries(stop: threading.Event) -> None:
    """A 'migration' that takes production_plans for 0.8 s of every 0.9 s: the MES's queries wait.

    Short of the shop's 1 s timeout on the MES, so quotes are slow but still answered.
    """
    with (
        contextlib.closing(_connect(_shared.MES_DSN, "migration")) as conn,
        _traffic(stop, 4, quotes_only=True),
        conn.cursor() as cur,
    ):
        while not stop.is_set():
            cur.execute("LOCK TABLE production_plans IN ACCESS EXCLUSIVE MODE")
            cur.execute("SELECT pg_sleep(0.8)")
            conn.commit()
            stop.wait(0.1)


def _lose_orders(stop: threading.Event, count: int = 5) -> None:
    """Orders sent with an old client's routing key, into a queue nobody consumes; afterwards
    they are moved to the MES's queue, as the runbook's mitigation does, and complete."""
    placed = set()
    with httpx.Client(base_url=SHOP_URL, timeout=10) as client:
        for _ in range(count):
            body = {
                "customer_id": "cust-incident",
                "items": [{"sku": "gear", "quantity": 1}],
                "fault": "unconsumed",
            }
            response = client.post("/orders", json=body)
            response.raise_for_status()
            placed.add(response.json()["id"])
    try:
        stop.wait()
    finally:
        _move_lost_orders(placed)


def _move_lost_orders(order_ids: set[str]) -> None:
    """These orders from the unconsumed queue to the MES's; the rest go back where they were."""
    lost = next(queue for queue, key in _shared.QUEUES.items() if key == "order.created.v1")
    with contextlib.closing(pika.BlockingConnection(pika.URLParameters(_shared.AMQP_URL))) as connection:
        channel = connection.channel()
        for _ in range(channel.queue_declare(lost, passive=True).method.message_count):
            method, properties, body = channel.basic_get(lost)
            if method is None:
                break
            key = (
                _shared.ORDER_CREATED if json.loads(body).get("order_id") in order_ids else method.routing_key
            )
            channel.basic_publish(_shared.EXCHANGE, key, body, properties)
            channel.basic_ack(method.delivery_tag)


# Waves: a warning pages only while no critical of its team about the same subject fires
# (Alertmanager's inhibition), so the CPU and memory incidents run on the CRM after the
# 5xx storm and the slow queries (whose 30-minute burn rate may still fire on the MES and
# the shop); the stopped consumer would stall the orders of the S3 and lost-order
# incidents; a stopped broker stalls everything, so it runs alone.
INCIDENTS = {
    incident.name: incident
    for incident in (
        Incident(
            "consumer-stop", "The MES stops consuming new orders; they wait in its queue.", _consumer_stop,
            pages=(Page("RabbitMQQueueWithoutConsumers", {"queue": "mes.order-created"}),),
            may_page=(Page("OrdersNotFinishing"),), wave=2,
        ),
        Incident(
            "lock", "A session holds a row lock in the shop db; another waits for it.", _hold_lock,
            pages=(Page("PostgresLongLockWait", {"database": "shop"}),),
        ),
        Incident(
            "deadlock", "Three deadlocks in the MES db; PostgreSQL rolls one side of each back.", _deadlock,
            pages=(Page("PostgresDeadlocks", {"database": "mes"}),),
        ),
        Incident(
            "connections", "Idle sessions take 93% of the shop db's connections.", _exhaust_connections,
            pages=(Page("PostgresConnectionsNearLimit", {"database": "shop"}),), wave=2,
        ),
        Incident(
            "s3-deny", "The MES's S3 user is disabled: its document writes are refused.", _deny_s3,
            pages=(Page("S3ClientErrors", {"service_name": "mes"}),),
            may_page=(Page("OrdersDeadLettered"), Page("S3RequestsRefused")),
        ),
        Incident(
            "cpu-burn", "The CRM spins a core in a hot loop.", _burn_cpu,
            pages=(Page("ServiceHighCPU", {"service_name": "crm"}),), wave=2,
        ),
        Incident(
            "memory-hog", "The CRM holds 1.2 GB, as a leak would.", _hold_memory,
            pages=(Page("ServiceHighMemory", {"service_name": "crm"}),), wave=2,
        ),
        Incident(
            "broker-down", "RabbitMQ is stopped; the services wait to reconnect.", _broker_down,
            pages=(Page("RabbitMQDown", {"job": "rabbitmq"}),), wave=3,
        ),
        Incident(
            "error-storm", "The CRM answers ten requests a second with 500.", _error_storm,
            pages=(Page("ServiceHighErrorRatio", {"service_name": "crm"}),),
        ),
        Incident(
            "slow-queries", "A migration locks the MES's plans table: queries wait up to 0.8 s.",
            _slow_queries,
            pages=(Page("ServiceLatencyBudgetBurnFast", {"service_name": "mes"}),),
            may_page=(
                Page("ServiceLatencyBudgetBurnFast", {"service_name": "shop"}),
                *(Page(f"ServiceLatencyBudget{kind}", {"service_name": service})
                  for kind in ("BurnSlow", "Ticket") for service in ("mes", "shop")),
            ),
        ),
        Incident(
            "lost-orders", "Five orders go to a queue nobody consumes.", _lose_orders,
            pages=(Page("OrdersNotFinishing"),),
            may_page=(Page("RabbitMQQueueWithoutConsumers", {"queue": "legacy.order-created"}),),
        ),
    )
}  # fmt: skip


def run_incident(incident: Incident, stop: threading.Event) -> None:
    """Cause the incident until stop is set (or MAX_DURATION), then undo it."""
    timer = threading.Timer(MAX_DURATION, stop.set)
    timer.start()
    try:
        incident.cause(stop)
    finally:
        timer.cancel()


# -- the drill ----------------------------------------------------------------------------


@dataclass
class Outcome:
    """One incident of a drill: when it started and was undone, its pages and their resolves."""

    incident: str
    started: float
    undone: float | None = None
    triggers: dict[str, dict[str, Any]] = field(default_factory=dict)  # page -> the trigger event
    resolves: dict[str, dict[str, Any]] = field(default_factory=dict)  # page -> the resolve event
    error: str | None = None

    def seconds_to_page(self, page: str) -> float | None:
        event = self.triggers.get(page)
        return event["at"] - self.started if event else None

    def seconds_to_resolve(self, page: str) -> float | None:
        event = self.resolves.get(page)
        return event["at"] - self.undone if event and self.undone else None


def _events(after: int) -> list[dict[str, Any]]:
    response = httpx.get(f"{PAGERDUTY}/events", params={"after": after}, timeout=10)
    response.raise_for_status()
    events = response.json()["events"]
    for record in events:
        record["at"] = datetime.fromisoformat(record["received_at"]).timestamp()
    return events


def _open_pages(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The last trigger of each dedup key not resolved since."""
    last: dict[str, dict[str, Any]] = {}
    for record in events:
        if record["accepted"]:
            last[record["dedup_key"]] = record["event"]
    return {key: event for key, event in last.items() if event["event_action"] == "trigger"}


def _still_on(pages: list[Page]) -> list[str]:
    """The pages that fire in Prometheus, or whose PagerDuty incident is still open (its
    resolve waits for the group's next interval)."""
    open_events = _open_pages(_events(0)).values()
    return [str(page) for page in pages if _firing(page) or any(page.matches(event) for event in open_events)]


def _firing(page: Page) -> bool:
    selector = ",".join(
        [f'alertname="{page.alert}"', 'alertstate="firing"', *(f'{k}="{v}"' for k, v in page.labels.items())]
    )
    return bool(_query(f"ALERTS{{{selector}}}"))


def preflight(timeout: float = 90) -> None:
    """One healthy order end to end, and the order funnel's series in Prometheus, before any
    incident: a drill on a broken flow proves nothing, and an alert on increase() misses
    the first orders of a series that does not exist yet."""
    basket = {"customer_id": "cust-incident", "items": [{"sku": "gear", "quantity": 1}], "fault": None}
    with httpx.Client(base_url=SHOP_URL, timeout=10) as client:
        response = client.post("/orders", json=basket)
        if response.status_code >= 400:
            raise IncidentError(f"the shop at {SHOP_URL} refused a healthy order: {response.status_code}")
        order = response.json()["id"]
        deadline = time.monotonic() + timeout
        while client.get(f"/orders/{order}").json()["status"] != "completed":
            if time.monotonic() > deadline:
                raise IncidentError(f"a healthy order ({order}) did not complete in {timeout:.0f} s")
            time.sleep(1)
    query = 'count(order_funnel:orders:total{step=~"placed|completed"})'
    while _query(query) != [2.0]:
        if time.monotonic() > deadline:
            raise IncidentError(f"Prometheus at {PROMETHEUS} has no order funnel: {query} is not 2")
        time.sleep(1)


def _query(promql: str) -> list[float]:
    response = httpx.get(f"{PROMETHEUS}/api/v1/query", params={"query": promql}, timeout=10)
    response.raise_for_status()
    return [float(sample["value"][1]) for sample in response.json()["data"]["result"]]


def drill_wave(
    incidents: list[Incident],
    earlier: tuple[Incident, ...] = (),
    settle: float = 600,
    page_timeout: float = 600,
    resolve_timeout: float = 600,
) -> tuple[list[Outcome], list[dict[str, Any]]]:
    """Run these incidents together; return each one's outcome and the pages nobody expected.

    The consequences of `earlier` incidents may still page (a 30-minute burn rate does).
    """
    deadline = time.monotonic() + settle
    expected = [page for incident in incidents for page in incident.pages]
    while (still := _still_on(expected)) and time.monotonic() < deadline:
        console.print(f"  waiting for {', '.join(still)} to stop firing and resolve first")
        time.sleep(10)
    if still:
        raise IncidentError(f"still firing before the drill, after {settle:.0f} s: {', '.join(still)}")
    history = _events(0)
    seen, already_open = (history[-1]["seq"] if history else 0), set(_open_pages(history))
    allowed = [page for incident in (*earlier, *incidents) for page in (*incident.pages, *incident.may_page)]
    outcomes, stops, threads, unexpected = [], [], [], []
    for incident in incidents:
        outcome, stop = Outcome(incident.name, time.time()), threading.Event()

        def run(
            incident: Incident = incident, outcome: Outcome = outcome, stop: threading.Event = stop
        ) -> None:
            try:
                run_incident(incident, stop)
            except Exception as error:  # reported with the outcome; the other incidents go on
                outcome.error = f"{type(error).__name__}: {error}"
                console.print(f"  [red]{incident.name} failed[/red]: {outcome.error}")
            finally:
                outcome.undone = time.time()

        outcomes.append(outcome)
        stops.append(stop)
        threads.append(threading.Thread(target=run, name=f"incident-{incident.name}", daemon=True))
        threads[-1].start()
        console.print(f"  started [bold]{incident.name}[/bold]: {incident.help}")
    try:
        _watch(
            incidents, outcomes, stops, seen, already_open, allowed, unexpected, page_timeout, resolve_timeout
        )
    finally:  # interrupted too: every incident is undone before the drill ends
        for stop in stops:
            stop.set()
        for thread in threads:
            thread.join(60)
    return outcomes, unexpected


def _watch(
    incidents: list[Incident],
    outcomes: list[Outcome],
    stops: list[threading.Event],
    seen: int,
    already_open: set[str],
    allowed: list[Page],
    unexpected: list[dict[str, Any]],
    page_timeout: float,
    resolve_timeout: float,
) -> None:
    """Read the pages as they come: match each to its incident, undo an incident once it has
    paged, and return when each has resolved (or the timeouts passed)."""
    keys: dict[str, str] = {}  # dedup key -> the page it is for
    started = time.monotonic()
    while True:
        for record in _events(seen):
            seen = record["seq"]
            event = record["event"] or {}
            if not record["accepted"]:
                unexpected.append(record)  # PagerDuty would have refused it: a lost page
                continue
            key, action = record["dedup_key"], event.get("event_action")
            if action == "trigger" and key not in already_open:
                for incident, outcome in zip(incidents, outcomes, strict=True):
                    page = next((str(p) for p in incident.pages if p.matches(event)), None)
                    if page and page not in outcome.triggers:
                        outcome.triggers[page], keys[key] = record, page
                        console.print(
                            f"  [green]paged[/green] {page} after {outcome.seconds_to_page(page):.0f} s"
                        )
                again = key in keys and any(keys[key] in outcome.resolves for outcome in outcomes)
                if again or (key not in keys and not any(page.matches(event) for page in allowed)):
                    unexpected.append(record)  # nobody expected it, or it paged again after resolving
                    console.print(f"  [red]unexpected page[/red]: {event.get('payload', {}).get('summary')}")
            elif action == "resolve" and key in keys:
                for outcome in outcomes:
                    page = keys[key]
                    first = page not in outcome.resolves
                    if first and page in outcome.triggers and outcome.triggers[page]["dedup_key"] == key:
                        outcome.resolves[page] = record
                        after = outcome.seconds_to_resolve(page) or 0
                        console.print(f"  [green]resolved[/green] {page} {after:.0f} s after the repair")
        for incident, outcome, stop in zip(incidents, outcomes, stops, strict=True):
            if not stop.is_set() and (
                len(outcome.triggers) == len(incident.pages)
                or outcome.error
                or time.monotonic() - started > page_timeout
            ):
                stop.set()  # paged (or given up on): repair it
                console.print(f"  undoing {incident.name}")
        done = [
            outcome.undone is not None
            and (
                len(outcome.resolves) == len(outcome.triggers)
                or time.time() - outcome.undone > resolve_timeout
            )
            for outcome in outcomes
        ]
        if all(done):
            return
        time.sleep(2)


# -- the commands -------------------------------------------------------------------------


Duration = Annotated[
    float, typer.Option(min=1, max=MAX_DURATION, help="Seconds to hold the incident before undoing it.")
]


def _cause(name: str, duration: float) -> None:
    incident, stop = INCIDENTS[name], threading.Event()
    console.print(f"[bold]{name}[/bold]: {incident.help} For {duration:.0f} s (Ctrl-C undoes it now).")
    console.print(f"  pages: {', '.join(map(str, incident.pages))}")
    timer = threading.Timer(duration, stop.set)
    timer.start()
    try:
        run_incident(incident, stop)
    except KeyboardInterrupt:
        stop.set()
    except (IncidentError, httpx.HTTPError, psycopg2.Error, pika.exceptions.AMQPError) as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(1) from None
    finally:
        timer.cancel()
    console.print(f"[bold]{name}[/bold] undone")


def _command(name: str) -> Callable[..., None]:
    def command(duration: Duration = 300.0) -> None:
        _cause(name, duration)

    command.__doc__ = INCIDENTS[name].help
    return command


for _name in INCIDENTS:
    app.command(_name)(_command(_name))


@app.command("list")
def list_incidents() -> None:
    """The incidents, the alerts each must page, and the drill wave it runs in."""
    table = Table("incident", "what happens", "pages", "may also page", "wave")
    for incident in INCIDENTS.values():
        table.add_row(
            incident.name, incident.help, "\n".join(map(str, incident.pages)),
            "\n".join(map(str, incident.may_page)), str(incident.wave),
        )  # fmt: skip
    Console().print(table)


@app.command()
def drill(
    names: Annotated[list[str] | None, typer.Argument(help="Only these incidents (default: all).")] = None,
    report: Annotated[
        Path | None, typer.Option("--json", help="Also write the outcomes to this file.")
    ] = None,
    settle: Annotated[float, typer.Option(help="Seconds to wait for the alerts to stop firing first.")] = 600,
) -> None:
    """Every incident, in waves: each must page through PagerDuty's Events API and resolve after."""
    unknown = [name for name in names or [] if name not in INCIDENTS]
    if unknown:
        console.print(f"[red]error:[/red] no incident named {', '.join(unknown)}; see `incident list`")
        raise typer.Exit(2)
    chosen = [INCIDENTS[name] for name in names] if names else list(INCIDENTS.values())
    outcomes, unexpected = [], []
    try:
        preflight()
    except (IncidentError, httpx.HTTPError) as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(1) from None
    for wave in sorted({incident.wave for incident in chosen}):
        members = [incident for incident in chosen if incident.wave == wave]
        console.print(f"[bold]wave {wave}[/bold]: {', '.join(incident.name for incident in members)}")
        try:
            earlier = tuple(INCIDENTS[outcome.incident] for outcome in outcomes)
            wave_outcomes, wave_unexpected = drill_wave(members, earlier, settle=settle)
        except (IncidentError, httpx.HTTPError) as error:
            console.print(f"[red]error:[/red] {error}")
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            console.print("[yellow]interrupted[/yellow]: every incident of the wave was undone")
            raise typer.Exit(130) from None
        outcomes += wave_outcomes
        unexpected += wave_unexpected
    table = Table("incident", "page", "paged after", "resolved after repair", title="drill")
    failed = bool(unexpected)
    for outcome in outcomes:
        for page in map(str, INCIDENTS[outcome.incident].pages):
            to_page, to_resolve = outcome.seconds_to_page(page), outcome.seconds_to_resolve(page)
            failed |= to_page is None or to_resolve is None or outcome.error is not None
            table.add_row(
                outcome.incident, page, f"{to_page:.0f} s" if to_page is not None else "[red]no page[/red]",
                f"{to_resolve:.0f} s" if to_resolve is not None else "[red]no resolve[/red]",
            )  # fmt: skip
        if outcome.error:
            console.print(f"[red]{outcome.incident} failed:[/red] {outcome.error}")
    Console().print(table)
    if unexpected:
        console.print(f"[red]{len(unexpected)} unexpected or refused page(s)[/red]")
    if report is not None:
        report.write_text(
            json.dumps({"outcomes": [asdict(o) for o in outcomes], "unexpected": unexpected}, indent=1)
        )
    raise typer.Exit(1 if failed else 0)


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` or a CI timeout undoes, as Ctrl-C does
    app()

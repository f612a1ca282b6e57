"""Place orders with a chosen mix of faults and write down which order got which.

    python -m examples.loadgen --orders 70 --each-fault 5 --out injected.json

Each order is preceded by a quote (POST /quotes, which the shop asks the MES for), as a
customer would ask the price first; a failed quote is counted, the order placed anyway.
Each fault is injected `--each-fault` times (or as `--faults crm_500=3,reject=2`), the rest
of the orders are healthy; the mix is shuffled with `--seed`. The output file maps every
order id to its fault ("none" for healthy ones): what the e2e tests and the demo compare
the forensics against.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from examples._shared import FAULTS

console = Console()
SKUS = ("widget", "gear", "frame")


def _mix(orders: int, each_fault: int, faults: str | None, seed: int) -> list[str]:
    if faults:
        counts = {}
        for part in faults.split(","):
            name, _, count = part.partition("=")
            if name not in FAULTS or not count.isdigit():
                raise typer.BadParameter(
                    f"--faults {part!r}: expected FAULT=COUNT, FAULT one of {', '.join(FAULTS)}"
                )
            counts[name] = int(count)
    else:
        counts = dict.fromkeys(FAULTS, each_fault)
    if sum(counts.values()) > orders:
        raise typer.BadParameter(
            f"--orders {orders} is fewer than the {sum(counts.values())} faulted orders asked for"
        )
    mix = [fault for fault, count in counts.items() for _ in range(count)]
    mix += ["none"] * (orders - len(mix))
    random.Random(seed).shuffle(mix)
    return mix


def main(
    orders: int = typer.Option(70, help="Orders to place."),
    each_fault: int = typer.Option(5, help="How many orders get each fault."),
    faults: str = typer.Option(None, help="Or an explicit mix: FAULT=COUNT,... (overrides --each-fault)."),
    shop: str = typer.Option("http://127.0.0.1:8001", envvar="SHOP_URL", help="The shop API."),
    concurrency: int = typer.Option(4, help="Orders in flight at once."),
    seed: int = typer.Option(1, help="Shuffle seed, for a repeatable mix."),
    out: str = typer.Option("injected.json", help="Where to write order id -> fault."),
) -> None:
    mix = _mix(orders, each_fault, faults, seed)
    injected: dict[str, str] = {}
    errors: Counter[str] = Counter()
    quotes_failed: Counter[str] = Counter()
    rng = random.Random(seed)
    started = time.monotonic()
    with httpx.Client(base_url=shop, timeout=10) as client, Progress(console=console) as progress:
        task = progress.add_task("placing orders", total=len(mix))

        def place(fault: str) -> None:
            body = {
                "customer_id": f"cust-{rng.randrange(1, 40)}",
                "items": [{"sku": rng.choice(SKUS), "quantity": rng.randrange(1, 5)}],
                "fault": None if fault == "none" else fault,
            }
            try:
                quote = {"customer_id": body["customer_id"], "items": body["items"]}
                client.post("/quotes", json=quote).raise_for_status()
            except httpx.HTTPError as error:
                quotes_failed[type(error).__name__] += 1
            try:
                response = client.post("/orders", json=body)
                response.raise_for_status()
                injected[response.json()["id"]] = fault
            except httpx.HTTPError as error:
                errors[type(error).__name__] += 1
            progress.advance(task)

        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(place, mix))
    elapsed = time.monotonic() - started
    Path(out).write_text(json.dumps(injected, indent=2) + "\n")
    table = Table("fault", "orders placed", title=f"{len(injected)} orders in {elapsed:.1f} s -> {out}")
    for fault, count in sorted(Counter(injected.values()).items()):
        table.add_row(fault, str(count))
    console.print(table)
    if quotes_failed:
        console.print(f"[yellow]{sum(quotes_failed.values())} quotes failed:[/yellow] {dict(quotes_failed)}")
    if errors:
        console.print(f"[red]{sum(errors.values())} orders not placed:[/red] {dict(errors)}")
        raise typer.Exit(1)


if __name__ == "__main__":
    typer.run(main)

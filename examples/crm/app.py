"""The CRM API: registers each customer's orders (kept in memory: the CRM's own store is not ours).

uvicorn examples.crm.app:app --port 8002
"""

from __future__ import annotations

import otel_kit

otel_kit.init("crm")

import threading  # noqa: E402 - libraries after init, so that they are traced
import time  # noqa: E402

from fastapi import FastAPI, HTTPException  # noqa: E402
from opentelemetry import trace  # noqa: E402
from pydantic import BaseModel  # noqa: E402

from examples import _ops  # noqa: E402

app = FastAPI(title="crm")
app.include_router(_ops.router)
_orders: dict[str, list[dict]] = {}
_lock = threading.Lock()


class Registration(BaseModel):
    order_id: str
    price: float
    fault: str | None = None


@app.get("/health")
def health() -> dict:
    return {"service": "crm"}


@app.post("/customers/{customer_id}/orders", status_code=201)
def register_order(customer_id: str, registration: Registration) -> dict:
    trace.get_current_span().set_attribute("enduser.id", customer_id)  # RPS per user
    if registration.fault == "crm_500":
        raise HTTPException(500, "CRM database unavailable")
    if registration.fault == "crm_slow":
        time.sleep(3)  # slower than MES waits (CRM_TIMEOUT, 1 s)
    with _lock:
        _orders.setdefault(customer_id, []).append(registration.model_dump(exclude={"fault"}))
    return {"customer_id": customer_id, "order_id": registration.order_id}


@app.get("/customers/{customer_id}/orders")
def customer_orders(customer_id: str) -> list[dict]:
    with _lock:
        return list(_orders.get(customer_id, []))

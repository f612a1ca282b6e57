"""A FastAPI app that calls init at import: under `uvicorn --workers N` each worker runs it."""

import os

import otel_kit

kit = otel_kit.init("shop")

from fastapi import FastAPI  # noqa: E402

app = FastAPI()


@app.get("/whoami")
def whoami() -> dict:
    return {
        "pid": os.getpid(),
        "instance": kit.providers.tracer_provider.resource.attributes["service.instance.id"],
    }

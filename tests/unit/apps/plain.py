"""A FastAPI app with no telemetry code at all: for `opentelemetry-instrument`."""

from fastapi import FastAPI

app = FastAPI()


@app.get("/hello")
def hello() -> dict:
    return {"hello": "world"}

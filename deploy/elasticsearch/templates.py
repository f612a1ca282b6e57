"""Install otel-kit's index template for log data streams into Elasticsearch (idempotent).

Run before the collector writes its first record: a data stream takes its mappings and
settings from the template that matches when it is created. The local stack runs it once
Elasticsearch is ready; compose runs it as a one-shot service. ELASTICSEARCH_URL (default
http://127.0.0.1:9200) says where.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import httpx

TEMPLATE_NAME = "otel-kit-logs"
TEMPLATE = Path(__file__).with_name("index-template.json")


def install(url: str) -> None:
    """PUT the template; raise RuntimeError naming Elasticsearch's answer if it is refused."""
    body = json.loads(TEMPLATE.read_text())
    response = httpx.put(f"{url}/_index_template/{TEMPLATE_NAME}", json=body, timeout=30)
    if response.status_code != 200:
        raise RuntimeError(
            f"{url} refused index template {TEMPLATE_NAME}: {response.status_code} {response.text}"
        )


if __name__ == "__main__":
    target = os.environ.get("ELASTICSEARCH_URL", "http://127.0.0.1:9200").rstrip("/")
    try:
        install(target)
    except (httpx.HTTPError, RuntimeError) as error:
        sys.exit(f"error: {error}")
    print(f"index template {TEMPLATE_NAME} installed in {target}")

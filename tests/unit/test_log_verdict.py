"""The order's log records in the verdict, and the search `otel-kit logs` sends Elasticsearch."""

from __future__ import annotations

from datetime import UTC, datetime

from otel_kit.cli.log_store import LogLine, LogQuery
from otel_kit.cli.verdict import verdict
from tests.unit.test_verdict import DONE, span, trace_of

PUBLISHED = span("p1", "shop", "orders send", None, span_kind="producer")
REJECTED = span("c1", "mes", "orders receive", "p1", span_kind="consumer", error=True)


def line(service: str, severity: str, number: int, message: str) -> LogLine:
    return LogLine("2026-12-03T12:00:00Z", service, severity, message, number, "t1", "s1", "ord-1")


def test_a_failed_order_quotes_the_error_its_stopping_service_logged() -> None:
    logs = [
        line("shop", "ERROR", 17, "order ord-1: could not reach the MES for a quote"),
        line("mes", "WARN", 13, "order ord-1 took long"),
        line("mes", "ERROR", 17, "order ord-1 rejected: failed validation"),
    ]
    found = verdict("ord-1", trace_of(PUBLISHED, REJECTED), DONE, logs=logs)
    assert (found.outcome, found.service) == ("failed", "mes")
    assert found.reason.endswith("; mes logged: order ord-1 rejected: failed validation")
    assert found.logged_cause == logs[2]
    assert found.logs == logs
    assert found.summary().endswith("mes logged: order ord-1 rejected: failed validation")


def test_another_service_s_error_is_quoted_when_the_stopping_one_logged_none() -> None:
    logs = [line("shop", "ERROR", 17, "order ord-1: no status after 5 minutes")]
    found = verdict("ord-1", trace_of(PUBLISHED, REJECTED), DONE, logs=logs)
    assert found.reason.endswith("; shop logged: order ord-1: no status after 5 minutes")


def test_warnings_are_shown_but_not_quoted_and_a_completed_order_quotes_nothing() -> None:
    warning = [line("mes", "WARN", 13, "order ord-1 took long")]
    found = verdict("ord-1", trace_of(PUBLISHED, REJECTED), DONE, logs=warning)
    assert "logged" not in found.reason
    assert found.logs == warning
    completed = verdict("ord-1", trace_of(span("d1", "shop", "orders receive", None)), DONE, logs=warning)
    assert (completed.outcome, completed.reason, completed.logged_cause) == ("completed", None, None)


def test_a_message_the_reason_already_holds_is_not_repeated() -> None:
    already = verdict("ord-1", trace_of(PUBLISHED, REJECTED), DONE).reason
    found = verdict("ord-1", trace_of(PUBLISHED, REJECTED), DONE, logs=[line("mes", "ERROR", 17, already)])
    assert found.reason == already


def test_the_search_for_an_order_takes_its_id_or_its_traces() -> None:
    body = LogQuery(
        order_id="ord-1", trace_ids=("t1",), order_or_traces=True, min_severity="warn"
    ).to_elasticsearch()
    [either, severity] = body["query"]["bool"]["filter"]
    assert either == {
        "bool": {
            "should": [{"term": {"attributes.order.id": "ord-1"}}, {"terms": {"trace_id": ["t1"]}}],
            "minimum_should_match": 1,
        }
    }
    assert severity == {"range": {"severity_number": {"gte": 13}}}


def test_every_criterion_of_otel_kit_logs_is_a_filter_and_text_matches_all_words() -> None:
    since, until = datetime(2026, 12, 3, 12, tzinfo=UTC), datetime(2026, 12, 3, 13, tzinfo=UTC)
    body = LogQuery(
        order_id="ord-1",
        trace_ids=("t1",),
        services=("mes", "crm"),
        text="refused connection",
        since=since,
        until=until,
        limit=5,
    ).to_elasticsearch()
    filters = body["query"]["bool"]["filter"]
    assert {"term": {"attributes.order.id": "ord-1"}} in filters
    assert {"terms": {"trace_id": ["t1"]}} in filters
    assert {"terms": {"resource.attributes.service.name": ["mes", "crm"]}} in filters
    assert {
        "range": {"@timestamp": {"gte": "2026-12-03T12:00:00+00:00", "lte": "2026-12-03T13:00:00+00:00"}}
    } in filters
    assert body["query"]["bool"]["must"] == [
        {"match": {"body.text": {"query": "refused connection", "operator": "and"}}}
    ]
    assert body["size"] == 5

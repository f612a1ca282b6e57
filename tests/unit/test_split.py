"""Log records go in OTLP requests a receiver takes: a batch split, a record too big alone cut."""

from __future__ import annotations

import pytest
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.sdk._logs import LoggerProvider, LogRecordDroppedAttributesWarning, LogRecordLimits
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

from otel_kit._export import split


def _records(bodies: list[str], **attributes) -> list:
    memory = InMemoryLogRecordExporter()
    provider = LoggerProvider(log_record_limits=LogRecordLimits(max_attributes=3))
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    logger = provider.get_logger("shop")
    for body in bodies:
        logger.emit(body=body, attributes=attributes)
    return list(memory.get_finished_logs())


def _sent(requests: list) -> list:
    sent = []
    for request, count in requests:
        found = [r for rl in request.resource_logs for sl in rl.scope_logs for r in sl.log_records]
        assert len(found) == count
        sent += found
    return sent


def test_a_log_batch_over_the_request_limit_is_sent_in_requests_under_it_with_every_record():
    records = _records([f"{i} failed: " + "t" * 1000 for i in range(40)])
    limit = 10_000

    requests = split._log_requests(records, limit)

    assert len(requests) > 1
    assert all(request.ByteSize() <= limit for request, _count in requests)
    stock = encode_logs(records).resource_logs[0].scope_logs[0].log_records
    assert _sent(requests) == list(stock)  # every record, in order, unchanged


def test_a_log_record_too_big_alone_is_sent_with_its_long_strings_cut(export_warnings):
    with pytest.warns(LogRecordDroppedAttributesWarning):  # one attribute over the limit of 3
        records = _records(["b" * 9000], **{"n": 1, "x": 2, "exception.stacktrace": "s" * 9000, "y": 3})
    limit = 8_000

    requests = split._log_requests(records, limit)

    [(request, count)] = requests
    assert (request.ByteSize() <= limit, count) == (True, 1)
    [sent] = _sent([(ExportLogsServiceRequest.FromString(request.SerializeToString()), 1)])
    cut = len(sent.body.string_value)
    assert 0 < cut < 9000
    assert sent.body.string_value == "b" * cut
    assert {kv.key: kv.value.string_value for kv in sent.attributes}["exception.stacktrace"] == "s" * cut
    assert sent.dropped_attributes_count == 1  # four attributes, three kept (n dropped), as the record had it
    assert f"A log record ('{'b' * 100}') of " in export_warnings.text
    assert f"strings cut to {cut} characters" in export_warnings.text

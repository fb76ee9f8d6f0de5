"""JSON logging: one object per line, with the request id, and secrets redacted."""

from __future__ import annotations

import json
import logging
import sys

import pytest
from bookstore_common.context import request_id_var
from bookstore_common.logs import JsonFormatter


def render(record: logging.LogRecord) -> dict[str, object]:
    """Format a record and parse it back."""
    line = JsonFormatter().format(record)
    assert "\n" not in line
    parsed: dict[str, object] = json.loads(line)
    return parsed


def make_record(message: str, **extra: object) -> logging.LogRecord:
    """A log record as `logger.info(message, extra=extra)` would create."""
    record = logging.LogRecord("test", logging.INFO, __file__, 1, message, (), None)
    record.__dict__.update(extra)
    return record


def test_log_line_carries_the_current_request_id() -> None:
    token = request_id_var.set("req-42")
    try:
        event = render(make_record("hello", route="/books"))
    finally:
        request_id_var.reset(token)
    assert event["request_id"] == "req-42"
    assert event["message"] == "hello"
    assert event["route"] == "/books"
    assert event["level"] == "info"


def test_log_line_outside_a_request_has_null_request_id() -> None:
    assert render(make_record("startup"))["request_id"] is None


@pytest.mark.parametrize("key", ["password", "api_key", "DATABASE_PASSWORD", "token"])
def test_secret_looking_fields_are_redacted(key: str) -> None:
    event = render(make_record("connecting", **{key: "hunter2"}))
    assert event[key] == "[redacted]"
    assert "hunter2" not in json.dumps(event)


def test_exceptions_are_kept_on_one_line() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "failed", (), None)
        record.exc_info = sys.exc_info()
    event = render(record)
    assert "RuntimeError: boom" in str(event["exception"])

"""`core.logs`: which caller request ids are kept, the JSON line's fields, the text
format's request id, and context that nests and follows work into a thread pool."""

from __future__ import annotations

import json
import logging
import re
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from core.config import Settings
from core.logs import (
    JsonFormatter,
    TextFormatter,
    accept_request_id,
    bind,
    current_request_id,
    run_bound,
)

pytestmark = pytest.mark.unit


def record(message: str = "stored %s", *args: object, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("api.routes", logging.WARNING, __file__, 1, message, args, None)
    rec.__dict__.update(extra)
    return rec


@pytest.mark.parametrize(
    "value", ["4bf92f3577b34da6a3ce929d0e0e4736", "req-1", "a.b:c_d-9", "x" * 128]
)
def test_safe_request_ids_are_kept(value):
    assert accept_request_id(value) == value


@pytest.mark.parametrize("value", [None, "", "two words", "line\nbreak", "x" * 129, "é", "a/b"])
def test_unsafe_or_missing_request_ids_are_replaced(value):
    assert re.fullmatch(r"[0-9a-f]{32}", accept_request_id(value))


def test_json_line_has_utc_timestamp_level_logger_message_context_and_extra():
    with bind(request_id="req-1", job_id=None):
        line = json.loads(JsonFormatter().format(record("stored %s", "a.pdf", status=202)))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line.pop("timestamp"))
    assert line == {
        "level": "warning",
        "logger": "api.routes",
        "message": "stored a.pdf",
        "request_id": "req-1",
        "status": 202,
    }


def test_json_line_carries_the_traceback():
    try:
        raise ValueError("bad row")
    except ValueError:
        rec = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, None)
        rec.exc_info = sys.exc_info()
    line = json.loads(JsonFormatter().format(rec))
    assert line["exception"].startswith("Traceback (most recent call last)")
    assert line["exception"].endswith("ValueError: bad row")
    assert "\n" not in JsonFormatter().format(rec)  # one line, however long the traceback


def test_text_format_shows_the_request_id():
    with bind(request_id="req-9"):
        text = TextFormatter().format(record("hello"))
    assert text.endswith("WARNING [req-9] api.routes: hello")
    assert TextFormatter().format(record("hello")).endswith("WARNING api.routes: hello")


def test_bind_nests_and_resets_and_run_bound_crosses_threads():
    assert current_request_id() is None
    with bind(request_id="outer"):
        with bind(request_id="inner"):
            assert current_request_id() == "inner"
        assert current_request_id() == "outer"
        with ThreadPoolExecutor(1) as pool:
            assert pool.submit(current_request_id).result() is None  # not carried over
            bound = pool.submit(run_bound, {"request_id": "job"}, current_request_id)
            assert bound.result() == "job"
    assert current_request_id() is None


def test_log_format_defaults_to_json_in_production_only():
    def style(**values: object) -> str:
        return Settings(_env_file=None, **values).log_style

    assert style(environment="development") == "text"
    assert style(environment="production", admin_key="a-real-secret") == "json"
    assert style(environment="development", log_format="json") == "json"
    assert style(environment="production", admin_key="a-real-secret", log_format="text") == "text"

"""schemathesis hooks of tests/e2e/test_schemathesis.py (loaded by the `st` process through
SCHEMATHESIS_HOOKS).

The test server has no OpenAI-compatible endpoint, and its local LLM takes about two
minutes per answer on a CPU, so a request naming the `local` or `openai` generator (in
an answer, a chat completion, a KB's answer settings or an A/B arm) is sent with
`extractive` instead: the same schema and the same routes, answered in milliseconds.
Both are valid values, so a schema-valid request stays valid and an invalid one
invalid.
"""

from __future__ import annotations

from typing import Any

import schemathesis

SLOW_GENERATORS = frozenset({"local", "openai"})


def _slow(value: Any) -> bool:
    return isinstance(value, str) and value in SLOW_GENERATORS


def _fast(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: "extractive" if k == "generator" and _slow(v) else _fast(v) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_fast(v) for v in value]
    return value


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    if isinstance(case.body, dict | list):
        case.body = _fast(case.body)

"""Size limits applied at the edge, before any work (README, "Limits"), and the helpers
that read a JSON body within them for routes that parse their own body (the façades).

- `MAX_QUERY_CHARS`: a question, in characters, on every query route (/retrieve,
  /answer, Dify's /retrieval, the OpenAI façade's last user message).
- `MAX_JSON_BODY_BYTES`: a JSON body a route parses itself; a larger Content-Length is
  refused before reading, a body without one is read up to the cap, never further.
- `MAX_JSON_DEPTH`: nesting of arrays and objects, checked by a linear scan before
  parsing (Python's parser would otherwise recurse until RecursionError).

Example::

    raw = await read_body(request, limit=MAX_JSON_BODY_BYTES)   # TooLarge → 413
    data = await run_in_threadpool(load_json, raw)             # InvalidInput → 4xx
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.requests import Request

from core.errors import InvalidInput, TooLarge

MAX_QUERY_CHARS = 8000
# Every integer from a request is bounded by it at the edge (422), never an overflow deep
# inside (500): within what a catalog column holds (SQLite and PostgreSQL BIGINT, 2**63 - 1)
# and exact as a JSON number read as a double (JavaScript's Number.MAX_SAFE_INTEGER), so
# clients and the OpenAPI document agree on the bound.
MAX_DB_INT = 2**53 - 1
MAX_JSON_BODY_BYTES = 1 << 20
MAX_JSON_DEPTH = 64

# A JSON string, escapes included (unrolled so it never backtracks), and what is left
# once strings are gone: only brackets nest.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def _mib(n: int) -> str:
    return f"{n / (1 << 20):g} MiB ({n} bytes)"


async def read_body(request: Request, *, limit: int = MAX_JSON_BODY_BYTES) -> bytes:
    """The request body, at most `limit` bytes; TooLarge (413) as soon as it is known to
    be longer (from Content-Length, else once `limit` bytes have arrived)."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and (len(declared) > 18 or int(declared) > limit):
        raise TooLarge(f"request body is larger than {_mib(limit)}; send a smaller request")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise TooLarge(f"request body is larger than {_mib(limit)}; send a smaller request")
    return bytes(body)


def json_depth_exceeds(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether arrays/objects in `text` nest deeper than `limit` (exact for valid JSON;
    for invalid JSON at worst a refusal the parser would have made anyway)."""
    depth = 0
    for bracket in _NOT_BRACKET.sub("", _STRING.sub("", text)):
        if bracket in "[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def load_json(raw: bytes, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """`raw` (UTF-8 JSON) parsed; InvalidInput for bad encoding, bad JSON or nesting
    deeper than `max_depth`. CPU-bound on large bodies: call it in a worker thread."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"request body is not UTF-8: {exc.reason} at byte {exc.start}") from exc
    if json_depth_exceeds(text, max_depth):
        raise InvalidInput(f"request body nests arrays/objects deeper than {max_depth} levels")
    try:
        return json.loads(text)
    except RecursionError as exc:  # unreachable after the scan; never a 500 all the same
        raise InvalidInput(f"request body nests deeper than {max_depth} levels") from exc
    except ValueError as exc:  # JSONDecodeError, or an integer of > 4,300 digits
        raise InvalidInput(f"request body is not valid JSON: {exc}") from exc

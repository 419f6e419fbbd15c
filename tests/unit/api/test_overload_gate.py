"""The pieces of `api.overload` on their own: route classes, the concurrency gate's line
(first come, first served, bounded, timed) and who a request is counted against."""

import asyncio

import pytest

from api.overload import Gate, caller_key, classify, policies
from core.config import Settings

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("POST", "/v1/kbs/docs/retrieve", "retrieve"),
        ("POST", "/v1/retrieve", "retrieve"),
        ("POST", "/retrieval", "retrieve"),
        ("POST", "/v1/kbs/docs/answer", "answer"),
        ("POST", "/v1/chat/completions", "answer"),
        ("POST", "/v1/kbs/docs/documents", "upload"),
        ("GET", "/v1/kbs/docs/documents", "admin"),
        ("GET", "/v1/kbs/docs/retrieve", "admin"),
        ("DELETE", "/v1/kbs/docs", "admin"),
        # the web console's bridge counts in the class of the /v1 route it reaches
        ("POST", "/console/api/kbs/docs/retrieve", "retrieve"),
        ("POST", "/console/api/kbs/docs/answer", "answer"),
        ("POST", "/console/api/kbs/docs/documents", "upload"),
        ("GET", "/console/kbs/docs", "admin"),
        ("GET", "/healthz", None),
        ("GET", "/readyz", None),
        ("GET", "/metrics", None),
        ("GET", "/openapi.json", None),
    ],
)
def test_every_request_has_a_route_class(method, path, expected):
    assert classify(method, path) == expected


def test_policies_follow_the_settings():
    s = Settings(
        _env_file=None,
        concurrency_retrieve=3,
        rate_limit_answer="",
        rate_limit_upload="2/second;10/minute",
        timeout_admin_seconds=0,
    )
    p = policies(s)
    assert (p["retrieve"].concurrency, p["retrieve"].queue) == (3, 3)
    assert p["answer"].rates == ()
    assert [str(r) for r in p["upload"].rates] == ["2 per 1 second", "10 per 1 minute"]
    assert p["admin"].timeout_s == 0


def test_a_bad_rate_limit_setting_names_the_fix():
    with pytest.raises(ValueError, match="100/second"):
        Settings(_env_file=None, rate_limit_retrieve="lots")


def test_the_gate_admits_queues_in_order_and_refuses_past_its_line():
    async def scenario() -> list:
        gate = Gate("t", limit=1, queue=2, wait_s=5)
        order: list[str] = []
        assert await gate.acquire()  # holder

        async def wait(name: str) -> None:
            if await gate.acquire():
                order.append(name)
                await asyncio.sleep(0.01)
                gate.release()

        waiters = [asyncio.create_task(wait(n)) for n in ("first", "second")]
        await asyncio.sleep(0.01)
        refused = await gate.acquire()  # the line (2) is full: no wait at all
        gate.release()  # the holder ends: its place goes to "first", then "second"
        await asyncio.gather(*waiters)
        return [refused, order, gate.active]

    refused, order, active = asyncio.run(scenario())
    assert refused is False
    assert order == ["first", "second"]
    assert active == 0


def test_a_waiter_gives_up_after_its_wait_and_leaves_the_line():
    async def scenario() -> tuple[bool, int, int]:
        gate = Gate("t", limit=1, queue=1, wait_s=0.05)
        assert await gate.acquire()
        got = await gate.acquire()
        lined = len(gate._waiters)
        gate.release()
        return got, lined, gate.active

    got, lined, active = asyncio.run(scenario())
    assert (got, lined, active) == (False, 0, 0)


def test_callers_are_counted_by_key_else_by_address():
    def scope(auth: str | None, host: str = "10.0.0.7") -> dict:
        headers = [(b"authorization", auth.encode())] if auth else []
        return {"type": "http", "headers": headers, "client": (host, 5555)}

    a, b = caller_key(scope("Bearer key-a")), caller_key(scope("Bearer key-b"))
    assert a != b and a.startswith("key:") and "key-a" not in a
    assert caller_key(scope("Bearer key-a", host="10.0.0.8")) == a
    assert caller_key(scope(None)) == "addr:10.0.0.7"

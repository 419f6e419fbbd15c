"""The /retrieve HTTP benchmark's derived figures: ratios to its same-run baselines and
the server's memory."""

from __future__ import annotations

import os

from tests.bench.bench_retrieve_http import _memory_gb, _ratios


def test_ratios_to_hello_world_llama_index_and_the_query_encode() -> None:
    row = {"latency_1_client": {"p50_ms": 30.0}, "load": {"requests_per_s": 50.0}}
    out = _ratios(row, 5000.0, {"p50_ms": 60.0}, {"p50_ms": 24.0})
    assert out == {
        "rps_vs_hello_world": 0.01,
        "p50_vs_llama_index": 0.5,
        "p50_vs_query_encode": 1.25,
        "p50_beyond_query_encode_ms": 6.0,
    }
    assert _ratios(row, 5000.0, None, None) == {"rps_vs_hello_world": 0.01}


def test_memory_of_a_live_process_and_of_none() -> None:
    mine = _memory_gb(os.getpid())
    assert 0 < mine["rss_gb"] <= mine["peak_rss_gb"]
    assert _memory_gb(2**22 + 12345) == {}  # no such pid: nothing, not an error

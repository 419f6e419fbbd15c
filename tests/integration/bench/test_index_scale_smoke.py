"""`ragops bench index --scale` at a tiny size: every engine runs on real embeddings (the
packaged all-MiniLM-L6-v2) and the report holds sane figures (exact search recalls
everything, ratios are against the same run's FAISS flat). The real figures come from
`python tests/bench/bench_index_scale.py --scale 100k` (docs/benchmarks.md)."""

import json
from pathlib import Path

import numpy as np
import pytest

from api.bench import index_scale
from api.bench.scale_corpus import man_text, split_chunks

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    # 300 real chunks and one perturbed copy of each: both halves of the data set
    return index_scale.run(
        600,
        queries=20,
        real=300,
        writes=3,
        local_queries=10,
        engine_timeout=600,
        ef_search=(16, 64),
        work_root=tmp_path_factory.mktemp("bench"),
    )


def test_every_engine_and_mode_is_measured(report: dict) -> None:
    assert report["n"] == 600 and report["scale"] == "600"
    assert report["data"]["real"] == 300 and report["data"]["copies"] == 2
    assert report["not_run"] == {}
    assert list(report["engines"]) == list(index_scale.ENGINES)
    for engine, result in report["engines"].items():
        assert "error" not in result, (engine, result.get("error"))
        assert set(result["modes"]) == set(index_scale.MODES)
        assert result["build_s"] > 0 and result["disk_mb"] > 0
        assert result["write"]["documents"] == 3 and result["write"]["p50_ms"] > 0
        for figures in result["modes"].values():
            assert 0 < figures["p50_ms"] <= figures["p99_ms"]
            assert 0.0 <= figures["recall_at_10"] <= 1.0
    assert report["engines"]["qdrant-client local"]["queries"] == 10
    assert report["engines"]["faiss flat"]["bm25_build_s"] >= 0
    for edge in ("qdrant edge", "qdrant edge +hnsw"):
        rebuild = report["engines"][edge]["rebuild"]
        assert rebuild["rebuild_s"] > rebuild["shard_copy_s"] > 0 and rebuild["shard_mb"] > 0


def test_exact_search_recalls_everything_and_ratios_use_this_runs_flat(report: dict) -> None:
    flat = report["engines"]["faiss flat"]
    for figures in flat["modes"].values():
        assert figures["recall_at_10"] == 1.0
        assert figures["p50_x_flat"] == 1.0 and figures["p99_x_flat"] == 1.0
    assert flat["build_s_x_flat"] == 1.0 and flat["write"]["p50_x_flat"] == 1.0
    # under APPROX_MIN_ROWS rows a FAISS segment is exact whatever its type
    assert report["engines"]["faiss hnsw"]["modes"]["dense"]["recall_at_10"] == 1.0
    sweep = report["engines"]["faiss hnsw"]["ef_sweep"]
    assert list(sweep) == ["16", "64"]
    assert all(f["recall_at_10"] == 1.0 and f["p50_ms"] > 0 for f in sweep.values())
    for engine, result in report["engines"].items():
        for mode, figures in result["modes"].items():
            expected = round(figures["p50_ms"] / flat["modes"][mode]["p50_ms"], 2)
            assert figures["p50_x_flat"] == pytest.approx(expected, abs=0.011), (engine, mode)
        expected = round(result["build_s"] / flat["build_s"], 2)
        assert result["build_s_x_flat"] == pytest.approx(expected, abs=0.011)
    # plain Edge searches exactly: its dense answers are flat's, its hybrid ones are the
    # reference of the Qdrant engines' hybrid recall (so its own is 1.0)
    edge = report["engines"]["qdrant edge"]["modes"]
    assert edge["dense"]["recall_at_10"] >= 0.95 and edge["dense, 1 doc"]["recall_at_10"] >= 0.95
    assert edge["hybrid"]["recall_at_10"] == 1.0 == edge["hybrid, 1 doc"]["recall_at_10"]
    for engine in ("qdrant edge", "qdrant edge +hnsw", "qdrant-client local"):
        overlap = report["engines"][engine]["modes"]["hybrid"]["overlap_with_faiss_hybrid"]
        assert 0.0 <= overlap <= 1.0


def test_report_is_written_as_json_and_a_markdown_table(report: dict, tmp_path: Path) -> None:
    target = tmp_path / "index_scale_600.json"
    index_scale.write(report, target)
    assert json.loads(target.read_text())["engines"]["faiss flat"]["modes"]["dense"]
    table = target.with_suffix(".md").read_text()
    for engine in index_scale.ENGINES:
        assert f"| {engine} |" in table
    assert "(1.0x)" in table
    assert "| ef_search 16 |" in table and "| ef_search 64 |" in table


def test_scale_names() -> None:
    assert index_scale.parse_scale("100k") == 100_000
    assert index_scale.parse_scale("1m") == 1_000_000
    assert index_scale.parse_scale("2000") == 2000
    with pytest.raises(ValueError, match="is not 100k, 1m or a count"):
        index_scale.parse_scale("lots")


def test_manual_pages_read_as_text_and_pack_into_chunks() -> None:
    page = (
        '.\\" comment\n.de XX\n.ds a b\n..\n.TH LS 1\n.SH NAME\nls \\- list directory contents\n'
        ".SH DESCRIPTION\n.B ls\nlists \\fIfiles\\fR. It sorts them.\n.PP\nSecond paragraph.\n"
    )
    assert man_text(page) == [
        "NAME ls - list directory contents",
        "DESCRIPTION ls lists files. It sorts them.",
        "Second paragraph.",
    ]
    chunks = split_chunks(["word " * 200, "A short one. " * 3], limit=120)
    assert all(len(c) <= 120 for c in chunks) and len(chunks) >= 8
    assert np.all([len(c) >= 40 for c in chunks])

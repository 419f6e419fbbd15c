"""The OpenAPI document is the contract: schemathesis drives the real server (`ragops
serve` in a subprocess) from its own `/openapi.json`, with every check (server errors,
status codes, content types, response schemas and headers, negative and positive data,
auth, 405 and `Allow`, stateful links), a fixed seed and bounded examples. It must find
nothing: 0 server errors, 0 schema violations. Its seed and summary are printed (run
with -rA or -s to see them on a pass).

Settings and the routes left out (with the reasons) are in tests/e2e/schemathesis.toml;
tests/e2e/schemathesis_hooks.py keeps the slow generators out. The test first seeds a
small world (a KB with two indexed documents, a prompt, a test set, an eval run, a
schedule, an A/B test, an answer with feedback) and points the generated path and body
parameters at it most of the time, so operations reach their real work instead of 404.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_server import KEY, ROOT, Server
from tests.utils.api import wait_eval_run, wait_for_documents
from tests.utils.corpus import make_md

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

HERE = Path(__file__).resolve().parent
CONFIG = HERE / "schemathesis.toml"
HOOKS = HERE / "schemathesis_hooks.py"
NAME = "smoke"  # every seeded named thing: prompt, test set, schedule, A/B test
QUESTION = "How do honey bees tell each other where the flowers are?"
# The share of generated values replaced by a seeded one.
SEEDED = 0.8
# Redaction off: Presidio's models would double the start-up. Rate limits far above what
# one schemathesis worker sends: the contract is under test here, not the limits
# (tests/integration/api/ test those).
SERVER_ENV = {
    "RAGOPS_REDACTION_ENABLED": "false",
    **{f"RAGOPS_RATE_LIMIT_{c}": "10000/second" for c in ("RETRIEVE", "ANSWER", "UPLOAD", "ADMIN")},
}


def seed_world(
    client: httpx.Client,
) -> tuple[dict[str, list[str | int]], dict[str, dict[str, str]]]:
    """Create what the generated requests should find: dictionary name → values, and the
    path parameters of the deleting operations (they get things of their own, so the
    rest of the run still finds the others)."""

    def ok(r: httpx.Response) -> dict:
        assert r.status_code < 300, (r.request.method, r.request.url, r.status_code, r.text)
        return r.json()

    ok(client.post("/v1/kbs", json={"name": "docs"}))
    ok(client.post("/v1/kbs", json={"name": "scratch"}))
    bees = make_md(
        "Bees",
        [
            "Honey bees dance to tell other bees where the flowers are. The waggle dance "
            "encodes the direction and the distance of the food.",
            "A colony keeps its hive warm in winter by clustering around the queen.",
        ],
    )
    ferry = make_md("Harbour", ["The ferry to the island leaves at nine from the east quay."])
    files = [("files", ("bees.md", bees)), ("files", ("harbour.md", ferry))]
    item, spare = ok(client.post("/v1/kbs/docs/documents", files=files))["documents"]
    wait_for_documents(client, "docs", expected=2)
    ok(client.post("/v1/prompts", json={"name": NAME}))
    ok(
        client.post(
            "/v1/testsets",
            json={"name": NAME, "cases": [{"question": QUESTION, "reference_answer": "dance"}]},
        )
    )
    run = ok(client.post("/v1/evals", json={"testset": NAME, "kb": "docs", "metrics": ["mrr"]}))
    for schedule in (NAME, "scratch"):
        body = {"name": schedule, "kind": "on_ready", "testset": NAME}
        ok(client.post("/v1/schedules", json=body))
    model = {"kind": "embedding", "name": "scratch", "source_type": "hub_id", "source": "o/m"}
    ok(client.post("/v1/models/registry", json=model))
    answer = ok(client.post("/v1/kbs/docs/answer", json={"query": QUESTION}))
    ok(client.post(f"/v1/answers/{answer['id']}/feedback", json={"rating": 1}))
    arms = [{"name": "a", "weight": 1}, {"name": "b", "weight": 1, "prompt": NAME}]
    ok(client.post("/v1/kbs/docs/ab-tests", json={"name": NAME, "arms": arms}))
    wait_eval_run(client, run["id"])
    deleting = {
        "DELETE /v1/kbs/{kb}": {"path.kb": "scratch"},
        "DELETE /v1/kbs/{kb}/documents/{doc_id}": {"path.doc_id": spare["document_id"]},
        "DELETE /v1/schedules/{name}": {"path.name": "scratch"},
        "DELETE /v1/models/registry/{kind}/{name}": {"path.name": "scratch"},
    }
    return {
        "kb": ["docs"],
        "name": [NAME, "all-MiniLM-L6-v2"],
        "kind": ["embedding"],
        "number": [1],
        "model": ["docs", "docs@1"],
        "doc_id": [item["document_id"]],
        "job_id": [item["job_id"]],
        "answer_id": [answer["id"]],
        "run_id": [run["id"]],
    }, deleting


def _toml(value: str | int) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)


def write_config(
    path: Path, seeded: dict[str, list[str | int]], deleting: dict[str, dict[str, str]]
) -> Path:
    """tests/e2e/schemathesis.toml plus the seeded values, as dictionaries bound to the
    path parameters of those names and to the body and query fields naming the same."""
    lines = [CONFIG.read_text(), ""]
    # Pinned to things of their own, so not to what a stateful step just created.
    for operation, parameters in deleting.items():
        values = ", ".join(f'"{k}" = "{v}"' for k, v in parameters.items())
        lines += [
            "[[operations]]",
            f'include-name = "{operation}"',
            f"parameters = {{ {values} }}",
            "checks.ensure_resource_availability.enabled = false",
            "",
        ]
    for name, values in seeded.items():
        lines += [f"[dictionaries.{name}]", f"values = [{', '.join(map(_toml, values))}]", ""]
    bindings = {f"path.{name}": name for name in seeded}
    bindings |= {
        "query.kb": "kb",
        "body.kb": "kb",
        "body.knowledge_id": "kb",
        "body.kbs[*]": "kb",
        "body.testset": "name",
        "body.model": "model",
    }
    lines.append("[parameters]")
    lines += [
        f'"{key}" = {{ dictionary = "{name}", probability = {SEEDED} }}'
        for key, name in bindings.items()
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def run_schemathesis(url: str, config: Path, report: Path) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(config),
        "run",
        f"{url}/openapi.json",
        "--header",
        f"Authorization: Bearer {KEY}",
        "--no-color",
        "--report",
        "junit",
        "--report-junit-path",
        str(report),
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS)}
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=420)


def summary(output: str) -> str:
    """The run's closing summary (from its "SUMMARY" line on), else its last lines."""
    lines = output.splitlines()
    start = next((i for i, line in enumerate(lines) if " SUMMARY " in line), len(lines) - 40)
    return "\n".join(lines[max(start, 0) :])


def test_schemathesis_finds_no_server_error_and_no_schema_violation(tmp_path):
    server = Server(tmp_path / "data", tmp_path / "server.log", **SERVER_ENV)
    try:
        server.wait_ready()
        t0 = time.monotonic()
        seeded, deleting = seed_world(server.client)
        seeded_s = time.monotonic() - t0
        config = write_config(tmp_path / "schemathesis.toml", seeded, deleting)
        t0 = time.monotonic()
        result = run_schemathesis(server.url, config, tmp_path / "schemathesis.xml")
        run_s = time.monotonic() - t0
    finally:
        server.stop()
    output = result.stdout + result.stderr
    seed = re.search(r"^Seed: (\d+)", output, re.MULTILINE)
    cases = re.search(r"^\s*(\d+) generated.*$", output, re.MULTILINE)
    print(
        f"\nschemathesis: {server.timings()}, seeded in {seeded_s:.1f}s, ran in {run_s:.1f}s; "
        f"seed {seed.group(1) if seed else '?'}; {cases.group(0).strip() if cases else ''}\n"
        + summary(output)
    )
    assert seed, output[-4000:]
    for code, what in (("ST101", "server errors"), ("ST108", "schema violations")):
        assert code not in output, f"schemathesis found {what}:\n{output[-12000:]}"
    assert result.returncode == 0, output[-12000:]

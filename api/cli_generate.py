"""`ragops testset generate`: a test set generated from a KB's documents by the LLM judge
(see `eval.generate`), registered on the `testset` group of `api.cli`."""

from __future__ import annotations

import time
from typing import Annotated

import typer


def register(testset_app: typer.Typer) -> None:
    @testset_app.command("generate")
    def testset_generate(
        kb: Annotated[str, typer.Option("--kb", help="Knowledge base to ask about")],
        name: Annotated[str, typer.Option("--name", help="Test set name (new version if exists)")],
        size: Annotated[int, typer.Option("--size", min=1, max=500, help="Cases to generate")],
        language: Annotated[
            list[str] | None,
            typer.Option("--language", help="ISO 639-1 code to ask in (repeatable)"),
        ] = None,
        wait: Annotated[
            bool, typer.Option("--wait/--no-wait", help="Run it here and print the result")
        ] = True,
    ) -> None:
        """Generate SIZE question/answer cases from the KB's live index version with the LLM
        judge (RAGOPS_JUDGE_BASE_URL + RAGOPS_JUDGE_MODEL, or RAGOPS_JUDGE=local).

        Example: ragops testset generate --kb docs --name generated --size 20
        """
        from api.cli import _fail, _kb_row, _runtime, console
        from core.errors import RagopsError
        from eval.generate import generated_testset, get_generation, submit_generation

        rt = _runtime(workers=False, warm_ingest=False)
        try:
            job = submit_generation(
                rt, kb=_kb_row(rt, kb), name=name, size=size, languages=language
            )
            if wait:
                # Run the job here unless a server's worker already claimed it; then poll.
                rt.workers.run_job(job.id, owner=f"cli:{job.id}")
                while (job := get_generation(rt, job.id)).status not in ("succeeded", "failed"):
                    time.sleep(0.5)
            made = generated_testset(rt, job.id) if job.status == "succeeded" else None
        except RagopsError as exc:
            _fail(exc)
        finally:
            rt.close()
        if not wait:
            console.print(
                f"queued test set generation {job.id}; see GET /v1/testsets/generate/{job.id}"
            )
        elif job.status == "failed" or made is None:
            _fail(RuntimeError(f"test set generation {job.id} failed: {job.error}"))
        else:
            console.print(job.message)
            console.print(f"see GET /v1/testsets/{made.name}/{made.version}", style="dim")

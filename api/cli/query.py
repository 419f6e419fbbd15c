"""`ragops query` (search a knowledge base) and `ragops ask` (answer with citations)."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from api.cli.helpers import console, err, kb_row, runtime
from retrieval.chain import plan_answer, run_answer, stream_answer
from retrieval.search import retrieve


def query(
    text: Annotated[str, typer.Argument(help="What to search for")],
    kb: Annotated[str, typer.Option("--kb", help="Knowledge base name")],
    top_k: Annotated[int, typer.Option("--top-k", min=1, max=100)] = 5,
    mode: Annotated[str | None, typer.Option(help="dense or hybrid (default: hybrid)")] = None,
    version: Annotated[int | None, typer.Option(help="Pin an index version")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Search a knowledge base's live index version.

    Example: ragops query "how do bees communicate?" --kb sample
    """
    # The KB first, the model after: a wrong name is told in a second, not after a load.
    with runtime(models=False) as rt:
        row = kb_row(rt, kb)
        result = retrieve(rt, kb=row, query=text, top_k=top_k, mode=mode, index_version=version)
    if as_json:
        print(
            json.dumps(
                {
                    "index_version": result.index_version,
                    "results": [r.__dict__ for r in result.results],
                },
                indent=2,
                ensure_ascii=False,
            )
        )
        return
    if result.index_version is None:
        console.print(f"knowledge base {kb!r} has no indexed documents yet")
        return
    table = Table(
        "#", "score", "file", "page", "text", title=f"{kb} (index v{result.index_version})"
    )
    for i, r in enumerate(result.results, 1):
        snippet = " ".join(r.text.split())[:160]
        table.add_row(
            str(i), f"{r.score:.3f}", r.filename, str(r.metadata.get("page_number") or ""), snippet
        )
    console.print(table)


def ask(
    question: Annotated[str, typer.Argument(help="The question")],
    kb: Annotated[str, typer.Option("--kb", help="Knowledge base name")],
    stream: Annotated[bool, typer.Option("--stream", help="Print tokens as they come")] = False,
    generator: Annotated[
        str | None, typer.Option("--generator", help="extractive, local or openai")
    ] = None,
    prompt: Annotated[str | None, typer.Option("--prompt", help="name or name@version")] = None,
    top_k: Annotated[int | None, typer.Option("--top-k", min=1, max=50)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON response")] = False,
) -> None:
    """Answer a question from a knowledge base, with citations (recorded like /answer).

    Example: ragops ask "How often should I feed my starter?" --kb sample --stream
    """
    if stream and as_json:
        err.print("[red]error:[/red] --stream and --json do not combine; pick one")
        raise typer.Exit(2)
    with runtime(models=False) as rt:
        row = kb_row(rt, kb)
        plan = plan_answer(
            rt,
            kb=row,
            query=question,
            top_k=top_k,
            generator=generator,
            prompt=prompt,
            channel="cli",
        )
        if stream:
            result: dict[str, Any] = {}
            for kind, data in stream_answer(rt, plan):
                if kind == "token":
                    sys.stdout.write(data)
                    sys.stdout.flush()
                else:
                    result = data
            sys.stdout.write("\n")
        else:
            result = run_answer(rt, plan)
    if as_json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return
    if not stream:
        console.print(result["answer"], markup=False, highlight=False)
    for c in result["citations"]:
        page = f", page {c['page_number']}" if c.get("page_number") else ""
        console.print(f"[{c['index']}] {c['filename']}{page}", markup=False, highlight=False)
    console.print(
        f"(answer {result['id']}; {result['generator']}, prompt "
        f"{result['prompt']['name']}@{result['prompt']['version']}, "
        f"index v{result['index_version']})",
        style="dim",
        markup=False,
        highlight=False,
    )

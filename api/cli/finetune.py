"""`ragops finetune`: fine-tune an embedding model from a KB's own feedback, test sets and
questions the LLM judge writes for its chunks (the same catalog functions as POST
/v1/models/finetune)."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer

from api.cli.helpers import audit_cli, console, fail, kb_row, print_table, runtime
from eval import finetune
from eval import finetune_data as ft_data


def finetune_cmd(
    name: Annotated[str, typer.Argument(help="Registry name of the fine-tuned model")],
    base_model: Annotated[
        str, typer.Option("--base-model", help="A registered embedding model's name")
    ],
    kb: Annotated[str, typer.Option("--kb", help="Knowledge base whose data it learns")],
    source: Annotated[
        list[str] | None,
        typer.Option(
            "--source",
            help="feedback, testsets or synthetic (repeatable; default feedback)",
        ),
    ] = None,
    testset: Annotated[
        list[str] | None, typer.Option("--testset", help="Test set name (repeatable)")
    ] = None,
    synthetic_questions: Annotated[
        int | None,
        typer.Option(
            "--synthetic-questions",
            min=1,
            max=ft_data.MAX_SYNTHETIC_QUESTIONS,
            help="Questions the judge writes for --source synthetic (default "
            f"{ft_data.DEFAULT_SYNTHETIC_QUESTIONS})",
        ),
    ] = None,
    epochs: Annotated[int, typer.Option(min=1, max=20)] = 1,
    batch_size: Annotated[int, typer.Option("--batch-size", min=2, max=256)] = 16,
    learning_rate: Annotated[float, typer.Option("--learning-rate")] = 2e-5,
    max_minutes: Annotated[float, typer.Option("--max-minutes")] = 30.0,
    max_steps: Annotated[
        int | None, typer.Option("--max-steps", min=1, help="Optimizer steps bound")
    ] = None,
    max_seq_length: Annotated[
        int,
        typer.Option(
            "--max-seq-length", min=16, max=512, help="Tokens per text while training (memory)"
        ),
    ] = 256,
    min_dev_gain: Annotated[float, typer.Option("--min-dev-gain")] = finetune.DEFAULT_MIN_DEV_GAIN,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only show the dataset (no negatives mined)")
    ] = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="Train here and print the dev figures")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run as JSON")] = False,
) -> None:
    """Fine-tune BASE on a KB's feedback (and test sets, and synthetic questions the judge
    writes first); registered as a candidate only if dev recall@5 beats the base by
    --min-dev-gain. Without --wait the job is queued for the server's workers.

    Example: ragops finetune e5-docs-ft1 --base-model multilingual-e5-small --kb docs --wait

    Example: ragops finetune e5-docs-ft2 --base-model multilingual-e5-small --kb docs
    --source feedback --source synthetic --synthetic-questions 200 --wait
    """
    params = finetune.FineTuneParams(
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        max_minutes=max_minutes,
        max_steps=max_steps,
        max_seq_length=max_seq_length,
        min_dev_gain=min_dev_gain,
    )
    with runtime(models=wait) as rt:
        if dry_run:
            chosen = ft_data.check_sources(source, testset)
            questions = ft_data.check_synthetic(chosen, synthetic_questions)
            ds = ft_data.build_dataset(
                rt, kb=kb_row(rt, kb), sources=chosen, testsets=testset, mine=False
            )
            body: dict[str, Any] = {"id": ds.id, "counts": ds.counts()}
            if questions:
                # Nothing is generated in a dry run: the job writes them first.
                body["synthetic_questions"] = questions
            print(json.dumps(body, indent=2, ensure_ascii=False))
            return
        run = finetune.submit_finetune(
            rt,
            name=name,
            base_model=base_model,
            kb=kb,
            sources=source,
            testsets=testset,
            params=params,
            synthetic_questions=synthetic_questions,
        )
        audit_cli(rt, "model.finetune", kb_id=run.kb_id, target=name, run=run.id)
        if wait:
            # Run the job here unless a server's worker already claimed it; then poll.
            rt.workers.run_job(run.id, owner=f"cli:{run.id}")
            while (run := finetune.get_run(rt, run.id)).status in ("queued", "running"):
                time.sleep(1.0)
    if as_json:
        fields = ("id", "name", "base_model", "status", "dataset", "epochs", "error")
        body = {k: getattr(run, k) for k in fields}
        body["metrics"] = finetune.public_metrics(run.metrics or {})
        body["report"] = (run.metrics or {}).get(finetune.REPORT)
        print(json.dumps(body, indent=2, ensure_ascii=False))
        return
    if not wait:
        console.print(f"queued fine-tuning run {run.id}; see GET /v1/models/finetune/{run.id}")
        return
    rows = [
        (
            str(e["epoch"]),
            str(e["loss"]),
            f"{e['dev']['recall@5']:.4f}",
            f"{e['dev']['mrr@10']:.4f}",
        )
        for e in (run.epochs or [])
    ]
    base = (run.metrics or {}).get("base") or {}
    if base:
        rows.insert(0, ("base", "-", f"{base['recall@5']:.4f}", f"{base['mrr@10']:.4f}"))
    print_table(("epoch", "loss", "dev recall@5", "dev MRR@10"), rows, title=f"fine-tuning {name}")
    report = (run.metrics or {}).get(finetune.REPORT)
    if report:
        print_report(report)
    if run.status != "succeeded":
        fail(RuntimeError(f"fine-tuning run {run.id} {run.status}: {run.error}"))
    console.print(f"registered candidate {run.model_name!r} (run {run.id})")


# Questions printed one by one under --wait (--json lists them).
SHOWN_QUESTIONS = 200


def print_report(report: dict[str, Any]) -> None:
    """Base against fine-tuned on the dev split: per language, then per question (the
    most improved first in each language)."""
    rows = []
    for lang, side in [*report["by_language"].items(), ("all", report["overall"])]:
        rows.append(
            (
                lang,
                str(side["questions"]),
                f"{side['base']['recall@5']:.4f} → {side['tuned']['recall@5']:.4f}",
                f"{side['base']['mrr@10']:.4f} → {side['tuned']['mrr@10']:.4f}",
                f"{side['improved']} / {side['worsened']} / {side['unchanged']}",
                f"+{side['hit@5_gained']} / -{side['hit@5_lost']}",
            )
        )
    print_table(
        ("language", "questions", "recall@5", "MRR@10", "rank up / down / same", "hit@5"),
        rows,
        title=f"base → fine-tuned on the dev split ({report['corpus']} chunks searched)",
    )
    questions = sorted(
        report["questions"],
        key=lambda q: (q["language"], q["rank_after"] - q["rank_before"]),
    )
    shown = questions[:SHOWN_QUESTIONS]
    print_table(
        ("lang", "question", "rank before", "rank after", "hit@5 before", "hit@5 after"),
        [
            (
                q["language"],
                q["question"],
                str(q["rank_before"]),
                str(q["rank_after"]),
                "yes" if q["hit@5_before"] else "no",
                "yes" if q["hit@5_after"] else "no",
            )
            for q in shown
        ],
        title="per question: the rank of its positive chunk",
    )
    hidden = len(questions) - len(shown) + report.get("questions_left_out", 0)
    if hidden:
        console.print(f"({hidden} more questions: --json lists them)")

"""Fine-tuning the embedding model from feedback-like pairs (issue 18), on the
multilingual QA set (`tests/bench/data/mlqa`: 3,150 en/es/ru passages in one index;
never XQuAD or the SQuAD v1.1 dev set).

- **Corpus**: every passage (title and text), one retrieval unit each, as
  `bench_retrieval_mlqa` searches them (paragraph-level retrieval, no chunking).
- **Feedback-like data**: each *dev*-split question with its first relevant passage, what
  a thumbs-up citation or a reviewer's correction gives the product (`--max-pairs` keeps
  a pseudo-random subset). The product's own steps follow: the pairs are split by document
  (a passage's document is its id before `#`: one GNOME page, FAQ entry or BoolQ
  paragraph) with `eval.finetune_data.split_by_document` (20 % dev); train pairs get
  `--hard-negatives` mined from the base model's ranking (best-ranked passages of other
  train documents; the job mines the live index's default search instead).
- **Training**: `eval.finetune.train`, the job's own loop (MultipleNegativesRankingLoss,
  the model's query/passage prompts, AdamW with linear warm-up, seeds per epoch).
- **Registration rule**: the job registers a candidate only if recall@5 on its dev split
  beats the base by `min_dev_gain` (+0.01); measured here like the job, over the whole
  corpus.
- **Held-out**: the *test*-split questions (disjoint from dev in the passages they ask
  about), recall@5 and MRR@10 per language over the whole corpus (a hit on any relevant
  passage counts, as in `bench_retrieval_mlqa`), base against fine-tuned, dense only.
- **Gate**: `eval.gates.evaluate`, the check a promotion runs, with the fine-tuned model's
  held-out figures as the candidate and the base's as live, under `GATE_POLICY`.

Vectors are cosine similarities of normalised sentence-transformers embeddings (with the
model's prompts), the same for base and fine-tuned; `--max-seq-length` truncates both
alike (default: the model's own).

    .venv/bin/python -m tests.bench.bench_finetune [--model multilingual-e5-small]
        [--epochs 1] [--max-pairs N] [--batch-size 16] [--json tests/bench/results/...]

`--smoke` runs a tiny subset (a few questions and passages per language, 2 steps) to
check the wiring; its figures mean nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.config import OFFLINE_ENV

for _k, _v in OFFLINE_ENV.items():
    os.environ.setdefault(_k, _v)

from eval import finetune  # noqa: E402
from eval import finetune_data as data  # noqa: E402
from eval.gates import GatePolicy, evaluate, summary  # noqa: E402
from tests.bench.bench_retrieval_mlqa import metrics  # noqa: E402
from tests.bench.mlqa import LANGUAGES, Passage, Question, load_passages, load_questions  # noqa: E402

RESULTS = Path(__file__).parent / "results"
# A promotion gate on the held-out questions: neither recall@5 nor MRR@10 may drop more
# than 0.02 below the live (base) model's, the README's example tolerance.
GATE_POLICY = GatePolicy(
    testset="mlqa test split", max_regression=0.02, metrics=["recall@5", "mrr@10"]
)
NEGATIVE_DEPTH = data.NEGATIVE_DEPTH
# --smoke: questions per language (dev, test) and distractor passages per language.
SMOKE = {"dev": 12, "test": 4, "distractors": 20}


def document_of(passage_id: str) -> str:
    return passage_id.split("#", 1)[0]


def text_of(p: Passage) -> str:
    return f"{p.title}\n{p.text}" if p.title else p.text


def smoke_subset(
    passages: list[Passage], questions: list[Question]
) -> tuple[list[Passage], list[Question]]:
    """A few questions of each split and language, their passages and some distractors."""
    chosen: list[Question] = []
    for lang in LANGUAGES:
        for split in ("dev", "test"):
            mine = [q for q in questions if q.language == lang and q.split == split]
            chosen += mine[: SMOKE[split]]
    wanted = {i for q in chosen for i in q.relevant_ids}
    kept = [p for p in passages if p.id in wanted]
    for lang in LANGUAGES:
        kept += [p for p in passages if p.language == lang and p.id not in wanted][
            : SMOKE["distractors"]
        ]
    return kept, chosen


def subset(
    passages: list[Passage],
    questions: list[Question],
    *,
    heldout_per_language: int | None,
    corpus_per_language: int | None,
    seed: int,
) -> tuple[list[Passage], list[Question]]:
    """A pseudo-random sample of held-out questions per language, and a corpus of every
    passage relevant to a kept question plus distractors up to `corpus_per_language`
    passages per language (for a CPU too slow to embed the whole corpus twice)."""

    def order(key: str) -> str:
        return hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()

    kept = [q for q in questions if q.split != "test"]
    for lang in LANGUAGES:
        test = [q for q in questions if q.split == "test" and q.language == lang]
        kept += sorted(test, key=lambda q: order(q.id))[:heldout_per_language]
    kept.sort(key=lambda q: q.id)
    if corpus_per_language is None:
        return passages, kept
    wanted = {i for q in kept for i in q.relevant_ids}
    corpus = [p for p in passages if p.id in wanted]
    for lang in LANGUAGES:
        room = corpus_per_language - sum(p.language == lang for p in corpus)
        others = [p for p in passages if p.language == lang and p.id not in wanted]
        corpus += sorted(others, key=lambda p: order(p.id))[: max(0, room)]
    return sorted(corpus, key=lambda p: p.id), kept


def feedback_pairs(questions: list[Question], max_pairs: int | None, seed: int) -> list[data.Pair]:
    """(question, first relevant passage) for dev-split questions, split by document."""
    dev = [q for q in questions if q.split == "dev"]
    if max_pairs is not None and max_pairs < len(dev):
        dev = sorted(dev, key=lambda q: hashlib.sha256(f"{seed}:{q.id}".encode()).hexdigest())
        dev = sorted(dev[:max_pairs], key=lambda q: q.id)
    pairs = [
        data.Pair(
            question=q.question,
            positive_id=q.relevant_ids[0],
            document_id=document_of(q.relevant_ids[0]),
            filename=document_of(q.relevant_ids[0]),
            source="feedback_up",
            language=q.language,
            origin={"mlqa": q.id},
        )
        for q in dev
    ]
    data.split_by_document(pairs)
    return pairs


class Encoded:
    """One model's vectors of the whole corpus (cached per model state) and its ranking."""

    def __init__(self, passages: list[Passage], batch_size: int = 32) -> None:
        self.ids = [p.id for p in passages]
        self.texts = [text_of(p) for p in passages]
        self.row = {pid: i for i, pid in enumerate(self.ids)}
        self.batch_size = batch_size
        self.vectors: np.ndarray | None = None
        self.encode_seconds = 0.0

    def encode(self, model: Any, prompts: dict[str, str]) -> np.ndarray:
        import torch

        model.eval()
        t0 = time.perf_counter()
        with torch.no_grad():
            self.vectors = np.asarray(
                model.encode(
                    self.texts,
                    prompt=prompts["passage"],
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    batch_size=self.batch_size,
                    show_progress_bar=False,
                )
            )
        self.encode_seconds = time.perf_counter() - t0
        return self.vectors

    def scores(self, model: Any, prompts: dict[str, str], questions: list[str]) -> np.ndarray:
        assert self.vectors is not None
        queries = model.encode(
            questions,
            prompt=prompts["query"],
            normalize_embeddings=True,
            convert_to_numpy=True,
            batch_size=self.batch_size,
            show_progress_bar=False,
        )
        return np.asarray(queries) @ self.vectors.T


def positive_ranks(
    enc: Encoded, model: Any, prompts: dict[str, str], pairs: list[data.Pair]
) -> list[int]:
    """`finetune.dev_ranks` on the shared corpus vectors: rank of each pair's positive."""
    scores = enc.scores(model, prompts, [p.question for p in pairs])
    return [
        int((row > row[enc.row[p.positive_id]]).sum()) + 1
        for row, p in zip(scores, pairs, strict=True)
    ]


def heldout(
    enc: Encoded, model: Any, prompts: dict[str, str], questions: list[Question]
) -> dict[str, Any]:
    """Recall@1/5/10, MRR@10 and nDCG@10 per language (and all) on held-out questions."""
    scores = enc.scores(model, prompts, [q.question for q in questions])
    judged: dict[str, list[bool]] = {}
    for q, row in zip(questions, scores, strict=True):
        top = np.argsort(-row, kind="stable")[:10]
        relevant = {enc.row[i] for i in q.relevant_ids if i in enc.row}
        judged[q.id] = [int(i) in relevant for i in top]
    out = {}
    for lang in (*LANGUAGES, "all"):
        chosen = [q for q in questions if lang == "all" or q.language == lang]
        out[lang] = metrics([judged[q.id] for q in chosen], [len(q.relevant_ids) for q in chosen])
    return out


def mine_negatives(
    ds: data.Dataset,
    enc: Encoded,
    model: Any,
    prompts: dict[str, str],
    per_pair: int,
    relevant: dict[str, set[str]],
) -> None:
    """The best-ranked passages of other train documents (never a dev document's, never a
    passage relevant to the question) for each train pair, by the base model."""
    ds.mined = True
    if per_pair <= 0:
        return
    dev_docs = {p.document_id for p in ds.dev}
    train = ds.train
    scores = enc.scores(model, prompts, [p.question for p in train])
    for p, row in zip(train, scores, strict=True):
        p.negative_ids = []
        for i in np.argsort(-row, kind="stable")[
            : NEGATIVE_DEPTH + len(relevant[p.origin["mlqa"]])
        ]:
            pid = enc.ids[int(i)]
            if (
                document_of(pid) == p.document_id
                or document_of(pid) in dev_docs
                or pid in relevant[p.origin["mlqa"]]
            ):
                continue
            p.negative_ids.append(pid)
            if len(p.negative_ids) >= per_pair:
                break


def gate(base: dict[str, Any], tuned: dict[str, Any]) -> dict[str, Any]:
    """The promotion check on held-out figures, overall and (for information) per language."""

    def agg(figures: dict[str, float]) -> dict[str, Any]:
        return {m: {"mean": figures[m]} for m in GATE_POLICY.metrics}

    out: dict[str, Any] = {}
    for lang in ("all", *LANGUAGES):
        passed, checks = evaluate(GATE_POLICY, agg(tuned[lang]), agg(base[lang]))
        out[lang] = {"passed": passed, "summary": summary(checks), "checks": checks}
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from ingest.embed import resolve_model_path

    passages, questions = load_passages(), load_questions()
    if args.smoke:
        passages, questions = smoke_subset(passages, questions)
    if args.heldout_per_language or args.corpus_per_language:
        # Training pairs first, so the corpus keeps their positives.
        dev_kept = {p.origin["mlqa"] for p in feedback_pairs(questions, args.max_pairs, args.seed)}
        questions = [q for q in questions if q.split == "test" or q.id in dev_kept]
        passages, questions = subset(
            passages,
            questions,
            heldout_per_language=args.heldout_per_language,
            corpus_per_language=args.corpus_per_language,
            seed=args.seed,
        )
    relevant = {q.id: set(q.relevant_ids) for q in questions}
    path = resolve_model_path(args.model)
    model = finetune._load(path, "cuda" if torch.cuda.is_available() else "cpu")
    if args.max_seq_length:
        model.max_seq_length = args.max_seq_length
    prompts = finetune._prompts(model)
    enc = Encoded(passages)
    test = [q for q in questions if q.split == "test"]

    pairs = feedback_pairs(questions, args.max_pairs, args.seed)
    ds = data.Dataset(
        kb_id="mlqa",
        kb_name="mlqa",
        index_version=1,
        sources=["feedback"],
        testsets=[],
        pairs=pairs,
        texts={p.id: text_of(p) for p in passages},
        skipped={},
    )
    t0 = time.perf_counter()
    enc.encode(model, prompts)
    base_encode = enc.encode_seconds
    print(f"base corpus encoded in {base_encode:.0f} s", file=sys.stderr)
    base_dev = positive_ranks(enc, model, prompts, ds.dev)
    base_heldout = heldout(enc, model, prompts, test)
    mine_negatives(ds, enc, model, prompts, args.hard_negatives, relevant)
    print(f"{len(passages)} passages; {ds.counts()}", file=sys.stderr)
    base_seconds = time.perf_counter() - t0

    params = finetune.FineTuneParams(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        hard_negatives=args.hard_negatives,
        max_minutes=args.max_minutes,
        max_steps=args.max_steps,
        seed=args.seed,
    ).check()

    class Progress(finetune.Recorder):
        def progress(self, fraction: float, message: str) -> None:
            print(f"  {100 * fraction:5.1f}% {message}", file=sys.stderr, flush=True)

    measure_seconds: list[float] = []

    def measure(m: Any) -> list[int]:
        t = time.perf_counter()
        enc.encode(m, prompts)
        ranks = positive_ranks(enc, m, prompts, ds.dev)
        measure_seconds.append(time.perf_counter() - t)
        return ranks

    rec = Progress()
    started = time.perf_counter()
    result = finetune.train(
        model, ds, ds.texts, prompts, params, rec, None, measure=measure, started=time.monotonic()
    )
    wall = time.perf_counter() - started
    train_seconds = wall - sum(measure_seconds)
    tuned_dev = result.ranks if result.ranks is not None else measure(model)
    tuned_heldout = heldout(enc, model, prompts, test)  # enc holds the final model's vectors

    base_metrics = finetune.rank_metrics(ds.dev, base_dev, len(passages))
    tuned_metrics = finetune.rank_metrics(ds.dev, tuned_dev, len(passages))
    gain = round(tuned_metrics["recall@5"] - base_metrics["recall@5"], 6)
    report = finetune.dev_report(ds.dev, base_dev, tuned_dev, len(passages))
    steps = result.epochs[-1]["steps"] if result.epochs else 0
    return {
        "model": args.model,
        "smoke": args.smoke,
        "subset": {
            "max_pairs": args.max_pairs,
            "heldout_per_language": args.heldout_per_language,
            "corpus_per_language": args.corpus_per_language,
        },
        "passages_by_language": {
            lang: sum(p.language == lang for p in passages) for lang in LANGUAGES
        },
        "passages": len(passages),
        "questions": {
            "pairs_dev_split": sum(q.split == "dev" for q in questions),
            "heldout": {lang: sum(q.language == lang for q in test) for lang in LANGUAGES},
        },
        "dataset": ds.counts(),
        "params": {
            **{k: v for k, v in vars(params).items()},
            "max_seq_length": int(model.max_seq_length),
        },
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "device": str(model.device),
        },
        "seconds": {
            "base_encode_corpus": round(base_encode, 1),
            "base_measure_and_mining": round(base_seconds, 1),
            "training": round(train_seconds, 1),
            "dev_measure_per_epoch": [round(s, 1) for s in measure_seconds],
        },
        "steps": steps,
        "stopped_early": result.stopped,
        "epochs": result.epochs,
        "loss_first_last": [rec.steps[0]["loss"], rec.steps[-1]["loss"]] if rec.steps else None,
        "registration": {
            "dev_base": base_metrics,
            "dev_tuned": tuned_metrics,
            "gain": gain,
            "min_gain": params.min_dev_gain,
            "would_register": gain + 1e-9 >= params.min_dev_gain,
        },
        "dev_report": {k: v for k, v in report.items() if k != "questions"},
        "heldout": {"base": base_heldout, "tuned": tuned_heldout},
        "gate": {
            "policy": {
                "max_regression": GATE_POLICY.max_regression,
                "metrics": GATE_POLICY.metrics,
            },
            **gate(base_heldout, tuned_heldout),
        },
    }


def markdown(r: dict[str, Any]) -> str:
    base, tuned = r["heldout"]["base"], r["heldout"]["tuned"]
    lines = [
        f"**{r['model']}**: {r['dataset']['train']} train / {r['dataset']['dev']} dev pairs "
        f"({r['dataset']['hard_negatives']} hard negatives), {len(r['epochs'])} epoch(s), "
        f"{r['steps']} steps, batch {r['params']['batch_size']}, max_seq_length "
        f"{r['params']['max_seq_length']}; training {r['seconds']['training']:.0f} s on "
        f"{r['machine']['device']} ({r['machine']['torch_threads']} threads)",
        "",
        "| language | held-out questions | recall@5 base | recall@5 fine-tuned | MRR@10 base "
        "| MRR@10 fine-tuned |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for lang in (*LANGUAGES, "all"):
        b, t = base[lang], tuned[lang]
        lines.append(
            f"| {lang} | {b['n']} | {b['recall@5']:.3f} | {t['recall@5']:.3f} | "
            f"{b['mrr@10']:.3f} | {t['mrr@10']:.3f} |"
        )
    reg = r["registration"]
    lines += [
        "",
        f"Registration rule (dev split, {reg['dev_base']['questions']} questions): recall@5 "
        f"{reg['dev_base']['recall@5']:.4f} → {reg['dev_tuned']['recall@5']:.4f} (gain "
        f"{reg['gain']:+.4f}, needs {reg['min_gain']:+.4f}): "
        f"{'registered as candidate' if reg['would_register'] else 'refused'}.",
        f"Gate (held-out, all languages; max_regression {r['gate']['policy']['max_regression']} "
        f"on {', '.join(r['gate']['policy']['metrics'])}): "
        f"{'passes' if r['gate']['all']['passed'] else 'refuses'} ({r['gate']['all']['summary']}); "
        "per language: "
        + ", ".join(
            f"{lang} {'passes' if r['gate'][lang]['passed'] else 'refuses'}" for lang in LANGUAGES
        )
        + ".",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="multilingual-e5-small")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--max-pairs", type=int, default=None, help="dev-split questions used")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=2e-5)
    parser.add_argument("--hard-negatives", type=int, default=1)
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--max-minutes", type=float, default=30.0)
    parser.add_argument("--max-seq-length", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--heldout-per-language", type=int, default=None, help="sample of held-out questions"
    )
    parser.add_argument(
        "--corpus-per-language",
        type=int,
        default=None,
        help="passages per language: every relevant one plus distractors up to this",
    )
    parser.add_argument("--smoke", action="store_true", help="tiny subset, wiring only")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.smoke and args.max_steps is None:
        args.max_steps = 2
    out = (
        args.json
        or RESULTS / f"finetune_{Path(args.model).name}{'_smoke' if args.smoke else ''}.json"
    )
    result = run(args)
    result["command"] = "python -m tests.bench.bench_finetune " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()

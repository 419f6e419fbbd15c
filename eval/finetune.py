"""Fine-tuning a KB's embedding model from the KB's own data, as one durable job.

`submit_finetune` validates the request (the base model is a registered embedding model
with local files, the name is free, the dataset clears the guard rails of
`eval.finetune_data`, a judge is configured when the source `synthetic` is asked for)
and queues an `embedding_finetune` job with a `FineTuneRun` row of the same id.
`run_finetune` (the job):

0. with source `synthetic`: has the configured LLM judge write `synthetic_questions`
   questions for sampled chunks of the live version (`eval.generate.generate_testset`,
   seeded by the job id; progress 0 to `SYNTHETIC_PROGRESS`) and stores them as the
   next version of test set `finetune-<name>-synthetic`, source "generated", its
   description naming the job, so an attempt retried after a crash finds that set
   (`generated_testset`) instead of asking the judge again;
1. rebuilds the dataset (with those questions as source "synthetic") with hard
   negatives mined from the live index and checks it again;
2. measures the base model on the dev split (recall@5 and MRR@10 of the positive chunk
   among the dataset's chunks plus a sample of the KB, `DEV_CORPUS_SIZE`);
3. trains with sentence-transformers' MultipleNegativesRankingLoss (in-batch negatives
   plus the mined hard negatives as extra columns; the model's own query/passage prompts)
   on CUDA when present, else the CPU; bounded by epochs, `max_steps` and `max_minutes`
   (time) and by `batch_size`, `hard_negatives` and `max_seq_length` (memory);
   the loss of every step and the dev figures of every epoch go to the run row, progress
   to the job; `cancel_finetune` is honoured between steps;
4. checkpoints each epoch under `<data dir>/finetune/<job id>/` (model, optimizer and
   scheduler state, the dataset id), so a job retried after a crash resumes after the
   last epoch it finished, with the same data, and ends with the model an uninterrupted
   run gives (torch is seeded per epoch);
5. compares base and fine-tuned on the dev split, per language and per question (the
   positive chunk's rank and hit@5 before and after: `dev_report`, the run's `report`);
6. registers the result as a `candidate` embedding model only if dev recall@5 beats the
   base by `min_dev_gain` (default `DEFAULT_MIN_DEV_GAIN`, +0.01 absolute); otherwise the
   run ends `refused` and the job fails with the figures. The registry entry carries the
   lineage (base model and digest, dataset id and counts, the synthetic test set and
   version and the judge that wrote it, hyper-parameters, code version, dev metrics) and
   its own digest.

From there the rollout is the existing one (`eval.rollout`): stage the candidate, then
promote it to production for a KB, which builds an index version with it and goes live
only through the KB's quality gate.

Example::

    run = submit_finetune(rt, name="e5-docs-ft1", base_model="multilingual-e5-small",
                          kb="docs", sources=["feedback"], params=FineTuneParams(epochs=2))
    # GET /v1/jobs/{run.id} until it ends; GET /v1/models/finetune/{run.id} for the curves
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import logging
import random
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import select

from core.catalog.models import FineTuneRun, utcnow
from core.errors import Conflict, Duplicate, InvalidInput, NotFound
from core.jobs import PermanentJobError
from core.kbs import get_kb
from core.memory import release_free_memory
from eval import finetune_data as data
from eval import registry
from eval.generate import generate_testset, generated_testset
from eval.judge import judge_label, require_judge
from eval.model_sources import model_path
from eval.testsets import get_cases
from index.versions import queryable_version
from ingest.embed import prompt_of

if TYPE_CHECKING:
    from core.catalog.models import KnowledgeBase
    from core.jobs import JobContext
    from eval.services import EvalServices

log = logging.getLogger(__name__)

FINETUNE_JOB = "embedding_finetune"
DEFAULT_MIN_DEV_GAIN = 0.01
# Chunks besides the dataset's own that dev questions are searched in.
DEV_CORPUS_SIZE = 2000
# Loss points kept per run; past it every other point is dropped (the curve's shape stays).
MAX_STEP_POINTS = 2000
# Seconds between writes of the loss curve and reads of the cancel flag.
SYNC_SECONDS = 1.0
CHECKPOINTS, FINAL = "checkpoints", "model"
# Keys of a run's metrics kept for the base-vs-fine-tuned report (not shown as metrics):
# the base model's dev rank per question, and the report itself.
BASE_RANKS, REPORT = "base_ranks", "report"
# Questions listed one by one in the report (the per-language figures count them all).
MAX_REPORT_QUESTIONS = 2000
# The share of the job's progress the judge's writing of synthetic questions takes; the
# rest (dataset, training, registration) is scaled into what is left.
SYNTHETIC_PROGRESS = 0.3
# What needs the judge, in the 409 without one.
SYNTHETIC_NEEDS = "the fine-tuning source 'synthetic' (questions written for the KB's chunks)"


@dataclass
class FineTuneParams:
    """Hyper-parameters and bounds (validated by `check`)."""

    epochs: int = 1
    batch_size: int = 16
    learning_rate: float = 2e-5
    warmup_ratio: float = 0.1
    max_minutes: float = 30.0
    max_steps: int | None = None
    # Tokens per text while training (longer ones are cut): with batch_size and
    # hard_negatives it bounds the memory a step takes (activations grow with batch ×
    # (2 + negatives) × tokens). Measuring the dev split uses the model's own limit.
    max_seq_length: int = 256
    hard_negatives: int = 1
    dev_fraction: float = data.DEV_FRACTION
    min_dev_gain: float = DEFAULT_MIN_DEV_GAIN
    seed: int = 0

    def check(self) -> FineTuneParams:
        bounds: dict[str, tuple[float, float]] = {
            "epochs": (1, 20),
            "batch_size": (2, 256),
            "learning_rate": (1e-7, 1e-3),
            "warmup_ratio": (0.0, 0.5),
            "max_minutes": (0.1, 24 * 60),
            "hard_negatives": (0, data.MAX_HARD_NEGATIVES),
            "max_seq_length": (16, 512),
            "dev_fraction": (0.05, 0.5),
            "min_dev_gain": (-1.0, 1.0),
        }
        for key, (low, high) in bounds.items():
            value = getattr(self, key)
            if not low <= value <= high:
                raise InvalidInput(f"{key} must be between {low:g} and {high:g}, got {value}")
        if self.max_steps is not None and self.max_steps < 1:
            raise InvalidInput(f"max_steps must be at least 1, got {self.max_steps}")
        if not 0 <= self.seed < 2**32:
            raise InvalidInput(f"seed must be between 0 and 2^32-1, got {self.seed}")
        return self


# -- submitting ------------------------------------------------------------------------


def base_model_files(rt: EvalServices, name: str) -> tuple[Any, Path]:
    """The registered base embedding model and its local folder."""
    registry.ensure_builtin(rt)
    with rt.db.session() as s:
        try:
            model = registry.get_model(session=s, kind="embedding", name=name)
        except NotFound as exc:
            raise NotFound(
                f"base_model {name!r} is not a registered embedding model; register it "
                f"first (POST /v1/models/registry, e.g. source_type 'package' for a "
                f"packaged model), then fine-tune from it"
            ) from exc
        s.expunge(model)
    path = model_path(model)
    if path is None or not path.is_dir():
        raise InvalidInput(
            f"base_model {name!r} ({model.source_type} {model.source!r}) has no local "
            "sentence-transformers folder on this server to train from"
        )
    if model.stage == "archived":
        raise InvalidInput(f"base_model {name!r} is archived; revive it before training from it")
    return model, path


def submit_finetune(
    rt: EvalServices,
    *,
    name: str,
    base_model: str,
    kb: str,
    sources: list[str] | None = None,
    testsets: list[str] | None = None,
    params: FineTuneParams | None = None,
    synthetic_questions: int | None = None,
) -> FineTuneRun:
    """Validate and queue; 422 (InvalidInput, DatasetRefused) for bad input or data that
    must not be trained on, 404 for an unknown KB, base model or test set or a KB without
    a live index version, 409 for a name already taken (registered, or being trained) or
    for source `synthetic` without an LLM judge."""
    params = (params or FineTuneParams()).check()
    registry.check_name(name)
    chosen = data.check_sources(sources, testsets)
    questions = data.check_synthetic(chosen, synthetic_questions)
    judge = require_judge(rt.settings, SYNTHETIC_NEEDS) if questions else None
    base, _ = base_model_files(rt, base_model)
    with rt.db.session() as s:
        kb_row = get_kb(session=s, name_or_id=kb)
        s.expunge(kb_row)
        try:
            registry.get_model(session=s, kind="embedding", name=name)
        except NotFound:
            pass
        else:
            raise Duplicate(f"embedding model {name!r} is already registered; choose a new name")
        busy = s.execute(
            select(FineTuneRun.id).where(
                FineTuneRun.name == name, FineTuneRun.status.in_(("queued", "running"))
            )
        ).first()
        if busy is not None:
            raise Conflict(
                f"a fine-tuning run for {name!r} is already {busy.id}; follow it with "
                f"GET /v1/models/finetune/{busy.id} or cancel it"
            )
    ds = data.build_dataset(
        rt,
        kb=kb_row,
        sources=chosen,
        testsets=testsets,
        hard_negatives=params.hard_negatives,
        dev_fraction=params.dev_fraction,
        mine=False,
    )
    data.check_trainable(rt, ds, kb_row, to_generate=questions or 0)
    request: dict[str, Any] = {
        "sources": chosen,
        "testsets": list(testsets or []),
        "hyperparameters": asdict(params),
    }
    dataset: dict[str, Any] = {"preview_id": ds.id, "counts": ds.counts()}
    if questions:
        request["synthetic_questions"] = questions
        dataset["synthetic"] = {
            "questions": questions,
            "judge": judge,
            "testset": synthetic_testset_name(name),
            "version": None,
        }
    with rt.db.session() as s:
        job = rt.jobs.submit(
            s,
            kind=FINETUNE_JOB,
            payload={"kb_id": kb_row.id, "kb": kb_row.name, "name": name},
            kb_id=kb_row.id,
            max_attempts=2,
        )
        # The failure hook hears only the payload: it names the run (= the job).
        job.payload = {**job.payload, "run_id": job.id}
        run = FineTuneRun(
            id=job.id,
            kb_id=kb_row.id,
            name=name,
            base_model=base.name,
            params=request,
            dataset=dataset,
        )
        s.add(run)
        s.flush()
        s.expunge(run)
    return run


def preview_dataset(
    rt: EvalServices,
    *,
    kb: KnowledgeBase,
    sources: list[str] | None,
    testsets: list[str] | None,
    hard_negatives: int = 1,
    synthetic_questions: int | None = None,
) -> dict[str, Any]:
    """What a run on `kb` would train on now (`data.summary`, negatives mined), whether
    it would be accepted (`trainable`, else `refusal`), and for source `synthetic` how
    many questions the judge would write when the job runs (`synthetic`: none are
    written here, so the counts leave them out)."""
    chosen = data.check_sources(sources, testsets)
    questions = data.check_synthetic(chosen, synthetic_questions)
    ds = data.build_dataset(
        rt, kb=kb, sources=chosen, testsets=testsets, hard_negatives=hard_negatives
    )
    refusal = None
    try:
        if questions:
            require_judge(rt.settings, SYNTHETIC_NEEDS)
        data.check_trainable(rt, ds, kb, to_generate=questions or 0)
    except (data.DatasetRefused, Conflict) as exc:
        refusal = exc.message
    body = {**data.summary(ds), "trainable": refusal is None, "refusal": refusal}
    if questions:
        judge = judge_label(rt.settings)
        body["synthetic"] = {
            "questions": questions,
            "judge": judge,
            "note": f"{questions} questions will be written by the judge ({judge}) for "
            "sampled chunks of the live version when the job runs; they are not in these "
            "counts"
            if judge
            else "no LLM judge is configured: a run with source 'synthetic' is refused",
        }
    return body


def get_run(rt: EvalServices, run_id: str) -> FineTuneRun:
    with rt.db.session() as s:
        run = s.get(FineTuneRun, run_id)
        if run is None:
            raise NotFound(
                f"fine-tuning run {run_id!r} not found; start one with POST /v1/models/finetune"
            )
        s.expunge(run)
    return run


def cancel_finetune(rt: EvalServices, run_id: str) -> FineTuneRun:
    """Ask a queued or running job to stop (between training steps); its checkpoints stay."""
    with rt.db.session() as s:
        run = s.get(FineTuneRun, run_id)
        if run is None:
            raise NotFound(f"fine-tuning run {run_id!r} not found")
        if run.status not in ("queued", "running"):
            raise Conflict(f"fine-tuning run {run_id!r} already ended ({run.status})")
        run.cancel_requested = True
        s.flush()
        s.expunge(run)
    return run


# -- the job ---------------------------------------------------------------------------


class _Cancelled(Exception):
    """The run was cancelled between two training steps."""


class Recorder:
    """Where `train` reports: the loss of every step (thinned past `MAX_STEP_POINTS`),
    the epoch records and progress; and whether to stop. This one keeps them in memory
    and never stops (the benchmark); `_Recorder` writes them to the run row and the job
    and reads the cancel flag."""

    def __init__(self) -> None:
        self.steps: list[dict[str, Any]] = []

    def progress(self, fraction: float, message: str) -> None:
        log.debug("%.0f%% %s", 100 * fraction, message)

    def record_step(self, epoch: int, step: int, loss: float) -> None:
        self.steps.append({"epoch": epoch, "step": step, "loss": round(loss, 5)})
        if len(self.steps) > MAX_STEP_POINTS:
            self.steps = self.steps[::2]

    def step(self, epoch: int, step: int, loss: float) -> bool:
        """Record one step's loss; True when the run was cancelled."""
        self.record_step(epoch, step, loss)
        return False

    def epoch_done(self, epochs: list[dict[str, Any]]) -> None:
        """The epoch records so far (the last one just finished)."""

    def cancelled(self) -> bool:
        return False


class _Recorder(Recorder):
    """Writes progress to the run row and the job; reads the cancel flag."""

    def __init__(self, rt: EvalServices, run_id: str, ctx: JobContext | None) -> None:
        super().__init__()
        self.rt, self.run_id, self.ctx = rt, run_id, ctx
        self.last_sync = 0.0
        # Progress already spent on an earlier phase: later fractions are scaled into
        # the rest (the synthetic questions take 0 to SYNTHETIC_PROGRESS).
        self.offset = 0.0

    def update(self, **values: Any) -> FineTuneRun:
        with self.rt.db.session() as s:
            run = s.get(FineTuneRun, self.run_id)
            assert run is not None
            for key, value in values.items():
                setattr(run, key, value)
            s.flush()
            s.expunge(run)
        return run

    def cancelled(self) -> bool:
        with self.rt.db.session() as s:
            return bool(
                s.execute(
                    select(FineTuneRun.cancel_requested).where(FineTuneRun.id == self.run_id)
                ).scalar()
            )

    def progress(self, fraction: float, message: str) -> None:
        if self.ctx is not None:
            self.ctx.progress(self.offset + (1.0 - self.offset) * fraction, message)

    def step(self, epoch: int, step: int, loss: float) -> bool:
        self.record_step(epoch, step, loss)
        now = time.monotonic()
        if now - self.last_sync < SYNC_SECONDS:
            return False
        self.last_sync = now
        self.update(steps=list(self.steps))
        return self.cancelled()

    def epoch_done(self, epochs: list[dict[str, Any]]) -> None:
        self.update(epochs=epochs, steps=list(self.steps))


def code_version() -> str:
    """`git describe` of the checkout when there is one, else the installed package's."""
    root = Path(__file__).resolve().parents[1]
    if (root / ".git").exists():
        try:
            out = subprocess.run(
                ["git", "-C", str(root), "describe", "--always", "--dirty", "--tags"],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            )
            return f"git:{out.stdout.strip()}"
        except (OSError, subprocess.SubprocessError):
            pass
    try:
        return f"ragops=={importlib.metadata.version('ragops')}"
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def run_dir(rt: EvalServices, run_id: str) -> Path:
    return Path(rt.settings.data_dir) / "finetune" / run_id


def run_finetune(rt: EvalServices, payload: dict[str, Any], ctx: JobContext | None = None) -> str:
    """The `embedding_finetune` job (its id is the run's id). The worker gives the
    training's memory back to the system when it ends (`release_free_memory`)."""
    try:
        return _run_finetune(rt, payload, ctx)
    finally:
        release_free_memory()


def _run_finetune(rt: EvalServices, payload: dict[str, Any], ctx: JobContext | None) -> str:
    run_id = payload["run_id"]
    rec = _Recorder(rt, run_id, ctx)
    run = get_run(rt, run_id)
    if run.status in ("succeeded", "refused", "cancelled"):
        return f"fine-tuning run already ended: {run.status}"
    if run.cancel_requested:
        _end(rec, "cancelled", "cancelled before training started")
        raise PermanentJobError("cancelled before training started")
    params = FineTuneParams(**run.params["hyperparameters"])
    rec.update(status="running", error=None)
    try:
        return _train_and_register(rt, rec, run, params)
    except data.DatasetRefused as exc:
        _end(rec, "refused", exc.message)
        raise PermanentJobError(exc.message) from exc
    except _Cancelled as exc:
        _end(rec, "cancelled", str(exc))
        raise PermanentJobError(str(exc)) from exc
    except (InvalidInput, NotFound, Conflict) as exc:
        _end(rec, "failed", exc.message)
        raise PermanentJobError(exc.message) from exc


def record_failure(rt: EvalServices, payload: dict[str, Any], reason: str) -> None:
    """The job failed for good (an unexpected error on its last attempt): say so on the run."""
    with rt.db.session() as s:
        run = s.get(FineTuneRun, payload.get("run_id"))
        if run is not None and run.status in ("queued", "running"):
            run.status, run.error, run.finished_at = "failed", reason[:4000], utcnow()


def _end(rec: _Recorder, status: str, error: str | None) -> None:
    rec.update(status=status, error=error, finished_at=utcnow(), steps=list(rec.steps))


def _train_and_register(
    rt: EvalServices, rec: _Recorder, run: FineTuneRun, params: FineTuneParams
) -> str:
    import torch

    base, base_path = base_model_files(rt, run.base_model)
    with rt.db.session() as s:
        kb = get_kb(session=s, name_or_id=run.kb_id or "")
        s.expunge(kb)
    synthetic: dict[str, Any] | None = None
    if run.params.get("synthetic_questions"):
        synthetic = synthetic_testset(rt, rec, run, kb, int(run.params["synthetic_questions"]))
        rec.update(dataset={**(run.dataset or {}), "synthetic": synthetic})
        if rec.cancelled():
            raise _Cancelled("cancelled after writing the synthetic questions")
        rec.offset = SYNTHETIC_PROGRESS
    rec.progress(0.01, "building the dataset (mining hard negatives)")
    ds = data.build_dataset(
        rt,
        kb=kb,
        sources=run.params["sources"],
        testsets=run.params["testsets"],
        hard_negatives=params.hard_negatives,
        dev_fraction=params.dev_fraction,
        synthetic=(synthetic["testset"], synthetic["version"]) if synthetic else None,
    )
    data.check_trainable(rt, ds, kb)
    corpus = data.dev_corpus(rt, ds, limit=DEV_CORPUS_SIZE)
    dataset = {"id": ds.id, "counts": ds.counts(), "index_version": ds.index_version}
    if synthetic:
        dataset["synthetic"] = synthetic
    rec.update(dataset={**(run.dataset or {}), **dataset})

    device = "cuda" if torch.cuda.is_available() else "cpu"
    folder = run_dir(rt, run.id)
    # A checkpoint of another dataset (the KB changed between two attempts) is not
    # resumed: the run starts over on what it trains on now.
    resume = _last_checkpoint(folder, ds.id)
    model = _load(resume[1] if resume else base_path, device)
    prompts = _prompts(model)
    metrics = dict(run.metrics or {})
    if (metrics.get(BASE_RANKS) or {}).get("dataset_id") != ds.id:
        rec.progress(0.03, "measuring the base model on the dev split")
        base_model = model if resume is None else _load(base_path, device)
        ranks = dev_ranks(base_model, ds.dev, corpus, prompts)
        metrics = {
            "base": rank_metrics(ds.dev, ranks, len(corpus)),
            BASE_RANKS: {
                "dataset_id": ds.id,
                "ranks": {
                    data.normalise(p.question): r for p, r in zip(ds.dev, ranks, strict=True)
                },
            },
        }
        rec.update(metrics=metrics)
    started = time.monotonic()
    result = train(
        model,
        ds,
        corpus,
        prompts,
        params,
        rec,
        folder,
        resume=resume,
        prior_epochs=list(run.epochs or []),
        prior_steps=list(run.steps or []),
        started=started,
    )
    if rec.cancelled():
        raise _Cancelled("cancelled after training, before registering")
    tuned_ranks = (
        result.ranks if result.ranks is not None else dev_ranks(model, ds.dev, corpus, prompts)
    )
    tuned = (
        result.epochs[-1]["dev"]
        if result.epochs
        else rank_metrics(ds.dev, tuned_ranks, len(corpus))
    )
    gain = round(tuned["recall@5"] - metrics["base"]["recall@5"], 6)
    metrics.update(tuned=tuned, gain=gain, min_gain=params.min_dev_gain)
    seconds = round(time.monotonic() - started, 1)
    metrics["train_seconds"] = seconds
    before = metrics[BASE_RANKS]["ranks"]
    metrics[REPORT] = dev_report(
        ds.dev, [before[data.normalise(p.question)] for p in ds.dev], tuned_ranks, len(corpus)
    )
    figures = (
        f"dev recall@5 {metrics['base']['recall@5']:.4f} → {tuned['recall@5']:.4f} "
        f"(gain {gain:+.4f}, needs {params.min_dev_gain:+.4f}); MRR@10 "
        f"{metrics['base']['mrr@10']:.4f} → {tuned['mrr@10']:.4f}; "
        f"{ds.counts()['train']} train / {ds.counts()['dev']} dev pairs, {seconds:g} s"
    )
    rec.update(metrics=metrics, steps=list(rec.steps))
    if gain + 1e-9 < params.min_dev_gain:
        message = f"not registered: the fine-tuned model does not beat the base: {figures}"
        _end(rec, "refused", message)
        raise PermanentJobError(message)
    rec.progress(0.95, "saving and registering the model")
    final = folder / FINAL
    if final.exists():
        shutil.rmtree(final)
    model.save(str(final))
    lineage_record = {
        "base_model": {"name": base.name, "digest": base.digest, "source": base.source},
        "dataset": dataset,
        "sources": run.params["sources"],
        "testsets": run.params["testsets"],
        "synthetic": synthetic,
        "kb": kb.name,
        "hyperparameters": asdict(params),
        "device": device,
        "stopped_early": result.stopped,
        "code_version": code_version(),
        "dev_metrics": public_metrics(metrics),
        "job_id": run.id,
    }
    model_row = registry.register(
        rt,
        kind="embedding",
        name=run.name,
        source_type="local_path",
        source=str(final),
        description=f"{base.name} fine-tuned on {kb.name}'s "
        f"{'/'.join(run.params['sources'])} ({figures})",
        lineage={
            "fine_tuned_from": base.name,
            "training_data": f"finetune dataset {ds.id} of KB {kb.name} (index version "
            f"{ds.index_version}): {json.dumps(ds.counts()['by_source'])}"
            + (
                f"; synthetic questions: test set {synthetic['testset']!r} version "
                f"{synthetic['version']}, written by {synthetic['judge']}"
                if synthetic
                else ""
            ),
            "notes": f"fine-tuning run {run.id}",
        },
        metadata={"path": str(final), "finetune": lineage_record},
    )
    rec.update(
        status="succeeded", model_name=model_row.name, finished_at=utcnow(), steps=list(rec.steps)
    )
    shutil.rmtree(folder / CHECKPOINTS, ignore_errors=True)
    return f"registered candidate {run.name!r} (digest {model_row.digest[:12]}): {figures}"


def synthetic_testset_name(run_name: str) -> str:
    """The test set a run's synthetic questions are stored in (a valid test set name,
    whatever characters the model name holds)."""
    base = re.sub(r"[^A-Za-z0-9_.-]", "_", run_name)
    if len(base) > 100:
        base = f"{base[:90]}-{hashlib.sha256(run_name.encode()).hexdigest()[:8]}"
    return f"finetune-{base}-synthetic"


def synthetic_testset(
    rt: EvalServices, rec: Recorder, run: FineTuneRun, kb: KnowledgeBase, size: int
) -> dict[str, Any]:
    """The run's synthetic test set: the one an earlier attempt of this job stored (its
    description names the job id), else `size` questions the judge writes now for
    sampled chunks of the live version (progress 0 to `SYNTHETIC_PROGRESS`). Returns
    what the lineage records: test set, version, judge, questions asked, cases kept."""
    found = generated_testset(rt, run.id)
    if found is None:
        with rt.db.session() as s:
            version = queryable_version(session=s, kb=kb, number=None)
            if version is None:
                raise NotFound(
                    f"knowledge base {kb.name!r} has no live index version; upload documents first"
                )
            number = version.number
        rec.progress(0.0, f"the judge writes {size} synthetic questions")

        def progress(done: int) -> None:
            rec.progress(SYNTHETIC_PROGRESS * done / size, f"{done}/{size} synthetic questions")

        made = generate_testset(
            rt,
            kb_id=kb.id,
            kb=kb.name,
            name=synthetic_testset_name(run.name),
            size=size,
            index_version=number,
            job_id=run.id,
            on_progress=progress,
        )
        log.info("fine-tuning run %s: %s", run.id, made.message())
        testset, judge, reused = made.testset, made.judge, False
    else:
        with rt.db.session() as s:
            cases = get_cases(session=s, testset_id=found.id)
            judge = next((c.metadata_.get("judge") for c in cases if c.metadata_), None)
        testset, reused = found, True
    return {
        "testset": testset.name,
        "version": testset.version,
        "judge": judge,
        "questions": size,
        "cases": testset.case_count,
        "reused": reused,
    }


def public_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """A run's metrics as shown (API, lineage): without the per-question data kept for
    the report."""
    return {k: v for k, v in metrics.items() if k not in (BASE_RANKS, REPORT)}


def _load(path: Path, device: str) -> Any:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(path), device=device)


def _prompts(model: Any) -> dict[str, str]:
    """The query and passage prompts the embedder applies for this model (ingest.embed)."""
    return {"query": prompt_of(model, "query"), "passage": prompt_of(model, "passage")}


def dev_ranks(
    model: Any, dev: list[data.Pair], corpus: dict[str, str], prompts: dict[str, str]
) -> list[int]:
    """The rank (1 = first) of each dev question's positive chunk among `corpus` by the
    model's cosine similarity (ties count against the positive)."""
    import torch

    ids = list(corpus)
    model.eval()
    with torch.no_grad():
        docs = model.encode(
            [corpus[i] for i in ids],
            prompt=prompts["passage"],
            normalize_embeddings=True,
            convert_to_numpy=True,
            batch_size=32,
            show_progress_bar=False,
        )
        queries = model.encode(
            [p.question for p in dev],
            prompt=prompts["query"],
            normalize_embeddings=True,
            convert_to_numpy=True,
            batch_size=32,
            show_progress_bar=False,
        )
    position = {cid: i for i, cid in enumerate(ids)}
    scores = np.asarray(queries) @ np.asarray(docs).T
    return [
        int((row > row[position[p.positive_id]]).sum()) + 1
        for row, p in zip(scores, dev, strict=True)
    ]


def _aggregate(ranks: list[int]) -> dict[str, Any]:
    n = len(ranks)
    return {
        "recall@5": round(sum(r <= 5 for r in ranks) / n, 4) if n else 0.0,
        "mrr@10": round(sum(1.0 / r for r in ranks if r <= 10) / n, 4) if n else 0.0,
        "questions": n,
    }


def rank_metrics(dev: list[data.Pair], ranks: list[int], corpus_size: int) -> dict[str, Any]:
    """Recall@5 and MRR@10 of the ranks, overall and per language."""
    languages = sorted({p.language for p in dev})
    return {
        **_aggregate(ranks),
        "corpus": corpus_size,
        "by_language": {
            lang: _aggregate([r for p, r in zip(dev, ranks, strict=True) if p.language == lang])
            for lang in languages
        },
    }


def dev_metrics(
    model: Any, dev: list[data.Pair], corpus: dict[str, str], prompts: dict[str, str]
) -> dict[str, Any]:
    """Recall@5 and MRR@10 of each dev question's positive chunk among `corpus`, overall
    and per language."""
    return rank_metrics(dev, dev_ranks(model, dev, corpus, prompts), len(corpus))


def dev_report(
    dev: list[data.Pair], before: list[int], after: list[int], corpus_size: int
) -> dict[str, Any]:
    """Base against fine-tuned on the dev split: per language (recall@5, MRR@10, how many
    questions moved up or down, hit@5 gained or lost) and per question (the positive
    chunk's rank and hit@5 before and after)."""
    rows = [
        {
            "question": p.question,
            "language": p.language,
            "filename": p.filename,
            "positive_id": p.positive_id,
            "source": p.source,
            "rank_before": b,
            "rank_after": a,
            "hit@5_before": b <= 5,
            "hit@5_after": a <= 5,
        }
        for p, b, a in zip(dev, before, after, strict=True)
    ]

    def side(chosen: list[dict[str, Any]]) -> dict[str, Any]:
        b = [r["rank_before"] for r in chosen]
        a = [r["rank_after"] for r in chosen]
        return {
            "questions": len(chosen),
            "base": {k: v for k, v in _aggregate(b).items() if k != "questions"},
            "tuned": {k: v for k, v in _aggregate(a).items() if k != "questions"},
            "improved": sum(r["rank_after"] < r["rank_before"] for r in chosen),
            "worsened": sum(r["rank_after"] > r["rank_before"] for r in chosen),
            "unchanged": sum(r["rank_after"] == r["rank_before"] for r in chosen),
            "hit@5_gained": sum(r["hit@5_after"] and not r["hit@5_before"] for r in chosen),
            "hit@5_lost": sum(r["hit@5_before"] and not r["hit@5_after"] for r in chosen),
        }

    languages = sorted({r["language"] for r in rows})
    return {
        "split": "dev",
        "corpus": corpus_size,
        "overall": side(rows),
        "by_language": {
            lang: side([r for r in rows if r["language"] == lang]) for lang in languages
        },
        "questions": rows[:MAX_REPORT_QUESTIONS],
        "questions_left_out": max(0, len(rows) - MAX_REPORT_QUESTIONS),
    }


def batches(pairs: list[data.Pair], size: int, seed: int) -> list[list[data.Pair]]:
    """Shuffled batches in which no text is both one pair's positive and another's
    positive or hard negative (each would be a false negative for the other)."""
    order = list(pairs)
    random.Random(seed).shuffle(order)
    open_batches: list[tuple[list[data.Pair], set[str], set[str]]] = []
    done: list[list[data.Pair]] = []
    for p in order:
        for i, (members, positives, negatives) in enumerate(open_batches):
            if (
                p.positive_id not in positives
                and p.positive_id not in negatives
                and not positives & set(p.negative_ids)
            ):
                members.append(p)
                positives.add(p.positive_id)
                negatives.update(p.negative_ids)
                if len(members) == size:
                    done.append(open_batches.pop(i)[0])
                break
        else:
            open_batches.append(([p], {p.positive_id}, set(p.negative_ids)))
    done += [members for members, _, _ in open_batches if len(members) > 1]
    return done


def _last_checkpoint(folder: Path | None, dataset_id: str) -> tuple[int, Path] | None:
    """(epochs done, folder) of the newest complete checkpoint trained on `dataset_id`
    (state.json is written last, so its presence marks a complete one)."""
    if folder is None:
        return None
    found = []
    for state_file in (folder / CHECKPOINTS).glob("epoch-*/state.json"):
        try:
            state = json.loads(state_file.read_text())
            if state.get("dataset_id") == dataset_id:
                found.append((int(state["epochs_done"]), state_file.parent))
        except (OSError, ValueError, KeyError):
            continue
    return max(found) if found else None


@dataclass
class TrainResult:
    # One record per epoch: {"epoch", "steps", "loss", "dev", "seconds"}.
    epochs: list[dict[str, Any]]
    # Why it stopped before the last epoch (None: it did not).
    stopped: str | None
    # Dev ranks of the model as it ends (None when no epoch ran in this call).
    ranks: list[int] | None


def train(
    model: Any,
    ds: data.Dataset,
    corpus: dict[str, str],
    prompts: dict[str, str],
    params: FineTuneParams,
    rec: Recorder,
    folder: Path | None = None,
    *,
    resume: tuple[int, Path] | None = None,
    prior_epochs: list[dict[str, Any]] | None = None,
    prior_steps: list[dict[str, Any]] | None = None,
    started: float | None = None,
    measure: Callable[[Any], list[int]] | None = None,
) -> TrainResult:
    """Train `model` in place with MultipleNegativesRankingLoss on `ds.train` (in-batch
    negatives plus `params.hard_negatives` mined ones), measuring the dev split after
    every epoch and checkpointing it under `folder` (None: no checkpoints). `resume`
    (from `_last_checkpoint`, `model` loaded from it) continues after its epoch with the
    optimizer and scheduler as they were; `prior_*` are the records of the run so far.
    Each epoch seeds torch with `seed + epoch`, so a resumed run trains its remaining
    epochs exactly like an uninterrupted one. `measure(model)` gives the dev ranks
    (default `dev_ranks` over `corpus`; the benchmark shares its corpus encoding)."""
    import torch
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.util import batch_to_device
    from transformers import get_linear_schedule_with_warmup

    loss_fn = MultipleNegativesRankingLoss(model)
    train_pairs = ds.train
    # Each epoch shuffles (and so packs) its batches with its own seed: their numbers
    # differ a little from epoch to epoch.
    plan = [batches(train_pairs, params.batch_size, params.seed + e) for e in range(params.epochs)]
    total = sum(len(b) for b in plan)
    if params.max_steps is not None:
        total = min(total, params.max_steps)
    optimizer = torch.optim.AdamW(model.parameters(), lr=params.learning_rate)
    scheduler = get_linear_schedule_with_warmup(
        optimizer, int(total * params.warmup_ratio), max(1, total)
    )
    epochs: list[dict[str, Any]] = []
    first_epoch, step = 0, 0
    if resume is not None:
        first_epoch = resume[0]
        state = torch.load(resume[1] / "trainer.pt", map_location=model.device)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step = int(state["step"])
        epochs = list(prior_epochs or [])[:first_epoch]
        # Steps are numbered from epoch 1: keep those of the epochs the checkpoint holds.
        rec.steps = [s for s in (prior_steps or []) if s["epoch"] <= first_epoch]
    deadline = (started or time.monotonic()) + params.max_minutes * 60
    stopped: str | None = None
    ranks: list[int] | None = None
    for epoch in range(first_epoch, params.epochs):
        t0, losses = time.monotonic(), []
        torch.manual_seed(params.seed + epoch)
        model.train()
        for batch in plan[epoch]:
            if step >= total:
                stopped = f"max_steps {params.max_steps} reached"
                break
            if time.monotonic() > deadline:
                stopped = f"max_minutes {params.max_minutes:g} reached"
                break
            k = min(params.hard_negatives, *(len(p.negative_ids) for p in batch))
            columns = [
                [p.question for p in batch],
                [corpus[p.positive_id] for p in batch],
                *([corpus[p.negative_ids[j]] for p in batch] for j in range(k)),
            ]
            with _truncated(model, params.max_seq_length):
                features = [
                    batch_to_device(
                        model.preprocess(texts, prompt=prompts["query" if i == 0 else "passage"]),
                        model.device,
                    )
                    for i, texts in enumerate(columns)
                ]
            loss = loss_fn(features, None)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            step += 1
            losses.append(float(loss.item()))
            rec.progress(
                0.05 + 0.85 * step / max(1, total),
                f"epoch {epoch + 1}/{params.epochs} step {step}/{total} loss {losses[-1]:.4f}",
            )
            if rec.step(epoch + 1, step, losses[-1]):
                rec.epoch_done(epochs)
                raise _Cancelled(f"cancelled at epoch {epoch + 1}, step {step}")
        if rec.cancelled():
            rec.epoch_done(epochs)
            raise _Cancelled(f"cancelled at the end of epoch {epoch + 1}, step {step}")
        ranks = measure(model) if measure else dev_ranks(model, ds.dev, corpus, prompts)
        dev = rank_metrics(ds.dev, ranks, len(corpus))
        record = {
            "epoch": epoch + 1,
            "steps": step,
            "loss": round(sum(losses) / len(losses), 5) if losses else None,
            "dev": dev,
            "seconds": round(time.monotonic() - t0, 2),
        }
        epochs.append(record)
        rec.epoch_done(epochs)
        rec.progress(
            0.05 + 0.85 * step / max(1, total),
            f"epoch {epoch + 1}/{params.epochs} done: loss {record['loss']}, dev recall@5 "
            f"{dev['recall@5']:.4f}, MRR@10 {dev['mrr@10']:.4f}",
        )
        if stopped:
            break
        if folder is not None:
            _checkpoint(model, optimizer, scheduler, folder, epoch + 1, step, ds.id)
    return TrainResult(epochs=epochs, stopped=stopped, ranks=ranks)


@contextlib.contextmanager
def _truncated(model: Any, tokens: int) -> Iterator[None]:
    """Tokenize at most `tokens` per text meanwhile (never more than the model's own)."""
    own = model.max_seq_length
    model.max_seq_length = min(own, tokens) if own else tokens
    try:
        yield
    finally:
        model.max_seq_length = own


def _checkpoint(
    model: Any,
    optimizer: Any,
    scheduler: Any,
    folder: Path,
    done: int,
    step: int,
    dataset_id: str,
) -> None:
    import torch

    target = folder / CHECKPOINTS / f"epoch-{done}"
    if target.exists():
        shutil.rmtree(target)
    model.save(str(target))
    torch.save(
        {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "step": step},
        target / "trainer.pt",
    )
    state = {"epochs_done": done, "step": step, "dataset_id": dataset_id}
    (target / "state.json").write_text(json.dumps(state))
    for older in (folder / CHECKPOINTS).glob("epoch-*"):
        if older != target:
            shutil.rmtree(older, ignore_errors=True)

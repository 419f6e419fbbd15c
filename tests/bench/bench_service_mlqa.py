"""The retrieval service per language, measured through the real service in-process: the
multilingual QA set (`tests/bench/data/mlqa`, 3,150 en/es/ru passages, one `.txt`
document each), 200 synthetic documents holding unique identifiers, and the reference-answer
QA documents of `tests/bench/data/qa.jsonl`, uploaded over the API (`POST /v1/kbs`, `POST
/v1/kbs/{kb}/documents` through a TestClient) into one knowledge base per embedding model
(redaction off, every other setting the service's default).

What it reports, per language, method and model:

- retrieval quality on the mlqa test split (recall@1/5/10, MRR@10, nDCG@10 over
  documents: a chunk's document is its passage, repeated documents count once);
- identifier queries: the share whose top-1 document holds the identifier, for the
  identifier alone and for a short question in the document's language containing it;
- the extractive answer chain (`plan_answer` + `run_answer`, generator `extractive`,
  default top_k, threshold and mode): the share of answers containing the reference answer
  (QA documents and identifier facts; NFKC, casefolded, whitespace collapsed, citation
  markers removed, matched on word boundaries), the share where some passage given to the
  generator holds it, and on mlqa (no answer spans) the share of answers citing a gold
  passage;
- `/retrieve` latency p50/p99 at top_k=10, in-process (`retrieval.search.retrieve`) and
  over HTTP through the TestClient (ASGI in-process, no socket), the models interleaved
  query by query so both see the same machine load, with ratios against the old default
  (all-MiniLM-L6-v2).

Methods: `dense` and `hybrid` are the API's modes; `lexical` is the service's own BM25 for
the live version (`rt.bm25`, what hybrid fuses), queried in-process since the API has no
lexical mode. No reranker is configured by default, so nothing is reranked.

The knowledge bases are kept under `data/bench-service-mlqa/<inputs digest>/` (git-ignored)
and reused while the documents and chunking settings are unchanged (`--fresh` rebuilds);
the first ingest's wall time is stored with them and reported.

    .venv/bin/python -m tests.bench.bench_service_mlqa \
        [--models multilingual-e5-small all-MiniLM-L6-v2] [--limit N] \
        [--only extractive ...] [--save-plans plans.jsonl] \
        [--json tests/bench/results/service_mlqa.json]

`--only` runs some sections (all by default); `--replay plans.jsonl [--replay-sets qa]`
re-scores the extractive candidates on plans saved by `--save-plans`, with no KB (about
a minute for the qa set).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import re
import shutil
import statistics
import time
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from core.config import OFFLINE_ENV

ROOT = Path(__file__).resolve().parents[2]
for _k, _v in OFFLINE_ENV.items():
    os.environ.setdefault(_k, _v)
# multilingual-e5-small is built on first use; share the checkout's build with the tests.
os.environ.setdefault("RAGOPS_MODEL_CACHE_DIR", str(ROOT / "data" / "models"))

from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from api.app import create_app  # noqa: E402
from core.catalog.models import Chunk  # noqa: E402
from core.kbs import get_kb  # noqa: E402
from index.versions import queryable_version  # noqa: E402
from retrieval.calibration import dense_score  # noqa: E402
from retrieval.chain import plan_answer, run_answer  # noqa: E402
from retrieval.fusion import (  # noqa: E402
    detect_language,
    fuse_scores,
    fusion_policy,
    names_identifier,
)
from retrieval.generators.base import Passage  # noqa: E402
from retrieval.generators.extractive import (  # noqa: E402
    ANSWER_CUE,
    MAX_SENTENCES,
    MIN_ANSWER_WORDS,
    RELATIVE_CUTOFF,
    SEMANTIC_WEIGHT,
    _content_words,
    answer_kind,
    holds_kind,
    split_sentences,
    word_weights,
)
from retrieval.search import (  # noqa: E402
    MAX_CANDIDATES,
    MIN_CANDIDATES,
    _bm25_candidates,
    _dense_candidates,
    retrieve,
)
from tests.bench import mlqa, qa  # noqa: E402
from tests.bench.bench_retrieval_mlqa import metrics  # noqa: E402
from tests.conftest import make_settings  # noqa: E402

CACHE = ROOT / "data" / "bench-service-mlqa"
BENCH_VERSION = 1  # bump when the way documents are built changes
DEFAULT_MODELS = ("multilingual-e5-small", "all-MiniLM-L6-v2")
BASELINE = "all-MiniLM-L6-v2"  # the old default embedding model
METHODS = ("dense", "lexical", "hybrid")
HTTP_METHODS = ("dense", "hybrid")
LANGUAGES = mlqa.LANGUAGES
QUALITY_TOP_K = 30  # chunks fetched to rank 10 distinct documents
LATENCY_TOP_K = 10
WARM_UP_QUERIES = 10  # per model and method, untimed
UPLOAD_BATCH = 100  # RAGOPS_MAX_REQUEST_FILES
SEED = 20240611
N_IDENTIFIER_DOCS = 200
DONT_KNOW = "i don't know"

# -- the documents ---------------------------------------------------------------------


@dataclass(frozen=True)
class Doc:
    filename: str
    language: str
    data: bytes
    kind: str  # "mlqa" | "identifier" | "qa"


@dataclass(frozen=True)
class IdentifierDoc:
    filename: str
    language: str
    identifier: str
    topic: str
    answer: str  # the value the document states for `topic`
    question: str  # "What does <identifier> say about the <topic>?" in `language`
    text: str


def passage_filename(passage_id: str) -> str:
    """`en:gnome:a11y-bouncekeys#intro/0` → `en%3Agnome%3Aa11y-bouncekeys%23intro%2F0.txt`."""
    return quote(passage_id, safe="") + ".txt"


def passage_document(p: mlqa.Passage) -> bytes:
    return (f"{p.title}\n\n{p.text}\n" if p.title else f"{p.text}\n").encode()


# Identifier shapes: (make from an RNG, what the document is called per language). The
# numbers come from narrow ranges so identifiers share prefixes (INV-2024-001…) and
# number parts (4821 in JIRA-4821 and ДОГ-2023/4821 would collide lexically): only the
# whole identifier tells documents apart.
_SHAPES: dict[str, tuple[Callable[[random.Random], str], dict[str, str]]] = {
    "inv": (
        lambda r: f"INV-{r.choice((2023, 2024))}-{r.randrange(100, 200):05d}",
        {"en": "Invoice", "es": "Factura", "ru": "Счёт"},
    ),
    "jira": (
        lambda r: f"JIRA-{r.randrange(4800, 4900)}",
        {"en": "Ticket", "es": "Incidencia", "ru": "Заявка"},
    ),
    "doctoken": (
        lambda r: f"DOCTOKEN_{r.randrange(0, 100):04d}",
        {"en": "Document", "es": "Documento", "ru": "Документ"},
    ),
    "sku": (
        lambda r: f"SKU {r.randrange(48200, 48300)}-{r.choice('ABC')}",
        {"en": "Product", "es": "Producto", "ru": "Товар"},
    ),
    "exp": (
        lambda r: f"EXP-2023-{r.randrange(400, 500):04d}",
        {"en": "Case file", "es": "Expediente", "ru": "Дело"},
    ),
    "dog": (
        lambda r: f"ДОГ-2023/{r.randrange(100, 200)}",
        {"en": "Contract", "es": "Contrato", "ru": "Договор"},
    ),
}
_SHAPES_BY_LANGUAGE = {
    "en": ("inv", "jira", "doctoken", "sku", "exp"),
    "es": ("exp", "inv", "jira", "sku", "doctoken"),
    "ru": ("dog", "jira", "doctoken", "inv", "sku"),
}
# Per topic: the fact sentence, and the question about it.
_FACTS = {
    "en": {
        "date": (
            "The delivery date recorded in {id} is {value}.",
            "What does {id} say about the delivery date?",
        ),
        "person": (
            "{id} names {value} as the person responsible.",
            "What does {id} say about the person responsible?",
        ),
        "amount": (
            "The total amount of {id} is {value} euros.",
            "What does {id} say about the total amount?",
        ),
        "place": (
            "Under {id}, the goods are kept in the {value} warehouse.",
            "What does {id} say about the warehouse?",
        ),
        "status": (
            "The current status of {id} is {value}.",
            "What does {id} say about the status?",
        ),
    },
    "es": {
        "date": (
            "La fecha de entrega registrada en {id} es el {value}.",
            "¿Qué dice {id} sobre la fecha de entrega?",
        ),
        "person": (
            "{id} designa a {value} como persona responsable.",
            "¿Qué dice {id} sobre la persona responsable?",
        ),
        "amount": (
            "El importe total de {id} es de {value} euros.",
            "¿Qué dice {id} sobre el importe total?",
        ),
        "place": (
            "Según {id}, la mercancía se guarda en el almacén de {value}.",
            "¿Qué dice {id} sobre el almacén?",
        ),
        "status": (
            "El estado actual de {id} es «{value}».",
            "¿Qué dice {id} sobre el estado?",
        ),
    },
    "ru": {
        "date": (
            "Дата доставки, указанная в {id}, — {value}.",
            "Что сказано в {id} о дате доставки?",
        ),
        "person": (
            "Ответственное лицо по {id} — {value}.",
            "Что сказано в {id} об ответственном лице?",
        ),
        "amount": (
            "Общая сумма по {id} составляет {value} рублей.",
            "Что сказано в {id} об общей сумме?",
        ),
        "place": (
            "Согласно {id}, товар хранится на складе в городе {value}.",
            "Что сказано в {id} о складе?",
        ),
        "status": ("Текущий статус {id} — «{value}».", "Что сказано в {id} о статусе?"),
    },
}
_MONTHS = {
    "en": "January February March April May June July August September October November "
    "December".split(),
    "es": "enero febrero marzo abril mayo junio julio agosto septiembre octubre noviembre "
    "diciembre".split(),
    "ru": "января февраля марта апреля мая июня июля августа сентября октября ноября "
    "декабря".split(),
}
_VALUES = {
    "en": {
        "person": [
            "Laura Benson",
            "Martin Okafor",
            "Priya Raman",
            "Daniel Whitaker",
            "Omar Haddad",
        ],
        "place": ["Leeds", "Bristol", "Glasgow", "Cardiff", "Norwich"],
        "status": ["approved", "pending", "rejected", "on hold"],
    },
    "es": {
        "person": [
            "Lucía Fernández",
            "Javier Ortega",
            "Marta Ruiz",
            "Diego Salazar",
            "Carmen Vidal",
        ],
        "place": ["Valencia", "Zaragoza", "Sevilla", "Bilbao", "Málaga"],
        "status": ["aprobado", "pendiente", "rechazado", "en revisión"],
    },
    "ru": {
        "person": ["Анна Кузнецова", "Игорь Смирнов", "Ольга Павлова", "Дмитрий Орлов"],
        "place": ["Казань", "Самара", "Пермь", "Тверь", "Омск"],
        "status": ["одобрен", "на рассмотрении", "отклонён", "приостановлен"],
    },
}
_FILLERS = {
    "en": [
        "This record was created by the procurement department.",
        "Please keep a copy of this record for your files.",
        "Any change to it must be approved by the finance team.",
        "The record was reviewed during the quarterly audit.",
        "Comments from the supplier are attached at the end.",
        "The original paper copy is archived at the head office.",
        "This record replaces an earlier draft that contained errors.",
        "Questions about it go to the regional office.",
    ],
    "es": [
        "Este registro fue creado por el departamento de compras.",
        "Conserve una copia de este registro en sus archivos.",
        "Cualquier cambio debe ser aprobado por el equipo de finanzas.",
        "El registro se revisó durante la auditoría trimestral.",
        "Los comentarios del proveedor se adjuntan al final.",
        "La copia original en papel se archiva en la sede central.",
        "Este registro sustituye a un borrador anterior con errores.",
        "Las consultas sobre él se dirigen a la oficina regional.",
    ],
    "ru": [
        "Эта запись создана отделом закупок.",
        "Сохраните копию этой записи в своём архиве.",
        "Любые изменения должны быть согласованы с финансовым отделом.",
        "Запись была проверена во время квартального аудита.",
        "Комментарии поставщика приложены в конце.",
        "Оригинал на бумаге хранится в головном офисе.",
        "Эта запись заменяет более ранний черновик с ошибками.",
        "Вопросы по ней направляйте в региональный офис.",
    ],
}


def _value(rng: random.Random, language: str, topic: str) -> str:
    if topic == "date":
        day, month = rng.randrange(1, 29), rng.randrange(12)
        name = _MONTHS[language][month]
        return f"{day} de {name}" if language == "es" else f"{day} {name}"
    if topic == "amount":
        amount = rng.randrange(1_000, 100_000)
        sep = {"en": ",", "es": ".", "ru": " "}[language]
        return f"{amount:,}".replace(",", sep)
    return rng.choice(_VALUES[language][topic])


def identifier_docs(n: int = N_IDENTIFIER_DOCS, seed: int = SEED) -> list[IdentifierDoc]:
    """`n` short records (en, es, ru in turn), each with a unique identifier in a heading
    and in three fact sentences (one per topic, the asked one among them), plus two
    ordinary sentences shared with other records; deterministic for a seed."""
    rng = random.Random(seed)
    seen: set[str] = set()
    out = []
    for i in range(n):
        language = LANGUAGES[i % len(LANGUAGES)]
        shape = rng.choice(_SHAPES_BY_LANGUAGE[language])
        make, kinds = _SHAPES[shape]
        identifier = make(rng)
        while identifier in seen:
            identifier = make(rng)
        seen.add(identifier)
        topics = rng.sample(sorted(_FACTS[language]), 3)
        values = {t: _value(rng, language, t) for t in topics}
        sentences = [
            _FACTS[language][t][0].format(id=identifier, value=values[t]) for t in topics
        ] + rng.sample(_FILLERS[language], 2)
        rng.shuffle(sentences)
        asked = topics[0]
        out.append(
            IdentifierDoc(
                filename=f"records/{language}-{i:03d}.txt",
                language=language,
                identifier=identifier,
                topic=asked,
                answer=values[asked],
                question=_FACTS[language][asked][1].format(id=identifier),
                text=f"{kinds[language]} {identifier}\n\n{' '.join(sentences)}\n",
            )
        )
    return out


@dataclass
class Inputs:
    docs: list[Doc]
    questions: list[mlqa.Question]  # mlqa test split
    qa_questions: list[qa.Question]  # qa.jsonl held-out split (reference answers)
    identifiers: list[IdentifierDoc]

    def digest(self, settings: Any) -> str:
        h = hashlib.sha256(f"v{BENCH_VERSION}".encode())
        h.update(f"{settings.chunk_size}/{settings.chunk_overlap}".encode())
        for d in self.docs:
            h.update(d.filename.encode() + b"\0" + hashlib.sha256(d.data).digest())
        return h.hexdigest()[:16]


def _per_language(items: Sequence[Any], limit: int | None) -> list[Any]:
    if limit is None:
        return list(items)
    return [x for lang in LANGUAGES for x in [i for i in items if i.language == lang][:limit]]


def build_inputs(limit: int | None = None) -> Inputs:
    """Everything (None), or per language: `limit` test questions with their relevant
    passages plus `limit` other passages, `limit` identifier records, and `limit` QA
    questions with their documents."""
    questions = _per_language(mlqa.load_questions("test"), limit)
    passages = mlqa.load_passages()
    if limit is not None:
        needed = {pid for q in questions for pid in q.relevant_ids}
        others = _per_language([p for p in passages if p.id not in needed], limit)
        passages = [p for p in passages if p.id in needed] + others
    qa_questions = _per_language(qa.load_questions("heldout"), limit)
    qa_docs = qa.load_documents()
    if limit is not None:
        qa_docs = [d for d in qa_docs if d["filename"] in {q.filename for q in qa_questions}]
    identifiers = _per_language(identifier_docs(), limit)
    docs = (
        [Doc(passage_filename(p.id), p.language, passage_document(p), "mlqa") for p in passages]
        + [Doc(i.filename, i.language, i.text.encode(), "identifier") for i in identifiers]
        + [Doc(d["filename"], d["language"], qa.render(d), "qa") for d in qa_docs]
    )
    return Inputs(docs, questions, qa_questions, identifiers)


# -- the service -----------------------------------------------------------------------


def kb_name(model: str) -> str:
    return "mlqa-" + re.sub(r"[^A-Za-z0-9]+", "-", model).strip("-").lower()


@contextmanager
def service(data_dir: Path) -> Iterator[TestClient]:
    settings = make_settings(data_dir, redaction_enabled=False)
    with TestClient(create_app(settings, background_warm_up=False)) as client:
        yield client


def ensure_kb(client: TestClient, data_dir: Path, model: str, docs: list[Doc]) -> dict[str, Any]:
    """The KB for `model` holding `docs`, ingested over the API unless a complete earlier
    ingest is recorded next to it; returns the ingest record (documents, chunks, seconds)."""
    name = kb_name(model)
    marker = data_dir / f"{name}.ingest.json"
    exists = client.get(f"/v1/kbs/{name}").status_code == 200
    if exists and marker.exists():
        return {**json.loads(marker.read_text()), "reused": True}
    if exists:  # an interrupted ingest: start over
        r = client.delete(f"/v1/kbs/{name}")
        assert r.status_code == 204, r.text
    body = {"name": name, "embedding_model": model, "redaction": {"enabled": False}}
    r = client.post("/v1/kbs", json=body)
    assert r.status_code == 201, r.text
    assert r.json()["reranker"] is None
    t0 = time.perf_counter()
    for i in range(0, len(docs), UPLOAD_BATCH):
        batch = docs[i : i + UPLOAD_BATCH]
        files = [("files", (d.filename, d.data, "application/octet-stream")) for d in batch]
        r = client.post(f"/v1/kbs/{name}/documents", files=files)
        assert r.status_code == 202, r.text
    counts: dict[str, int] = {}
    while True:
        r = client.get(f"/v1/kbs/{name}/documents", params={"limit": 1})
        counts = r.json()["counts"]
        if counts.get("indexed", 0) + counts.get("failed", 0) >= len(docs):
            break
        time.sleep(0.5)
    seconds = time.perf_counter() - t0
    rt = client.app.state.runtime
    with rt.db.session() as s:
        kb = get_kb(session=s, name_or_id=name)
        chunks = s.execute(select(func.count(Chunk.id)).where(Chunk.kb_id == kb.id)).scalar_one()
    record = {
        "documents": len(docs),
        "failed": counts.get("failed", 0),
        "chunks": chunks,
        "seconds": round(seconds, 1),
        "documents_per_s": round(len(docs) / seconds, 1),
    }
    marker.write_text(json.dumps(record) + "\n")
    return {**record, "reused": False}


class Searcher:
    """Ranked document filenames for a query, by method, through the service's functions."""

    def __init__(self, client: TestClient, model: str) -> None:
        self.client = client
        self.rt = client.app.state.runtime
        self.model = model
        self.name = kb_name(model)
        with self.rt.db.session() as s:
            self.kb = get_kb(session=s, name_or_id=self.name)

    def chunks(self, query: str, method: str, top_k: int) -> list[str]:
        """The filenames of the top_k chunks, best first."""
        if method == "lexical":  # what hybrid fuses: the live version's BM25
            with self.rt.db.session() as s:
                version = queryable_version(session=s, kb=self.kb, number=None)
            bm25 = self.rt.bm25.for_version(version)
            return [bm25.payloads[row]["filename"] for row, _ in bm25.search(query, top_k)]
        result = retrieve(self.rt, kb=self.kb, query=query, top_k=top_k, mode=method)
        return [hit.filename for hit in result.results]

    def documents(self, query: str, method: str, top_k: int = QUALITY_TOP_K) -> list[str]:
        return list(dict.fromkeys(self.chunks(query, method, top_k)))

    def http(self, query: str, method: str, top_k: int) -> list[str]:
        body = {"query": query, "mode": method, "top_k": top_k}
        r = self.client.post(f"/v1/kbs/{self.name}/retrieve", json=body)
        assert r.status_code == 200, r.text
        return [hit["filename"] for hit in r.json()["results"]]

    def embed_query(self, query: str) -> None:
        self.rt.embedder(self.model).encode([query], kind="query")


# -- measurements ----------------------------------------------------------------------


def _share(flags: Sequence[bool]) -> float | None:
    return round(sum(flags) / len(flags), 3) if flags else None


def _by_language(rows: Sequence[tuple[str, Any]], reduce: Callable[[list[Any]], Any]) -> dict:
    """{language: reduce(values), ..., "all": reduce(all values)} from (language, value)."""
    groups: dict[str, list[Any]] = defaultdict(list)
    for language, value in rows:
        groups[language].append(value)
        groups["all"].append(value)
    return {k: reduce(groups[k]) for k in (*LANGUAGES, "all") if groups[k]}


def retrieval_quality(searcher: Searcher, inputs: Inputs) -> dict[str, Any]:
    """mlqa test split, per method and language: document-level metrics over the top 10
    distinct documents of the top QUALITY_TOP_K chunks."""
    out = {}
    for method in METHODS:
        rows = []
        for q in inputs.questions:
            relevant = {passage_filename(pid) for pid in q.relevant_ids}
            judged = [f in relevant for f in searcher.documents(q.question, method)[:10]]
            rows.append((q.language, (judged, len(q.relevant_ids))))
        out[method] = _by_language(rows, lambda v: metrics([j for j, _ in v], [n for _, n in v]))
    return out


def identifier_queries(searcher: Searcher, inputs: Inputs) -> dict[str, Any]:
    """Per method and query form: the share whose top-1 document holds the identifier,
    and the first misses (query → the identifier of what ranked first)."""
    held = {i.filename: i.identifier for i in inputs.identifiers}
    out: dict[str, Any] = {}
    for method in METHODS:
        out[method] = {}
        for form in ("identifier", "question"):
            rows, misses = [], []
            for doc in inputs.identifiers:
                query = doc.identifier if form == "identifier" else doc.question
                top = (searcher.documents(query, method, top_k=10) or [None])[0]
                rows.append((doc.language, top == doc.filename))
                if top != doc.filename:
                    misses.append(f"{query} → {held.get(top, top)}")
            out[method][form] = _by_language(rows, _share)
            out[method][form]["misses"] = misses[:10]
    return out


_CITATIONS = re.compile(r"\[\d+(?:\s*[,;]\s*\d+)*\]")


def normalise(text: str) -> str:
    """NFKC, casefolded, citation markers removed, whitespace runs made one space."""
    text = _CITATIONS.sub(" ", unicodedata.normalize("NFKC", text).casefold())
    return " ".join(text.split())


def holds(text: str, answer: str) -> bool:
    """`answer` appears in `text` as whole words (after `normalise` on both): "53" is not
    found in "1853"."""
    pattern = r"(?<!\w)" + re.escape(normalise(answer)) + r"(?!\w)"
    return re.search(pattern, normalise(text)) is not None


@dataclass
class Case:
    language: str
    question: str
    answer: str | None  # None: mlqa (the whole passage answers)
    gold: frozenset[str]  # filenames of the documents that answer
    set: str


def answer_cases(inputs: Inputs) -> list[Case]:
    cases = [
        Case(q.language, q.question, q.answer, frozenset({q.filename}), "qa")
        for q in inputs.qa_questions
    ]
    cases += [
        Case(i.language, i.question, i.answer, frozenset({i.filename}), "identifier")
        for i in inputs.identifiers
    ]
    cases += [
        Case(
            q.language,
            q.question,
            None,
            frozenset(passage_filename(p) for p in q.relevant_ids),
            "mlqa",
        )
        for q in inputs.questions
    ]
    return cases


def extractive_answers(
    searcher: Searcher, inputs: Inputs, plans_out: Path | None = None
) -> dict[str, Any]:
    """The answer chain with the extractive generator (service defaults otherwise).

    Reference-answer sets (`qa`, `identifier`): `contains` = the answer holds the reference;
    `reachable` = some passage given to the generator holds it (retrieval and the relevance
    cut did their part); `contains_if_reachable` isolates the sentence choice. `mlqa` has
    no answer spans: `cites_gold` = the answer cites a gold passage, `gold_given` = a gold
    passage reached the generator, `cites_gold_if_given` isolates the sentence choice.

    `plans_out`: also write each case's plan (question, passages, the service's answer) as
    JSON lines, to re-score offline with `replay_candidates` (no KB, no retrieval).
    """
    rt, kb = searcher.rt, searcher.kb
    saved = []
    embedder = rt.embedder(searcher.model)
    rows: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    examples: dict[str, list[dict[str, Any]]] = defaultdict(list)
    candidates: dict[str, dict[str, list[tuple[str, bool]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    copy_agrees = []
    times = []
    for case in answer_cases(inputs):
        t0 = time.perf_counter()
        plan = plan_answer(rt, kb=kb, query=case.question, generator="extractive")
        result = run_answer(rt, plan)
        times.append(time.perf_counter() - t0)
        text = result["answer"]
        if plans_out is not None:
            saved.append(_plan_record(case, plan, text))
        if plan.passages:
            choice = SentenceChoice(embedder, plan.query, plan.passages, plan.max_tokens)
            for name, knobs in EXTRACTIVE_CANDIDATES.items():
                alt, alt_cited = choice.answer(**knobs)
                if name == "service (copy)":
                    copy_agrees.append(alt == text)
                ok = holds(alt, case.answer) if case.answer else bool(alt_cited & case.gold)
                candidates[name][case.set].append((case.language, ok))
        else:
            for name in EXTRACTIVE_CANDIDATES:
                candidates[name][case.set].append((case.language, False))
        given = {p.filename for p in plan.passages}
        cited = {c["filename"] for c in result["citations"]}
        row: dict[str, Any] = {
            "answered": not text.lower().startswith(DONT_KNOW),
            "gold_given": bool(given & case.gold),
        }
        if case.answer is not None:
            row["contains"] = holds(text, case.answer)
            row["reachable"] = any(holds(p.text, case.answer) for p in plan.passages)
            miss = row["reachable"] and not row["contains"]
        else:
            row["cites_gold"] = bool(cited & case.gold)
            miss = row["gold_given"] and not row["cites_gold"]
        rows[case.set].append((case.language, row))
        if miss and len(examples[f"{case.set}/{case.language}"]) < 5:
            examples[f"{case.set}/{case.language}"].append(
                {"question": case.question, "reference": case.answer, "answer": text}
            )
    out: dict[str, Any] = {}
    for name, values in rows.items():
        out[name] = _by_language(values, _answer_summary)
    out["misses_when_reachable"] = dict(examples)
    # Not the service: the same plans answered by candidate sentence scorers (`contains`
    # for qa and identifier, `cites_gold` for mlqa); "service (copy)" must match the
    # service's answers (`copy_agrees`).
    out["candidates"] = {
        name: {k: _by_language(v, _share) for k, v in sets.items()}
        for name, sets in candidates.items()
    }
    out["copy_agrees"] = _share(copy_agrees)
    out["latency_ms"] = _percentiles(times)
    if plans_out is not None:
        plans_out.parent.mkdir(parents=True, exist_ok=True)
        plans_out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in saved))
    return out


def _plan_record(case: Case, plan: Any, answer: str) -> dict[str, Any]:
    return {
        "set": case.set,
        "language": case.language,
        "question": case.question,
        "answer": case.answer,
        "gold": sorted(case.gold),
        "query": plan.query,
        "max_tokens": plan.max_tokens,
        "passages": [
            {"index": p.index, "filename": p.filename, "text": p.text} for p in plan.passages
        ],
        "service_answer": answer,
    }


def replay_candidates(
    path: Path, model: str, sets: Sequence[str] = ("qa", "identifier", "mlqa")
) -> dict[str, Any]:
    """EXTRACTIVE_CANDIDATES over plans saved by `extractive_answers(plans_out=...)`: the
    quick loop for trying a scorer (minutes on the qa set alone, no KB). Same shares as
    the section's `candidates`; "service (copy)" is checked against the saved answer."""
    from ingest.embed import Embedder  # noqa: PLC0415

    embedder = Embedder(model, device="cpu")
    embedder.warm_up()
    candidates: dict[str, dict[str, list[tuple[str, bool]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    copy_agrees = []
    for line in path.read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        if r["set"] not in sets:
            continue
        passages = [
            Passage(p["index"], f"c{p['index']}", "", p["filename"], p["text"], 0.0, 0.0)
            for p in r["passages"]
        ]
        gold = set(r["gold"])
        choice = SentenceChoice(embedder, r["query"], passages, r["max_tokens"])
        for name, knobs in EXTRACTIVE_CANDIDATES.items():
            alt, cited = choice.answer(**knobs) if passages else ("", set())
            if name == "service (copy)" and passages:
                copy_agrees.append(alt == r["service_answer"])
            ok = holds(alt, r["answer"]) if r["answer"] else bool(cited & gold)
            candidates[name][r["set"]].append((r["language"], ok))
    return {
        "candidates": {
            name: {k: _by_language(v, _share) for k, v in per_set.items()}
            for name, per_set in candidates.items()
        },
        "copy_agrees": _share(copy_agrees),
    }


def _answer_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"n": len(rows)}
    for key in ("answered", "gold_given", "contains", "reachable", "cites_gold"):
        if key in rows[0]:
            out[key] = _share([r[key] for r in rows])
    if "contains" in rows[0]:
        out["contains_if_reachable"] = _share([r["contains"] for r in rows if r["reachable"]])
    if "cites_gold" in rows[0]:
        out["cites_gold_if_given"] = _share([r["cites_gold"] for r in rows if r["gold_given"]])
    return out


def _percentiles(seconds: Sequence[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in seconds)
    if not ms:
        return {"n": 0}
    p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
    return {
        "n": len(ms),
        "p50": round(statistics.median(ms), 1),
        "p99": round(p99, 1),
        "mean": round(statistics.fmean(ms), 1),
    }


def latency(searchers: dict[str, Searcher], queries: list[str]) -> dict[str, Any]:
    """p50/p99 of one call per query at top_k=LATENCY_TOP_K; the models take turns on
    each query (in alternating order) so both see the same load. `embed_query` is the
    query embedding alone (part of dense and hybrid)."""
    calls: dict[str, Callable[[Searcher, str, str], Any]] = {
        "in_process": lambda s, q, m: s.chunks(q, m, LATENCY_TOP_K),
        "http": lambda s, q, m: s.http(q, m, LATENCY_TOP_K),
    }
    plan = [("in_process", m) for m in METHODS] + [("http", m) for m in HTTP_METHODS]
    plan.append(("in_process", "embed_query"))
    samples: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for i, query in enumerate(queries):
        for where, method in plan:
            turns = list(searchers.items())
            for model, searcher in turns if i % 2 else turns[::-1]:  # who goes first alternates
                t0 = time.perf_counter()
                if method == "embed_query":
                    searcher.embed_query(query)
                else:
                    calls[where](searcher, query, method)
                if i >= WARM_UP_QUERIES or len(queries) <= WARM_UP_QUERIES:
                    samples[(where, method, model)].append(time.perf_counter() - t0)
    out: dict[str, Any] = {"top_k": LATENCY_TOP_K, "queries": len(queries)}
    for (where, method, model), values in samples.items():
        out.setdefault(where, {}).setdefault(method, {})[model] = _percentiles(values)
    if BASELINE in searchers and len(searchers) > 1:
        ratios: dict[str, Any] = {}
        for where, method in plan:
            row = out[where][method]
            for model in searchers:
                if model != BASELINE:
                    ratios.setdefault(f"{model} / {BASELINE}", {})[f"{where} {method}"] = {
                        k: round(row[model][k] / row[BASELINE][k], 2) for k in ("p50", "p99")
                    }
        out["ratios"] = ratios
    return out


# -- candidate changes: not the service; measured here to size a recommendation -------

# Sentence choice: copies of `ExtractiveGenerator.select` with knobs changed.
# `min_words`: the full-sentence filter (the service's MIN_ANSWER_WORDS drops "Текущий
# статус X — «одобрен»." at 5 words); `idf`: query words weighted by how few candidate
# sentences hold them (the entity every sentence names counts for little); `kind`: the
# e5 prompt sentences are embedded with; `calibrated`: the cosine mapped through the
# model's `retrieval.calibration` anchors before mixing (e5's cosines sit in a band ~0.2
# wide, so the word-overlap term outweighs them; MiniLM is unchanged); `weight`: the
# semantic share of the score; `subject`: query words weighted by their IDF over the
# candidate sentences scaled to 0-1 (`extractive.word_weights`: the subject every
# sentence repeats weighs least), still divided by the number of query words (`idf` is
# an earlier variant, divided by the summed weights); `cue`: added when the sentence holds
# what the question word asks for (`extractive.answer_kind` and `holds_kind`).
_SERVICE_KNOBS: dict[str, Any] = {
    "min_words": MIN_ANSWER_WORDS,
    "idf": False,
    "kind": "passage",
    "calibrated": True,
    "weight": SEMANTIC_WEIGHT,
    "subject": True,
    "cue": ANSWER_CUE,
}
_BEFORE: dict[str, Any] = {"calibrated": False, "subject": False, "cue": 0.0}
EXTRACTIVE_CANDIDATES: dict[str, dict[str, Any]] = {
    name: {**_SERVICE_KNOBS, **changes}
    for name, changes in {
        "service (copy)": {},
        "before: raw cosine + word overlap, min_words=6": {**_BEFORE, "min_words": 6},
        "calibrated semantic + min_words=4": {**_BEFORE, "calibrated": True},
        "+ subject down-weighted (no cue)": {"cue": 0.0},
        "+ answer cue (no subject weights)": {"subject": False},
        "service, earlier idf lexical": {"subject": False, "idf": True},
        "service, cue 0.05": {"cue": 0.05},
        "service, cue 0.2": {"cue": 0.2},
        "service, min_words=6": {"min_words": 6},
        "service, raw cosine": {"calibrated": False},
        "service, semantic only": {"weight": 1.0},
    }.items()
}


class SentenceChoice:
    """The candidate sentences of one answer plan, embedded once, chosen under each
    candidate scorer as the service's `select` + `generate` would."""

    def __init__(self, embedder: Any, query: str, passages: Sequence[Any], max_tokens: int):
        self.model = embedder.ref
        self.cands = [(p, i, s) for p in passages for i, s in enumerate(split_sentences(p.text))]
        self.words = [_content_words(s) for _, _, s in self.cands]
        self.q_words = _content_words(query)
        self.query = query
        self.budget = max_tokens * 4
        self.semantic: dict[str, Any] = {}
        if self.cands and query.strip():
            question = embedder.encode([query], kind="query")[0]
            texts = [s for _, _, s in self.cands]
            self.semantic["passage"] = embedder.encode(texts) @ question
            # Sentences embedded as queries: only when a candidate asks (`kind`), since it
            # costs a second pass over every sentence.
            if any(k["kind"] == "query" for k in EXTRACTIVE_CANDIDATES.values()):
                if embedder.prompt("query") != embedder.prompt("passage"):
                    self.semantic["query"] = embedder.encode(texts, kind="query") @ question
                else:
                    self.semantic["query"] = self.semantic["passage"]

    def _semantic(self, kind: str, i: int, calibrated: bool) -> float:
        cosine = float(self.semantic[kind][i])
        return dense_score(self.model, cosine) if calibrated else cosine

    def answer(
        self,
        *,
        min_words: int,
        idf: bool,
        kind: str,
        calibrated: bool,
        weight: float,
        subject: bool,
        cue: float,
    ) -> tuple[str, set[str]]:
        if not self.semantic:
            return "", set()
        rows = [i for i, (_, _, s) in enumerate(self.cands) if len(s.split()) >= min_words]
        rows = rows or list(range(len(self.cands)))
        if subject:
            word_weight = word_weights(self.q_words, [self.words[i] for i in rows])
            total = len(self.q_words)
        elif idf:
            df = {w: sum(w in self.words[i] for i in rows) for w in self.q_words}
            word_weight = {w: math.log(1 + len(rows) / d) for w, d in df.items() if d}
            total = sum(word_weight.values())
        else:
            word_weight, total = dict.fromkeys(self.q_words, 1.0), len(self.q_words)
        lexical = [
            sum(word_weight.get(w, 0.0) for w in self.q_words & self.words[i]) / total
            if total
            else 0.0
            for i in rows
        ]
        asks = answer_kind(self.query)
        scores = [
            weight * self._semantic(kind, i, calibrated)
            + (1 - weight) * lex
            + (cue if cue and holds_kind(self.cands[i][2], asks, self.query) else 0.0)
            for i, lex in zip(rows, lexical, strict=True)
        ]
        order = sorted(range(len(rows)), key=lambda j: -scores[j])
        best = scores[order[0]]
        chosen, seen = [], set()
        for j in order[: MAX_SENTENCES * 3]:
            if len(chosen) == MAX_SENTENCES or scores[j] < best * RELATIVE_CUTOFF:
                break
            cand = self.cands[rows[j]]
            if cand[2].lower() in seen:
                continue
            seen.add(cand[2].lower())
            chosen.append(cand)
        parts, cited = [], set()
        for passage, _, sentence in sorted(chosen, key=lambda c: (c[0].index, c[1])):
            part = f"{sentence} [{passage.index}]"
            if parts and sum(len(p) + 1 for p in parts) + len(part) > self.budget:
                break
            parts.append(part)
            cited.add(passage.filename)
        return " ".join(parts), cited


# Hybrid: the model's fusion policy (method, per-language dense weight) with the dense
# weight capped at several values when the query names an identifier
# (`retrieval.fusion.names_identifier`). "service" is `policy.weight(language, query)`,
# what `retrieve` uses (its cap is IDENTIFIER_DENSE_WEIGHT); "no identifier cap" is the
# per-language weight alone, as before the cap was introduced.
FUSION_CANDIDATES: dict[str, float | None] = {
    "service": None,
    "no identifier cap": 1.0,
    "identifier: dense weight <= 0.35": 0.35,
    "identifier: dense weight <= 0.2": 0.2,
    "identifier: lexical only": 0.0,
}


class FusionProbe:
    """Hybrid search rebuilt from the service's own dense and BM25 lists, so the dense
    weight can change per query."""

    def __init__(self, searcher: Searcher) -> None:
        self.s = searcher
        self.policy = fusion_policy(searcher.model)

    def rankings(self, query: str, top_k: int) -> dict[str, list[str]]:
        """Documents best first, per FUSION_CANDIDATES entry."""
        rt, kb = self.s.rt, self.s.kb
        pool = min(MAX_CANDIDATES, max(MIN_CANDIDATES, 4 * top_k))  # as `retrieve`
        with rt.db.session() as s:
            version = queryable_version(session=s, kb=kb, number=None)
        _, dense = _dense_candidates(rt, version, rt.indexes.reader(version), query, pool, None)
        lexical = _bm25_candidates(rt, version, query, pool, None)
        names = {c.chunk_id: c.payload["filename"] for c in (*dense, *lexical)}
        dense_list = [(c.chunk_id, c.dense or 0.0) for c in dense]
        lexical_list = [(c.chunk_id, c.bm25 or 0.0) for c in lexical]
        language = detect_language(query)
        weight = self.policy.dense_weights.get(language, self.policy.dense_weights["other"])
        named = names_identifier(query)
        out = {}
        for name, cap in FUSION_CANDIDATES.items():
            if cap is None:
                w = self.policy.weight(language, query)
            else:
                w = min(weight, cap) if named else weight
            fused = fuse_scores(dense_list, lexical_list, w, self.policy.method)[:top_k]
            out[name] = list(dict.fromkeys(names[str(i)] for i, _ in fused))
        return out


def fusion_candidates(searcher: Searcher, inputs: Inputs) -> dict[str, Any]:
    """Identifier top-1 share and mlqa quality per candidate dense-weight rule; `agrees`
    is the share of queries where the rebuilt "service" fusion ranks exactly as
    `retrieve(mode="hybrid")` does (a check on the rebuild)."""
    probe = FusionProbe(searcher)
    ident: dict[str, list[tuple[str, bool]]] = defaultdict(list)
    quality: dict[str, list[tuple[str, Any]]] = defaultdict(list)
    agrees = []
    for doc in inputs.identifiers:
        for query in (doc.identifier, doc.question):
            ranked = probe.rankings(query, 10)
            agrees.append(ranked["service"] == searcher.documents(query, "hybrid", 10))
            for name, docs in ranked.items():
                ident[name].append((doc.language, bool(docs) and docs[0] == doc.filename))
    triggered = []
    for q in inputs.questions:
        relevant = {passage_filename(pid) for pid in q.relevant_ids}
        triggered.append((q.language, names_identifier(q.question)))
        for name, docs in probe.rankings(q.question, QUALITY_TOP_K).items():
            quality[name].append((q.language, ([f in relevant for f in docs[:10]], len(relevant))))
    return {
        "agrees": _share(agrees),
        "mlqa_questions_with_identifier": _by_language(triggered, lambda v: sum(v)),
        "identifier_top1": {k: _by_language(v, _share) for k, v in ident.items()},
        "mlqa": {
            k: _by_language(v, lambda rows: metrics([j for j, _ in rows], [n for _, n in rows]))
            for k, v in quality.items()
        },
    }


# -- the run ---------------------------------------------------------------------------


SECTIONS = ("retrieval", "identifiers", "fusion_candidates", "extractive", "latency")


def run(
    models: Sequence[str] = DEFAULT_MODELS,
    *,
    limit: int | None = None,
    cache: Path = CACHE,
    fresh: bool = False,
    only: Sequence[str] = SECTIONS,
    plans_out: Path | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Every section by default; `only` runs a subset (the others stay empty), and
    `plans_out` saves the extractive section's answer plans (see `replay_candidates`)."""
    started = time.perf_counter()
    inputs = build_inputs(limit)
    settings = make_settings(cache, redaction_enabled=False)
    data_dir = cache / inputs.digest(settings)
    if fresh and data_dir.exists():
        shutil.rmtree(data_dir)
    kinds: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for d in inputs.docs:
        kinds[d.kind][d.language] += 1
    results: dict[str, Any] = {
        "limit": limit,
        "models": list(models),
        "documents": {k: dict(v) for k, v in kinds.items()},
        "questions": {
            "mlqa test": _count(inputs.questions),
            "qa heldout": _count(inputs.qa_questions),
            "identifier records": _count(inputs.identifiers),
        },
        "settings": {
            "chunk_size": settings.chunk_size,
            "chunk_overlap": settings.chunk_overlap,
            "answer_top_k": settings.answer_top_k,
            "answer_score_threshold": settings.answer_score_threshold,
            "quality_top_k_chunks": QUALITY_TOP_K,
            "redaction": False,
            "reranker": None,
            "cpus": os.cpu_count(),
        },
        "data_dir": str(data_dir.relative_to(ROOT) if data_dir.is_relative_to(ROOT) else data_dir),
        "sections": list(only),
        "ingest": {},
        "retrieval": {},
        "identifiers": {},
        "fusion_candidates": {},
        "extractive": {},
        "seconds": {},
    }
    with service(data_dir) as client:
        searchers = {}
        for model in models:
            log(f"{model}: ingest {len(inputs.docs)} documents …")
            results["ingest"][model] = ensure_kb(client, data_dir, model, inputs.docs)
            log(f"  {results['ingest'][model]}")
            searchers[model] = Searcher(client, model)
        for model, searcher in searchers.items():
            for name, measure in (
                ("retrieval", retrieval_quality),
                ("identifiers", identifier_queries),
                ("fusion_candidates", fusion_candidates),
                ("extractive", lambda s, i: extractive_answers(s, i, plans_out)),
            ):
                if name not in only:
                    continue
                t0 = time.perf_counter()
                results[name][model] = measure(searcher, inputs)
                results["seconds"][f"{name} {model}"] = round(time.perf_counter() - t0, 1)
                log(f"{model}: {name} in {results['seconds'][f'{name} {model}']} s")
        if "latency" in only:
            t0 = time.perf_counter()
            results["latency"] = latency(searchers, [q.question for q in inputs.questions])
            results["seconds"]["latency"] = round(time.perf_counter() - t0, 1)
    results["seconds"]["total"] = round(time.perf_counter() - started, 1)
    return results


def _count(items: Sequence[Any]) -> dict[str, int]:
    return {lang: sum(i.language == lang for i in items) for lang in LANGUAGES}


def print_report(r: dict[str, Any]) -> None:
    print(f"\ndocuments {json.dumps(r['documents'])}; questions {json.dumps(r['questions'])}")
    for model, ing in r["ingest"].items():
        print(f"ingest {model}: {ing}")
    cols = (*LANGUAGES, "all")
    head = "".join(f"{c:>20}" for c in cols)
    print(f"\nmlqa test, R@1/R@10/MRR@10 (documents){head}")
    for model, methods in r["retrieval"].items():
        for method, t in methods.items():
            cells = "".join(
                "{:>8.3f}/{:.3f}/{:.3f}".format(t[c]["recall@1"], t[c]["recall@10"], t[c]["mrr@10"])
                if c in t
                else f"{'-':>20}"
                for c in cols
            )
            print(f"  {model:<24}{method:<12}{cells}")
    print(f"\nidentifier top-1 share (identifier / question){head}")
    for model, methods in r["identifiers"].items():
        for method, forms in methods.items():
            cells = "".join(
                f"{forms['identifier'].get(c, 0):>13.3f}/{forms['question'].get(c, 0):.3f}"
                for c in cols
            )
            print(f"  {model:<24}{method:<12}{cells}")
    print(f"\nextractive: contains reference (if reachable) / mlqa cites gold (if given){head}")
    for model, sets in r["extractive"].items():
        for name in ("qa", "identifier", "mlqa"):
            if name not in sets:
                continue
            a, b = ("contains", "contains_if_reachable")
            if name == "mlqa":
                a, b = ("cites_gold", "cites_gold_if_given")
            cells = "".join(
                f"{sets[name][c][a]:>13.3f}/{sets[name][c][b] or 0:.3f}"
                if c in sets[name]
                else f"{'-':>20}"
                for c in cols
            )
            print(f"  {model:<24}{name:<12}{cells}")
        print(f"  {model:<24}answer latency {sets['latency_ms']}")
    print(f"\ncandidate, not the service: hybrid identifier top-1 (all) | mlqa MRR@10{head}")
    for model, probe in r["fusion_candidates"].items():
        print(f"  {model}: rebuilt fusion agrees with the service on {probe['agrees']}")
        for name, shares in probe["identifier_top1"].items():
            mrr = "".join(f"{probe['mlqa'][name][c]['mrr@10']:>20.3f}" for c in cols)
            print(f"  {name:<36}{shares['all']:>6.3f} |{mrr}")
    print(f"\ncandidate, not the service: extractive contains / mlqa cites gold{head}")
    for model, sets in r["extractive"].items():
        print(f"  {model}: the copy agrees with the service on {sets['copy_agrees']}")
        for name, per_set in sets["candidates"].items():
            for set_name, shares in per_set.items():
                cells = "".join(f"{shares.get(c, 0):>20.3f}" for c in cols)
                print(f"  {name:<36}{set_name:<12}{cells}")
    if "latency" not in r:
        print(f"\nseconds: {json.dumps(r['seconds'])}")
        return
    lat = r["latency"]
    print(f"\nlatency p50/p99 ms, top_k={lat['top_k']}, {lat['queries']} queries")
    for where in ("in_process", "http"):
        for method, per_model in lat[where].items():
            cells = "  ".join(f"{m}: {v['p50']}/{v['p99']}" for m, v in per_model.items())
            print(f"  {where:<11}{method:<12}{cells}")
    for name, ratios in lat.get("ratios", {}).items():
        print(f"  {name}: " + ", ".join(f"{k} {v['p50']}x/{v['p99']}x" for k, v in ratios.items()))
    print(f"\nseconds: {json.dumps(r['seconds'])}")


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    parser.add_argument("--limit", type=int, default=None, help="per language (a quick run)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--cache", type=Path, default=CACHE, help="where the KBs are kept")
    parser.add_argument("--fresh", action="store_true", help="ingest again, ignoring the cache")
    parser.add_argument(
        "--only", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="sections to run"
    )
    parser.add_argument(
        "--save-plans", type=Path, default=None, help="extractive answer plans, JSON lines"
    )
    parser.add_argument(
        "--replay",
        type=Path,
        default=None,
        help="score EXTRACTIVE_CANDIDATES on saved plans (first of --models) and stop",
    )
    parser.add_argument("--replay-sets", nargs="+", default=["qa", "identifier", "mlqa"])
    args = parser.parse_args(argv)
    if args.replay:
        replayed = replay_candidates(args.replay, args.models[0], args.replay_sets)
        print(json.dumps(replayed, indent=1, ensure_ascii=False))
        return replayed
    results = run(
        args.models,
        limit=args.limit,
        cache=args.cache,
        fresh=args.fresh,
        only=args.only,
        plans_out=args.save_plans,
    )
    print_report(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    return results


if __name__ == "__main__":
    main()

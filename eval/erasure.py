"""Erase with a receipt (GDPR Art. 17): a document, or everything that mentions a data
subject's values, out of every store, and a receipt that says what went where.

Two phases. First, in one catalog transaction: find everything (the documents, the
answers that quoted them, their feedback, test cases and eval results that copied them,
audit events and jobs that name them) and delete or scrub it; the erase's row records the
ids still to clear outside the catalog. Then the stores outside it: vectors in every
index version (`IndexStore.erase`), raw bytes, this process's BM25 copies, and the
catalog's own write-ahead log. If the second phase fails, the row stays `failed` and the
next erase finishes it (`finish_failed`).

Each layer does its part (`ingest.erasure`, `retrieval.erasure`, here test cases and
eval results); `core.erasure` holds the matching and the receipt.

Example::

    receipt = erase_documents(rt, document_ids=[doc.id], key_id="k1")
    receipt["stores"]["vectors"]["versions"]  # one line per index version touched
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import audit
from core.catalog.models import Erasure, EvalResult, EvalRun, TestCase, TestSet, utcnow
from core.erasure import Needles, Receipt, mentions_any
from eval.services import EvalServices
from ingest.erasure import (
    DocumentTargets,
    collect_documents,
    documents_mentioning,
    erase_blobs,
    erase_document_rows,
    erase_snapshot_files,
    erase_vectors,
)
from retrieval.erasure import answers_to_erase, erase_answers, forget_lexical

log = logging.getLogger(__name__)

# A copied passage counts as the chunk's text when it holds the chunk's text (or the
# chunk holds it) and is at least this long; shorter texts must match exactly.
MIN_QUOTE_CHARS = 30


@dataclass(frozen=True)
class Scope:
    """Where an erase looks: these KBs; `global_sets` also test sets outside any KB
    (only a key over every KB may erase in those)."""

    kb_ids: list[str]
    global_sets: bool


def erase_documents(
    rt: EvalServices,
    *,
    document_ids: list[str],
    scope: Scope,
    key_id: str | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    """Erase these documents (the caller checked they exist in the scope's KBs)."""
    return _erase(rt, "document", document_ids, Needles(), scope, key_id, request_id)


def erase_subject(
    rt: EvalServices,
    *,
    values: list[str],
    scope: Scope,
    key_id: str | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    """Erase every document, answer, feedback, test case and eval result in the scope
    that mentions any of `values`, and scrub them from the audit log."""
    needles = Needles.of(values)
    document_ids = documents_mentioning(rt, needles=needles, kb_ids=scope.kb_ids)
    return _erase(rt, "subject", document_ids, needles, scope, key_id, request_id)


def _erase(
    rt: EvalServices,
    kind: str,
    document_ids: list[str],
    needles: Needles,
    scope: Scope,
    key_id: str | None,
    request_id: str | None,
) -> dict[str, Any]:
    finish_failed(rt)
    receipt = Receipt()
    with rt.db.session() as s:
        targets = collect_documents(session=s, document_ids=document_ids)
        kb_ids = sorted(set(scope.kb_ids) | set(targets.kb_ids))
        answer_ids = answers_to_erase(
            session=s, kb_ids=kb_ids, document_ids=targets.document_ids, needles=needles
        )
        case_ids = _cases_to_erase(s, targets, answer_ids, needles, scope)
        result_ids = _results_to_erase(s, targets, case_ids, needles, scope)
        erase_answers(session=s, answer_ids=answer_ids, receipt=receipt)
        _erase_cases(s, case_ids, receipt)
        _erase_results(s, result_ids, receipt)
        erase_document_rows(session=s, targets=targets, receipt=receipt)
        receipt.add("audit_events", ids=[str(i) for i in audit.scrub(session=s, needles=needles)])
        row = Erasure(
            kind=kind,
            kb_ids=kb_ids,
            key_id=key_id,
            request_id=request_id,
            targets={**targets.ids(), "text_hashes": targets.text_hashes},
            receipt=receipt.as_dict(),
        )
        s.add(row)
        s.flush()
        erasure_id = row.id
    _outside_catalog(rt, erasure_id, targets.ids() | {"text_hashes": targets.text_hashes})
    return get_receipt(rt, erasure_id)


def _outside_catalog(rt: EvalServices, erasure_id: str, targets: dict[str, list[str]]) -> None:
    receipt = Receipt()
    with rt.db.session() as s:
        row = s.get(Erasure, erasure_id)
        assert row is not None
        receipt.stores = dict(row.receipt)
    try:
        erase_vectors(
            rt,
            kb_ids=targets["kb_ids"],
            chunk_ids=targets["chunk_ids"],
            document_ids=targets["document_ids"],
            receipt=receipt,
        )
        erase_snapshot_files(
            rt, kb_ids=targets["kb_ids"], since=targets.get("since", []), receipt=receipt
        )
        erase_blobs(rt, shas=targets["shas"], receipt=receipt)
        forget_lexical(
            rt, kb_ids=targets["kb_ids"], text_hashes=targets["text_hashes"], receipt=receipt
        )
    except Exception as exc:
        log.exception("erase %s failed outside the catalog; the next erase retries", erasure_id)
        with rt.db.session() as s:
            row = s.get(Erasure, erasure_id)
            if row is not None:
                row.status, row.error = "failed", f"{type(exc).__name__}: {exc}"[:2000]
                row.receipt = receipt.as_dict()
        raise
    with rt.db.session() as s:
        row = s.get(Erasure, erasure_id)
        assert row is not None
        row.status, row.error, row.finished_at = "completed", None, utcnow()
        row.targets = {}  # nothing left to do: drop the ids of erased chunks too
        row.receipt = receipt.as_dict()
    receipt.add("catalog", **rt.db.flush_deleted())
    with rt.db.session() as s:
        row = s.get(Erasure, erasure_id)
        assert row is not None
        row.receipt = receipt.as_dict()


def finish_failed(rt: EvalServices) -> list[str]:
    """Retry the outside-the-catalog phase of erases that failed there; their ids."""
    with rt.db.session() as s:
        pending = [
            (row.id, dict(row.targets))
            for row in s.execute(select(Erasure).where(Erasure.status == "failed")).scalars()
        ]
    done = []
    for erasure_id, targets in pending:
        try:
            _outside_catalog(rt, erasure_id, targets)
            done.append(erasure_id)
        except Exception:  # noqa: BLE001 - logged; it stays failed and is retried again
            continue
    return done


def get_receipt(rt: EvalServices, erasure_id: str) -> dict[str, Any]:
    with rt.db.session() as s:
        row = s.get(Erasure, erasure_id)
        assert row is not None
        return receipt_of(row)


def receipt_of(row: Erasure) -> dict[str, Any]:
    return {
        "id": row.id,
        "kind": row.kind,
        "status": row.status,
        "kb_ids": row.kb_ids,
        "key_id": row.key_id,
        "request_id": row.request_id,
        "created_at": row.created_at,
        "finished_at": row.finished_at,
        "error": row.error,
        "stores": row.receipt,
    }


# -- test cases and eval results ----------------------------------------------------------


def _quotes(passages: list[Any], texts: list[str]) -> bool:
    for passage in passages:
        if not isinstance(passage, str):
            continue
        for text in texts:
            if passage == text:
                return True
            if len(text) >= MIN_QUOTE_CHARS and text in passage:
                return True
            if len(passage) >= MIN_QUOTE_CHARS and passage in text:
                return True
    return False


def _cases_to_erase(
    s: Session,
    targets: DocumentTargets,
    answer_ids: list[str],
    needles: Needles,
    scope: Scope,
) -> list[str]:
    """Test cases that reference the documents, quote their chunks or came from an
    erased answer (any test set: that data is the documents'), or mention a needle (test
    sets of the scope's KBs, and global ones when `scope.global_sets`)."""
    answers = set(answer_ids)
    found = []
    rows = s.execute(
        select(TestCase, TestSet.kb_id).join(TestSet, TestSet.id == TestCase.testset_id)
    )
    for case, kb_id in rows:
        copied = (
            bool(set(case.reference_doc_ids or []) & set(targets.document_ids))
            or (case.metadata_ or {}).get("answer_id") in answers
            or _quotes(case.reference_contexts or [], targets.texts)
        )
        in_scope = kb_id in scope.kb_ids if kb_id else scope.global_sets
        mentioned = in_scope and (
            needles.in_text(case.question)
            or needles.in_text(case.reference_answer)
            or needles.in_json(case.reference_contexts)
            or needles.in_json(case.metadata_)
        )
        if copied or mentioned:
            found.append(case.id)
    return found


def _results_to_erase(
    s: Session, targets: DocumentTargets, case_ids: list[str], needles: Needles, scope: Scope
) -> list[str]:
    """Per-question eval results of erased cases, or that retrieved the documents, or
    (in the scope's KBs) mention a needle."""
    cases = set(case_ids)
    found = []
    rows = s.execute(
        select(EvalResult, EvalRun.kb_id).join(EvalRun, EvalRun.id == EvalResult.run_id)
    )
    for result, kb_id in rows:
        copied = result.case_id in cases or mentions_any(result.retrieved, targets.document_ids)
        mentioned = kb_id in scope.kb_ids and (
            needles.in_text(result.question)
            or needles.in_text(result.answer)
            or needles.in_json(result.retrieved)
        )
        if copied or mentioned or _quotes([result.answer], targets.texts):
            found.append(result.id)
    return found


def _erase_cases(s: Session, case_ids: list[str], receipt: Receipt) -> None:
    testsets: dict[str, int] = {}
    for case_id in case_ids:
        case = s.get(TestCase, case_id)
        if case is None:
            continue
        testsets[case.testset_id] = testsets.get(case.testset_id, 0) + 1
        for result in s.execute(select(EvalResult).where(EvalResult.case_id == case_id)).scalars():
            s.delete(result)
        s.delete(case)
    for testset_id, removed in testsets.items():
        testset = s.get(TestSet, testset_id)
        if testset is not None:
            testset.case_count = max(0, testset.case_count - removed)
    receipt.add("test_cases", ids=case_ids, testsets=sorted(testsets))


def _erase_results(s: Session, result_ids: list[str], receipt: Receipt) -> None:
    for result_id in result_ids:
        result = s.get(EvalResult, result_id)
        if result is not None:
            s.delete(result)
    receipt.add("eval_results", ids=result_ids)

"""Versioned test sets: parse and validate uploads (JSONL, CSV or a JSON list of cases),
store them as immutable versions, and promote answer feedback into cases (generation
from a KB's documents by the LLM judge is `eval.generate`).

A case is `question` plus at least one reference: `reference_answer`,
`reference_contexts` (passages that answer it) or `reference_doc_ids` (document ids or
filenames; filenames are resolved in the evaluated KB at run time), with optional `tags`.
Bad input raises InvalidInput (HTTP 422) naming the line (or case) and the field.

Example::

    cases = parse_upload(data, filename="qa.jsonl")
    testset = create_testset(session=s, name="smoke", cases=cases)   # version n+1
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.catalog.models import Answer, AnswerFeedback, TestCase, TestSet
from core.errors import Conflict, InvalidInput, NotFound

FIELDS = ("question", "reference_answer", "reference_contexts", "reference_doc_ids", "tags")
_LIST_FIELDS = ("reference_contexts", "reference_doc_ids", "tags")
MAX_CASES = 10_000
# Errors listed in one 422 before "… and N more".
MAX_REPORTED_ERRORS = 10


@dataclass
class CaseIn:
    question: str
    reference_answer: str | None = None
    reference_contexts: list[str] = field(default_factory=list)
    reference_doc_ids: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


def _string_list(value: Any, where: str, name: str, errors: list[str]) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        errors.append(f"{where}: field {name!r} must be a list of strings")
        return []
    return [v for v in value if v.strip()]


def check_case(raw: Any, where: str, errors: list[str]) -> CaseIn | None:
    """One case from a decoded object; appends "<where>: field 'x' …" messages."""
    if not isinstance(raw, dict):
        errors.append(f"{where}: expected an object with a 'question' field")
        return None
    unknown = sorted(set(raw) - set(FIELDS) - {"metadata"})
    if unknown:
        errors.append(
            f"{where}: unknown field {unknown[0]!r}; allowed fields are {', '.join(FIELDS)}"
        )
        return None
    question = raw.get("question")
    if not isinstance(question, str) or not question.strip():
        errors.append(f"{where}: field 'question' is missing or empty")
        return None
    answer = raw.get("reference_answer")
    if answer is not None and not isinstance(answer, str):
        errors.append(f"{where}: field 'reference_answer' must be a string")
        return None
    before = len(errors)
    lists = {name: _string_list(raw.get(name), where, name, errors) for name in _LIST_FIELDS}
    if len(errors) > before:
        return None
    answer = answer.strip() if answer else None
    if not answer and not lists["reference_contexts"] and not lists["reference_doc_ids"]:
        errors.append(
            f"{where}: no reference; give 'reference_answer', 'reference_contexts' "
            "or 'reference_doc_ids'"
        )
        return None
    metadata = raw.get("metadata") or {}
    if not isinstance(metadata, dict):
        errors.append(f"{where}: field 'metadata' must be an object")
        return None
    return CaseIn(question=question.strip(), reference_answer=answer, metadata=metadata, **lists)


def _finish(cases: list[CaseIn], errors: list[str]) -> list[CaseIn]:
    if errors:
        more = len(errors) - MAX_REPORTED_ERRORS
        message = "; ".join(errors[:MAX_REPORTED_ERRORS])
        raise InvalidInput(message + (f"; and {more} more" if more > 0 else ""))
    if not cases:
        raise InvalidInput("the test set has no cases; send at least one question")
    if len(cases) > MAX_CASES:
        raise InvalidInput(f"the test set has {len(cases)} cases; the limit is {MAX_CASES}")
    return cases


def check_cases(raw_cases: Any) -> list[CaseIn]:
    """Cases from a JSON body's `cases` list; errors name `case N` (1-based)."""
    if not isinstance(raw_cases, list):
        raise InvalidInput("field 'cases' must be a list of case objects")
    errors: list[str] = []
    cases = [check_case(raw, f"case {i}", errors) for i, raw in enumerate(raw_cases, 1)]
    return _finish([c for c in cases if c is not None], errors)


def parse_jsonl(text: str) -> list[CaseIn]:
    errors: list[str] = []
    cases: list[CaseIn] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append(f"line {number}: not valid JSON ({exc.msg})")
            continue
        case = check_case(raw, f"line {number}", errors)
        if case is not None:
            cases.append(case)
    return _finish(cases, errors)


def _csv_list(value: str | None) -> Any:
    """A CSV cell holding a list: a JSON array, or values separated by '|'."""
    value = (value or "").strip()
    if not value:
        return []
    if value.startswith("["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return None  # reported by check_case as "must be a list of strings"
    return [v.strip() for v in value.split("|") if v.strip()]


def parse_csv(text: str) -> list[CaseIn]:
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    if "question" not in header:
        raise InvalidInput(f"line 1: the CSV header needs a 'question' column, got {header}")
    unknown = [h for h in header if h not in FIELDS]
    if unknown:
        raise InvalidInput(
            f"line 1: unknown column {unknown[0]!r}; allowed columns are {', '.join(FIELDS)}"
        )
    reader.fieldnames = header
    errors: list[str] = []
    cases: list[CaseIn] = []
    for row in reader:
        number = reader.line_num
        if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
            continue
        if None in row:
            errors.append(f"line {number}: more cells than header columns")
            continue
        raw: dict[str, Any] = {
            "question": row.get("question") or "",
            "reference_answer": (row.get("reference_answer") or "").strip() or None,
        }
        for name in _LIST_FIELDS:
            if name in row:
                raw[name] = _csv_list(row[name])
        case = check_case(raw, f"line {number}", errors)
        if case is not None:
            cases.append(case)
    return _finish(cases, errors)


def parse_upload(data: bytes, *, filename: str) -> list[CaseIn]:
    """JSONL (`.jsonl`, `.json`, `.ndjson`) or CSV (`.csv`) by file name."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{filename!r} is not UTF-8 text") from exc
    suffix = filename.lower().rsplit(".", 1)[-1] if "." in filename else ""
    if suffix == "csv":
        return parse_csv(text)
    if suffix in {"jsonl", "ndjson", "json"}:
        return parse_jsonl(text)
    raise InvalidInput(f"{filename!r}: upload a .jsonl or .csv file")


# /v1/testsets/generate/{job_id} is a generation job: a set of this name could not be read.
RESERVED_NAMES = frozenset({"generate"})


def check_name(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > 128 or "/" in name:
        raise InvalidInput("test set name must be 1-128 characters without '/'")
    if name in RESERVED_NAMES:
        raise InvalidInput(
            f"test set name {name!r} is reserved: /v1/testsets/{name} is a route of its own; "
            "choose another name"
        )
    return name


def create_testset(
    *,
    session: Session,
    name: str,
    cases: list[CaseIn],
    description: str = "",
    source: str = "upload",
    kb_id: str | None = None,
) -> TestSet:
    """Store `cases` as the next version of `name` (1 for a new name)."""
    name = check_name(name)
    latest = session.execute(
        select(func.max(TestSet.version)).where(TestSet.name == name)
    ).scalar_one()
    testset = TestSet(
        name=name,
        version=(latest or 0) + 1,
        description=description,
        source=source,
        kb_id=kb_id,
        case_count=len(cases),
    )
    session.add(testset)
    session.flush()
    for position, case in enumerate(cases, 1):
        values = asdict(case)
        values["metadata_"] = values.pop("metadata")
        session.add(TestCase(testset_id=testset.id, position=position, **values))
    session.flush()
    return testset


def list_testsets(*, session: Session) -> list[TestSet]:
    return list(session.execute(select(TestSet).order_by(TestSet.name, TestSet.version)).scalars())


def get_testset(*, session: Session, name: str, version: int | None = None) -> TestSet:
    """The given version, or the newest one."""
    query = select(TestSet).where(TestSet.name == name)
    if version is not None:
        query = query.where(TestSet.version == version)
    row = session.execute(query.order_by(TestSet.version.desc()).limit(1)).scalar_one_or_none()
    if row is None:
        if version is not None and get_versions(session=session, name=name):
            raise NotFound(f"test set {name!r} has no version {version}")
        raise NotFound(f"test set {name!r} not found; upload it with POST /v1/testsets")
    return row


def get_versions(*, session: Session, name: str) -> list[TestSet]:
    return list(
        session.execute(
            select(TestSet).where(TestSet.name == name).order_by(TestSet.version)
        ).scalars()
    )


def get_cases(*, session: Session, testset_id: str) -> list[TestCase]:
    return list(
        session.execute(
            select(TestCase).where(TestCase.testset_id == testset_id).order_by(TestCase.position)
        ).scalars()
    )


def feedback_cases(*, session: Session, kb_id: str) -> list[CaseIn]:
    """Thumbs-down answers with a correction, newest feedback per answer: the question,
    the correction as reference answer, and the passages the generator saw."""
    rows = session.execute(
        select(Answer, AnswerFeedback)
        .join(AnswerFeedback, AnswerFeedback.answer_id == Answer.id)
        .where(
            Answer.kb_id == kb_id,
            AnswerFeedback.rating < 0,
            AnswerFeedback.correction.is_not(None),
        )
        .order_by(AnswerFeedback.created_at)
    ).all()
    by_answer: dict[str, CaseIn] = {}
    for answer, feedback in rows:
        correction = (feedback.correction or "").strip()
        if not correction:
            continue
        by_answer[answer.id] = CaseIn(
            question=answer.query,
            reference_answer=correction,
            reference_contexts=[c["text"] for c in answer.contexts or [] if c.get("text")],
            tags=["feedback"],
            metadata={"answer_id": answer.id, "feedback_id": feedback.id},
        )
    return list(by_answer.values())


def testset_from_feedback(*, session: Session, name: str, kb_id: str, kb_name: str) -> TestSet:
    cases = feedback_cases(session=session, kb_id=kb_id)
    if not cases:
        raise Conflict(
            f"knowledge base {kb_name!r} has no thumbs-down answers with a correction; "
            "send feedback with rating -1 and a correction first"
        )
    return create_testset(
        session=session,
        name=name,
        cases=cases,
        description=f"from feedback in {kb_name}",
        source="feedback",
        kb_id=kb_id,
    )

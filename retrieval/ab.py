"""A/B tests on /answer: split a KB's answer traffic between arms (index version,
generator, prompt) by weight, sticky per user or session. This module routes (pure
assignment plus the running test's lookup); creating, stopping and reporting on tests
(feedback and eval scores per arm) is `eval.ab`.

Decisions (the README's "A/B tests" section says the same):

- **Arms are frozen at creation.** A field an arm leaves out is resolved then and stored:
  the live index version, the KB's default generator (else the server's), the KB's default
  prompt (else `default`), and a prompt name becomes `name@version`. A promotion or a
  settings change during the test therefore never moves an arm, and eval runs match an
  arm exactly. Two arms must differ in at least one of the three.
- **Weights are relative**: positive numbers, normalised by their sum (50/50, 1/1 and
  90/10 all work). Each arm owns a contiguous range of `BUCKETS` buckets.
- **Assignment is a pure function** of (test id, subject): sha256 → bucket in
  [0, BUCKETS) → the arm owning it. The subject is `user:<user_id>`, else
  `session:<session_id>` (the OpenAI façade's `user` is a user id). The same subject
  always gets the same arm in one test, and a new test reshuffles subjects. A request
  with neither is assigned at random and counts as an answer of its arm, but not as a
  subject (`sticky` is false).
- **Pinning bypasses.** A request that names an index version, a generator or a prompt
  is served as asked and is not counted in any arm.
- At most one running test per KB; a stopped test stays for its report and its name
  stays taken.

Example::

    test = create_test(rt, kb=kb, name="chunks-48", arms=[
        {"name": "control", "weight": 50},
        {"name": "small-chunks", "weight": 50, "index_version": 2},
    ])
    routed = route(rt, kb=kb, user_id="u-17")      # inside /answer
    plan = plan_answer(rt, kb=kb, query=q, **routed.plan_kwargs())
    routed.tag(plan)
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from core.catalog.models import (
    ABTest,
    KnowledgeBase,
)
from core.errors import Conflict, InvalidInput, NotFound
from index.versions import queryable_version
from retrieval.prompts import parse_ref

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from retrieval.chain import AnswerPlan
    from retrieval.services import RetrievalServices

BUCKETS = 10_000
RUNNING = "running"


# --- assignment (pure) ------------------------------------------------------------


@dataclass(frozen=True)
class Arm:
    """One frozen arm: every field resolved (see the module docstring)."""

    name: str
    weight: float
    index_version: int
    generator: str
    prompt: str  # "name@version"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Arm:
        return cls(
            name=str(data["name"]),
            weight=float(data["weight"]),
            index_version=int(data["index_version"]),
            generator=str(data["generator"]),
            prompt=str(data["prompt"]),
        )

    def as_dict(self) -> dict[str, Any]:
        weight: float | int = int(self.weight) if self.weight.is_integer() else self.weight
        return {
            "name": self.name,
            "weight": weight,
            "index_version": self.index_version,
            "generator": self.generator,
            "prompt": self.prompt,
        }

    @property
    def config(self) -> tuple[int, str, str]:
        return (self.index_version, self.generator, self.prompt)


def subject_key(user_id: str | None = None, session_id: str | None = None) -> str | None:
    """The stickiness key of a request: the user if known, else the session, else None.
    Prefixed, so user "7" and session "7" are different subjects."""
    if user_id:
        return f"user:{user_id}"
    if session_id:
        return f"session:{session_id}"
    return None


def bucket(test_id: str, subject: str) -> int:
    """sha256(test id, subject) → [0, BUCKETS). Including the test id means every test
    splits subjects independently of earlier tests."""
    digest = hashlib.sha256(f"{test_id}\x00{subject}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def bounds(weights: Sequence[float]) -> list[int]:
    """Each arm's exclusive upper bucket, by cumulative weight (the last is BUCKETS)."""
    total = float(sum(weights))
    if total <= 0 or any(w < 0 for w in weights):
        raise InvalidInput("arm weights must be non-negative with a positive total")
    out, running = [], 0.0
    for w in weights:
        running += w
        out.append(round(running / total * BUCKETS))
    out[-1] = BUCKETS
    return out


def pick(weights: Sequence[float], slot: int) -> int:
    """The index of the arm owning bucket `slot`."""
    for i, upper in enumerate(bounds(weights)):
        if slot < upper:
            return i
    raise AssertionError(f"bucket {slot} outside [0, {BUCKETS})")


def choose(test_id: str, arms: Sequence[Arm], subject: str) -> Arm:
    return arms[pick([a.weight for a in arms], bucket(test_id, subject))]


# --- routing /answer ------------------------------------------------------------


@dataclass(frozen=True)
class Routed:
    """What one /answer request is served with: the request's own choices, or an arm's."""

    index_version: int | None
    generator: str | None
    prompt: str | None
    prompt_version: int | None
    test_id: str | None = None
    test_name: str | None = None
    arm: str | None = None
    subject: str | None = None  # sha256 of the subject key, never the raw id

    @property
    def sticky(self) -> bool:
        """False for a request assigned at random (no user or session id)."""
        return self.subject is not None

    def plan_kwargs(self) -> dict[str, Any]:
        return {
            "index_version": self.index_version,
            "generator": self.generator,
            "prompt": self.prompt,
            "prompt_version": self.prompt_version,
        }

    def tag(self, plan: AnswerPlan) -> AnswerPlan:
        """Mark the plan so the recorded answer and the response name the arm."""
        plan.ab_test_id, plan.ab_test, plan.arm = self.test_id, self.test_name, self.arm
        plan.ab_subject = self.subject
        return plan


def running_test(*, session: Session, kb_id: str) -> ABTest | None:
    return session.execute(
        select(ABTest).where(ABTest.kb_id == kb_id, ABTest.status == RUNNING)
    ).scalar_one_or_none()


def route(
    rt: RetrievalServices,
    *,
    kb: KnowledgeBase,
    user_id: str | None = None,
    session_id: str | None = None,
    index_version: int | None = None,
    generator: str | None = None,
    prompt: str | None = None,
    prompt_version: int | None = None,
) -> Routed:
    """Serve the request as asked when it pins anything or no test runs; else by the arm
    its subject hashes to. An arm whose index version was retired meanwhile is a 409 that
    names the test (never a silent fallback to another configuration)."""
    asked = Routed(index_version, generator, prompt, prompt_version)
    if index_version is not None or generator or prompt:
        return asked
    with rt.db.session() as s:
        test = running_test(session=s, kb_id=kb.id)
        if test is None:
            return asked
        arms = [Arm.from_dict(a) for a in test.arms]
        key = subject_key(user_id, session_id)
        arm = choose(test.id, arms, key or secrets.token_hex(16))
        try:
            queryable_version(session=s, kb=kb, number=arm.index_version)
        except (NotFound, Conflict) as exc:
            raise Conflict(
                f"A/B test {test.name!r} arm {arm.name!r} serves index version "
                f"{arm.index_version}, which can no longer be queried ({exc.message}); stop "
                f"the test (POST /v1/kbs/{kb.name}/ab-tests/{test.name}/stop)"
            ) from exc
    name, version = parse_ref(arm.prompt)
    return Routed(
        index_version=arm.index_version,
        generator=arm.generator,
        prompt=name,
        prompt_version=version,
        test_id=test.id,
        test_name=test.name,
        arm=arm.name,
        subject=hashlib.sha256(key.encode()).hexdigest()[:32] if key else None,
    )


def public_fields(result: Mapping[str, Any]) -> dict[str, Any]:
    """`ab_test` and `arm` of an answer response, when a test served it."""
    return {k: result[k] for k in ("ab_test", "arm") if result.get(k)}

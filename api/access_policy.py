"""The access policy: for every route, the role it needs, where its KB comes from, and
the audit action of a write (None for a read, which is not audited).

`kb`:
- `path`: the `{kb}` path parameter; a KB the key may not see is 404 before the role is
  checked (no existence leak).
- `global`: deployment-wide (the model registry, prompts, creating a KB): the key must
  hold the role over every KB (`kbs: "*"`).
- `any`: the key's role is enough here; the route itself hides what lies in KBs the key
  may not see (listings filter, lookups by id answer 404, KBs named in the body are
  resolved with the key's view).

A route missing here is refused for every key (fail closed), and
`tests/integration/api/test_access_matrix.py` fails for it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from core.access import Role


class KbFrom(enum.StrEnum):
    PATH = "path"
    GLOBAL = "global"
    ANY = "any"


@dataclass(frozen=True)
class Policy:
    role: Role
    kb: KbFrom
    action: str | None = None


READ, REVIEW, OWN, ADMIN = Role.READER, Role.REVIEWER, Role.OWNER, Role.ADMIN
PATH, ALL, ANY = KbFrom.PATH, KbFrom.GLOBAL, KbFrom.ANY

POLICIES: dict[tuple[str, str], Policy] = {
    # Knowledge bases
    ("POST", "/v1/kbs"): Policy(OWN, ALL, "kb.create"),
    ("GET", "/v1/kbs"): Policy(READ, ANY),
    ("GET", "/v1/kbs/{kb}"): Policy(READ, PATH),
    ("PATCH", "/v1/kbs/{kb}"): Policy(OWN, PATH, "kb.update"),
    ("DELETE", "/v1/kbs/{kb}"): Policy(OWN, PATH, "kb.delete"),
    # Documents and ingestion
    ("POST", "/v1/kbs/{kb}/documents"): Policy(OWN, PATH, "document.upload"),
    ("GET", "/v1/kbs/{kb}/documents"): Policy(REVIEW, PATH),
    ("GET", "/v1/kbs/{kb}/documents/{doc_id}"): Policy(REVIEW, PATH),
    ("GET", "/v1/kbs/{kb}/documents/{doc_id}/chunks"): Policy(REVIEW, PATH),
    ("DELETE", "/v1/kbs/{kb}/documents/{doc_id}"): Policy(OWN, PATH, "document.delete"),
    ("POST", "/v1/kbs/{kb}/documents/{doc_id}/reprocess"): Policy(OWN, PATH, "document.reprocess"),
    ("GET", "/v1/kbs/{kb}/ingestion"): Policy(REVIEW, PATH),
    # Erasure (receipts are listed and read by the KB's owners)
    ("POST", "/v1/kbs/{kb}/documents/{doc_id}/erase"): Policy(OWN, PATH, "document.erase"),
    ("POST", "/v1/erasure"): Policy(OWN, ANY, "erasure.subject"),
    ("GET", "/v1/erasures"): Policy(OWN, ANY),
    ("GET", "/v1/erasures/{erasure_id}"): Policy(OWN, ANY),
    # Retrieval and answers
    ("POST", "/v1/kbs/{kb}/retrieve"): Policy(READ, PATH),
    ("POST", "/v1/retrieve"): Policy(READ, ANY),
    ("POST", "/v1/kbs/{kb}/answer"): Policy(READ, PATH),
    ("GET", "/v1/kbs/{kb}/answer-settings"): Policy(REVIEW, PATH),
    ("PUT", "/v1/kbs/{kb}/answer-settings"): Policy(OWN, PATH, "answer_settings.update"),
    ("GET", "/v1/answers/{answer_id}"): Policy(READ, ANY),
    ("POST", "/v1/answers/{answer_id}/feedback"): Policy(READ, ANY, "feedback.create"),
    # Index versions
    ("GET", "/v1/kbs/{kb}/versions"): Policy(REVIEW, PATH),
    ("POST", "/v1/kbs/{kb}/versions"): Policy(OWN, PATH, "version.build"),
    ("GET", "/v1/kbs/{kb}/versions/{number}"): Policy(REVIEW, PATH),
    ("POST", "/v1/kbs/{kb}/versions/{number}/promote"): Policy(OWN, PATH, "version.promote"),
    ("POST", "/v1/kbs/{kb}/rollback"): Policy(OWN, PATH, "version.rollback"),
    ("DELETE", "/v1/kbs/{kb}/versions/{number}"): Policy(OWN, PATH, "version.delete"),
    ("POST", "/v1/kbs/{kb}/versions/gc"): Policy(OWN, PATH, "version.gc"),
    # Snapshots of index versions (download: the vectors and payloads, so owners only)
    ("POST", "/v1/kbs/{kb}/versions/{number}/snapshots"): Policy(OWN, PATH, "version.snapshot"),
    ("GET", "/v1/kbs/{kb}/snapshots"): Policy(REVIEW, PATH),
    ("GET", "/v1/kbs/{kb}/snapshots/{snapshot_id}"): Policy(REVIEW, PATH),
    ("GET", "/v1/kbs/{kb}/snapshots/{snapshot_id}/download"): Policy(OWN, PATH),
    ("POST", "/v1/kbs/{kb}/versions/restore"): Policy(OWN, PATH, "version.restore"),
    # Prompts (shared by every KB)
    ("POST", "/v1/prompts"): Policy(OWN, ALL, "prompt.create"),
    ("GET", "/v1/prompts"): Policy(READ, ANY),
    ("GET", "/v1/prompts/{name}"): Policy(READ, ANY),
    ("GET", "/v1/prompts/{name}/{version}"): Policy(READ, ANY),
    # Test sets and evaluations
    ("POST", "/v1/testsets"): Policy(REVIEW, ANY, "testset.upload"),
    ("POST", "/v1/testsets/generate"): Policy(REVIEW, ANY, "testset.generate"),
    ("GET", "/v1/testsets/generate/{job_id}"): Policy(REVIEW, ANY),
    ("GET", "/v1/testsets"): Policy(REVIEW, ANY),
    ("GET", "/v1/testsets/{name}"): Policy(REVIEW, ANY),
    ("GET", "/v1/testsets/{name}/{version}"): Policy(REVIEW, ANY),
    ("POST", "/v1/testsets/{name}/from-feedback"): Policy(REVIEW, ANY, "testset.from_feedback"),
    ("POST", "/v1/evals"): Policy(REVIEW, ANY, "eval.start"),
    ("GET", "/v1/evals"): Policy(REVIEW, ANY),
    ("GET", "/v1/evals/{run_id}"): Policy(REVIEW, ANY),
    ("GET", "/v1/evals/{run_id}/results"): Policy(REVIEW, ANY),
    ("GET", "/v1/evals/{run_id}/report"): Policy(REVIEW, ANY),
    # The model registry (deployment-wide)
    ("GET", "/v1/models/registry"): Policy(READ, ANY),
    ("POST", "/v1/models/registry"): Policy(ADMIN, ALL, "model.register"),
    ("POST", "/v1/models/registry/{kind}/{name}/stage"): Policy(ADMIN, ALL, "model.stage"),
    ("GET", "/v1/models/registry/{kind}/{name}"): Policy(READ, ANY),
    ("PATCH", "/v1/models/registry/{kind}/{name}"): Policy(ADMIN, ALL, "model.update"),
    ("DELETE", "/v1/models/registry/{kind}/{name}"): Policy(ADMIN, ALL, "model.delete"),
    # Fine-tuning (registers a model: deployment-wide; the preview reads one KB's data)
    ("GET", "/v1/kbs/{kb}/finetune-dataset"): Policy(REVIEW, PATH),
    ("POST", "/v1/models/finetune"): Policy(ADMIN, ALL, "model.finetune"),
    ("GET", "/v1/models/finetune/{job_id}"): Policy(REVIEW, ANY),
    ("POST", "/v1/models/finetune/{job_id}/cancel"): Policy(ADMIN, ALL, "model.finetune_cancel"),
    # A/B tests, gates, promotion decisions
    ("POST", "/v1/kbs/{kb}/ab-tests"): Policy(OWN, PATH, "ab_test.start"),
    ("GET", "/v1/kbs/{kb}/ab-tests"): Policy(REVIEW, PATH),
    ("GET", "/v1/kbs/{kb}/ab-tests/{name}"): Policy(REVIEW, PATH),
    ("POST", "/v1/kbs/{kb}/ab-tests/{name}/stop"): Policy(OWN, PATH, "ab_test.stop"),
    ("POST", "/v1/kbs/{kb}/ab-tests/{name}/evaluate"): Policy(REVIEW, PATH, "ab_test.evaluate"),
    ("GET", "/v1/kbs/{kb}/quality-gate"): Policy(REVIEW, PATH),
    ("PUT", "/v1/kbs/{kb}/quality-gate"): Policy(REVIEW, PATH, "gate.update"),
    ("DELETE", "/v1/kbs/{kb}/quality-gate"): Policy(REVIEW, PATH, "gate.delete"),
    ("GET", "/v1/kbs/{kb}/decisions"): Policy(REVIEW, PATH),
    ("GET", "/v1/decisions/{decision_id}"): Policy(REVIEW, ANY),
    ("GET", "/v1/jobs/{job_id}"): Policy(READ, ANY),
    # Evaluation schedules
    ("GET", "/v1/schedules"): Policy(REVIEW, ANY),
    ("POST", "/v1/schedules"): Policy(REVIEW, ANY, "schedule.create"),
    ("GET", "/v1/schedules/{name}"): Policy(REVIEW, ANY),
    ("PATCH", "/v1/schedules/{name}"): Policy(REVIEW, ANY, "schedule.update"),
    ("DELETE", "/v1/schedules/{name}"): Policy(REVIEW, ANY, "schedule.delete"),
    ("POST", "/v1/schedules/{name}/run"): Policy(REVIEW, ANY, "schedule.run"),
    # API keys and the audit log
    ("POST", "/v1/keys"): Policy(ADMIN, ANY, "key.create"),
    ("GET", "/v1/keys"): Policy(ADMIN, ANY),
    ("GET", "/v1/keys/{key_id}"): Policy(ADMIN, ANY),
    ("POST", "/v1/keys/{key_id}/rotate"): Policy(ADMIN, ANY, "key.rotate"),
    ("DELETE", "/v1/keys/{key_id}"): Policy(ADMIN, ANY, "key.delete"),
    ("GET", "/v1/audit"): Policy(ADMIN, ANY),
    # The OpenAI and Dify façades (their own auth and error shapes, same policy)
    ("GET", "/v1/models"): Policy(READ, ANY),
    ("GET", "/v1/models/{model}"): Policy(READ, ANY),
    ("POST", "/v1/chat/completions"): Policy(READ, ANY),
    ("POST", "/retrieval"): Policy(READ, ANY),
}


def policy_for(method: str, route: str) -> Policy | None:
    return POLICIES.get(("GET" if method == "HEAD" else method, route))

"""The services evaluation, gates, the registry and rollouts use: everything retrieval
uses (eval answers questions through the same chain)."""

from __future__ import annotations

from typing import Protocol

from retrieval.services import RetrievalServices


class EvalServices(RetrievalServices, Protocol):
    pass

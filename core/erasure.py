"""What every layer's part of an erase shares: how values are matched and scrubbed, and
the receipt they fill in.

An erase (see `eval.erasure`) removes a document, or everything that mentions a data
subject's values (an e-mail, a name), from every store. Each layer removes what it owns
and adds a line per store to the `Receipt`: counts and ids, never the values.

Values match case-insensitively (casefolded) as substrings of any text, including the
strings inside JSON columns.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete
from sqlalchemy.orm import Session

from core.catalog.models import EmbeddingCacheEntry

ERASED = "[erased]"
# Shorter values would match far more than one person's data.
MIN_VALUE_LENGTH = 3
MAX_VALUE_LENGTH = 512
MAX_VALUES = 100


@dataclass(frozen=True)
class Needles:
    """Values to find, casefolded once."""

    values: tuple[str, ...] = ()

    @classmethod
    def of(cls, values: Iterable[str]) -> Needles:
        folded = {v.casefold() for v in values if v and not v.isspace()}
        return cls(tuple(sorted(folded)))

    def __bool__(self) -> bool:
        return bool(self.values)

    def in_text(self, text: str | None) -> bool:
        if not text or not self.values:
            return False
        folded = text.casefold()
        return any(v in folded for v in self.values)

    def in_json(self, value: Any) -> bool:
        """Whether any string (key or value) inside `value` mentions a needle."""
        if isinstance(value, str):
            return self.in_text(value)
        if isinstance(value, dict):
            return any(self.in_text(str(k)) or self.in_json(v) for k, v in value.items())
        if isinstance(value, list | tuple):
            return any(self.in_json(v) for v in value)
        return False

    def scrub_text(self, text: str) -> str:
        """`text` with every occurrence of a needle (any case) replaced by ERASED."""
        folded = text.casefold()
        if len(folded) != len(text):  # casefolding changed lengths: replace it whole
            return ERASED if self.in_text(text) else text
        spans: list[tuple[int, int]] = []
        for v in self.values:
            start = folded.find(v)
            while start >= 0:
                spans.append((start, start + len(v)))
                start = folded.find(v, start + 1)
        if not spans:
            return text
        out, pos = [], 0
        for start, stop in sorted(spans):
            if stop <= pos:
                continue
            out.append(text[pos : max(pos, start)])
            out.append(ERASED)
            pos = stop
        out.append(text[pos:])
        return "".join(s for s in out if s)

    def scrub_json(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.scrub_text(value)
        if isinstance(value, dict):
            return {self.scrub_text(str(k)): self.scrub_json(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.scrub_json(v) for v in value]
        return value


def mentions_any(value: Any, needles: Iterable[str]) -> bool:
    """Whether JSON `value` holds any of `needles` (ids, exact case) in a string."""
    wanted = [n for n in needles if n]
    if not wanted:
        return False
    if isinstance(value, str):
        return any(n in value for n in wanted)
    if isinstance(value, dict):
        return any(mentions_any(v, wanted) for v in value.values())
    if isinstance(value, list | tuple):
        return any(mentions_any(v, wanted) for v in value)
    return False


@dataclass
class Receipt:
    """Per store: what was found and removed (`count`, and `ids` where rows have ids),
    plus notes; `as_dict` is what the API returns and the catalog keeps."""

    stores: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, store: str, *, ids: Iterable[str] = (), count: int | None = None, **extra: Any):
        line = self.stores.setdefault(store, {"count": 0})
        listed = sorted(set(ids))
        if listed:
            line["ids"] = sorted(set(line.get("ids", [])) | set(listed))
        line["count"] += len(listed) if count is None else count
        for key, value in extra.items():
            if isinstance(value, list) and isinstance(line.get(key), list):
                line[key] = line[key] + value
            else:
                line[key] = value
        return line

    def as_dict(self) -> dict[str, Any]:
        return {k: self.stores[k] for k in sorted(self.stores)}


def delete_embedding_cache(*, session: Session, text_hashes: Iterable[str]) -> int:
    """Drop the cached vectors of these chunk texts under every model."""
    hashes = sorted(set(text_hashes))
    removed = 0
    for start in range(0, len(hashes), 500):
        result = session.execute(
            delete(EmbeddingCacheEntry).where(
                EmbeddingCacheEntry.text_hash.in_(hashes[start : start + 500])
            )
        )
        removed += result.rowcount or 0
    return removed

"""What both Qdrant engines share: point ids, the payload fields worth an index, the
translation of `index.base` filters into Qdrant conditions, and the checks of hybrid
queries (`index.sparse.HybridSearch`).

A server (qdrant-client, `index.qdrant_index`) and Qdrant Edge (qdrant-edge-py,
`index.edge_index`) speak the same query model under different class names, so
`build_filter` emits conditions through a `FilterVocabulary` that names those classes.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from index.base import check_filters, is_number

# Fixed forever: point ids are derived from chunk ids with it, so changing it would orphan
# every stored point.
POINT_NAMESPACE = uuid.UUID("6f1c1f0e-5a0b-4d55-9a43-2f0c7c1e9b21")

# Payload fields that ingest always writes with one type (`ingest.revisions.payloads_for`):
# strings, and the page number. A field with an index is filtered through it, so a value of
# another type is invisible to its filters; the page number is indexed as a float, which
# holds integers and floats alike (an integer index would hide a page 2.5).
KEYWORD_FIELDS = ("document_id", "revision_id", "filename", "section")
NUMBER_FIELDS = ("page_number",)

# A collection (or Edge shard directory) name: what `collection_name` produces.
NAME_RE = re.compile(r"[A-Za-z0-9_-]+")


def checked_top_k(top_k: Any) -> int:
    """`top_k` as an int; ValueError when it is not an integer."""
    if isinstance(top_k, bool) or not isinstance(top_k, int | np.integer):
        raise ValueError(f"top_k must be an integer, got {top_k!r}")
    return int(top_k)


def checked_candidates(candidates: Any, top_k: int) -> int:
    """The depth of each prefetch of a hybrid query: a positive integer, at least
    `top_k` (a fused list is drawn from its prefetches)."""
    if isinstance(candidates, bool) or not isinstance(candidates, int | np.integer):
        raise ValueError(f"candidates must be an integer, got {candidates!r}")
    if candidates < 1:
        raise ValueError(f"candidates must be at least 1, got {candidates}")
    return max(int(candidates), int(top_k))


def matches_nothing(top_k: int, filters: dict[str, Any] | None) -> bool:
    """Whether a checked query can only answer nothing: no hits asked for, or a filter
    that asks for "any of" an empty list."""
    if top_k <= 0:
        return True
    return bool(filters) and any(isinstance(v, list) and not v for v in filters.values())


def lexical_refused(collection: str) -> str:
    """Why a hybrid or lexical query cannot run on a collection without sparse vectors."""
    return (
        f"{collection!r} was created without BM25 sparse vectors (before hybrid search in "
        "the engine); search its text in-process (retrieval.bm25) or build a new version"
    )


def point_id(chunk_id: str) -> str:
    """Qdrant ids must be unsigned ints or UUIDs; chunk ids are arbitrary strings."""
    return str(uuid.uuid5(POINT_NAMESPACE, chunk_id))


@dataclass(frozen=True)
class FilterVocabulary:
    """How one Qdrant API spells the conditions `build_filter` emits.

    - `field(key, match=..., range=...)`: a condition on one payload key;
    - `match_value(v)`: equality with a string or a boolean;
    - `match_any(values)`: any of a list of strings;
    - `number_range(gt=, gte=, lt=, lte=)` / `date_range(...)`: ranges of numbers / ISO dates;
    - `filter(must=..., should=...)`: all of / any of.
    """

    field: Callable[..., Any]
    match_value: Callable[[str | bool], Any]
    match_any: Callable[[list[str]], Any]
    number_range: Callable[..., Any]
    date_range: Callable[..., Any]
    filter: Callable[..., Any]


def quoted_key(key: str) -> str:
    """Keys are literal (`a.b` is the key "a.b"); Qdrant reads an unquoted key with a dot or
    bracket as a path, so any key beyond plain characters is quoted."""
    return key if NAME_RE.fullmatch(key) else f'"{key}"'


def _equals(words: FilterVocabulary, key: str, value: Any) -> Any:
    """One value with `index.base.same_value` semantics. Strings and booleans match as
    typed values. Numbers become a one-point range: MatchValue refuses floats and matches
    an integer against integers only, while a range compares any number (never a boolean)
    numerically, as FAISS does; `check_filters` keeps integers within +-2**53, where that
    comparison (64-bit floats in Qdrant) is exact."""
    if isinstance(value, str | bool):
        return words.field(key, match=words.match_value(value))
    return words.field(key, range=words.number_range(gte=value, lte=value))


def _condition(words: FilterVocabulary, key: str, want: Any) -> Any:
    """One checked filter entry as Qdrant conditions, with the semantics of
    `index.base.matches` (Qdrant matches a list payload by element, as `matches` does)."""
    field = quoted_key(key)
    if isinstance(want, dict):
        if all(is_number(b) for b in want.values()):
            return words.field(field, range=words.number_range(**want))
        # ISO dates: Qdrant compares RFC 3339 payload strings as date-times (UTC).
        return words.field(field, range=words.date_range(**want))
    if not isinstance(want, list):
        return _equals(words, field, want)
    # MatchAny takes one list of strings; booleans and numbers become an OR of conditions.
    strs = list(dict.fromkeys(v for v in want if isinstance(v, str)))
    parts: list[Any] = []
    if strs:
        parts.append(words.field(field, match=words.match_any(strs)))
    parts += [_equals(words, field, v) for v in want if not isinstance(v, str)]
    return parts[0] if len(parts) == 1 else words.filter(should=parts)


def build_filter(filters: dict[str, Any] | None, words: FilterVocabulary) -> Any | None:
    """Filters as Qdrant conditions, all of which must hold: strings and booleans →
    MatchValue, numbers → a one-point range, a list → MatchAny / an OR (any of these), a
    range object → a number or date-time range. ValueError for a shape `check_filters`
    refuses; an empty list is the caller's to handle (it matches nothing)."""
    filters = check_filters(filters)
    if not filters:
        return None
    return words.filter(must=[_condition(words, k, v) for k, v in filters.items()])

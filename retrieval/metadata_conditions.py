"""Dify's metadata conditions (the External Knowledge API's `metadata_condition`) as a
pure predicate over a chunk's metadata, plus the part of them an index can pre-filter.

Dify sends `{"logical_operator": "and" | "or", "conditions": [{"name",
"comparison_operator", "value"}]}` (`MetadataCondition.model_dump()`; automatic metadata
filtering joins the conditions with "or"). The semantics follow Dify's own knowledge
bases (`DatasetRetrieval.process_metadata_filter_func`, SQL over the documents' JSON
metadata on PostgreSQL), so a workflow behaves the same against either:

| operator | holds when the field's value … |
|---|---|
| `contains` / `not contains` | has / has not the value as a substring |
| `start with` / `end with` | starts / ends with the value |
| `is`, `=` / `is not`, `≠` | equals / does not equal the value |
| `in` / `not in` | equals one / none of the values (a string value is split on commas) |
| `>`, `<`, `≥`, `≤` (`>=`, `<=`) | compares so with the value |
| `before` / `after` | is earlier / later than the value (the same as `<` / `>`) |
| `empty` / `not empty` | is / is not missing, null, `""` or `[]` (`value` is ignored) |

- Strings compare case-sensitively (PostgreSQL's `=` and `LIKE`, which Dify uses).
- Equality: strings equal strings exactly; when either side is a number, both are
  compared as numbers, a numeric string counting as its number (`2023` is `"2023"`, but
  `"2023"` is not `"2023.0"`); booleans equal booleans and the strings `"true"` and
  `"false"`. Substring operators see numbers and booleans as their JSON text.
- Order (`>` … `≤`, `before`, `after`): numbers and numeric strings compare as numbers;
  otherwise both sides must be instants: an ISO 8601 date or date-time (no zone means
  UTC) or a number of Unix seconds (Dify's time metadata), so `before 1700000000` works
  on `"2023-01-10"`. Anything else (`"abc" > 3`) does not match.
- A field whose value is a list holds a positive operator when any element does, and a
  negated one (`not contains`, `is not`, `≠`, `not in`) when no element does.
- A field that is missing or null matches no operator but `empty` (SQL's NULL, as in
  Dify: `is not "draft"` skips documents without the field).
- A `value` that is a list means any of its values for every operator (`is ["a", "b"]`
  is `in`); nulls inside it are dropped; an empty list matches nothing (its negation
  everything with a value).
- A condition whose `value` is null is ignored (no filter), except `empty`/`not empty`;
  `metadata_condition: null`, `conditions: null` or only ignored conditions: no filter.
  A `logical_operator` of null means "and".
- `name` may be a list of fields: one condition per field, joined by the request's
  `logical_operator`.
Errors are `InvalidInput` (the Dify route answers HTTP 400, `error_code` 400): an
operator outside the table (the message names it and the supported ones), a
`logical_operator` other than and/or, a name that is not a non-empty string (or list of
them), or a value that is an object or holds lists/objects.

Example::

    where = parse_metadata_condition(
        {"logical_operator": "or", "conditions": [
            {"name": "topic", "comparison_operator": "is", "value": "Cooking"},
            {"name": "author", "comparison_operator": "start with", "value": "Ana"}]}
    )
    where({"topic": "Geology", "author": "Ana Ruiz"})  # True
    filters, rest = split_for_index(where)  # None, where: "or" needs the predicate
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from core.errors import InvalidInput
from index.base import check_filters

# Dify's SupportedComparisonOperator, in its order.
OPERATORS: tuple[str, ...] = (
    "contains",
    "not contains",
    "start with",
    "end with",
    "is",
    "is not",
    "empty",
    "not empty",
    "in",
    "not in",
    "=",
    "≠",
    ">",
    "<",
    "≥",
    "≤",
    "before",
    "after",
)
# ASCII spellings Dify's own filter code also accepts.
ALIASES = {">=": "≥", "<=": "≤"}
_NEGATED = {"not contains": "contains", "is not": "is", "≠": "=", "not in": "in"}
_EMPTINESS = ("empty", "not empty")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_INTEGER = re.compile(r"[+-]?\d+")
_SCALAR = (str, int, float, bool)


@dataclass(frozen=True)
class Condition:
    """One field, one operator (canonical spelling), the wanted values (any of)."""

    name: str
    operator: str
    values: tuple[Any, ...] = ()

    def __call__(self, metadata: Mapping[str, Any]) -> bool:
        have = metadata.get(self.name)
        if self.operator == "empty":
            return _is_empty(have)
        if self.operator == "not empty":
            return not _is_empty(have)
        if have is None:
            return False
        base = _NEGATED.get(self.operator, self.operator)
        haves = have if isinstance(have, list | tuple) else [have]
        hit = any(_holds(base, h, w) for h in haves if h is not None for w in self.values)
        return hit if base == self.operator else not hit


@dataclass(frozen=True)
class MetadataFilter:
    """Conditions joined by "and" or "or"; call it with a chunk's metadata."""

    logical_operator: str
    conditions: tuple[Condition, ...]

    def __call__(self, metadata: Mapping[str, Any]) -> bool:
        results = (condition(metadata) for condition in self.conditions)
        return all(results) if self.logical_operator == "and" else any(results)


def parse_metadata_condition(raw: Mapping[str, Any] | None) -> MetadataFilter | None:
    """The predicate for Dify's `metadata_condition`, or None when it filters nothing.
    Raises InvalidInput (see the module docstring)."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise InvalidInput(f"metadata_condition must be an object or null, got {raw!r}")
    logical = raw.get("logical_operator") or "and"
    if logical not in ("and", "or"):
        raise InvalidInput(
            f'metadata_condition: logical_operator must be "and" or "or", got {logical!r}'
        )
    items = raw.get("conditions") or []
    if not isinstance(items, list):
        raise InvalidInput("metadata_condition: conditions must be a list or null")
    conditions: list[Condition] = []
    for item in items:
        if not isinstance(item, Mapping):
            raise InvalidInput(f"metadata_condition: a condition must be an object, got {item!r}")
        operator = _operator(item.get("comparison_operator"))
        names = _names(item.get("name"))
        value = item.get("value")
        if operator in _EMPTINESS:
            values: tuple[Any, ...] = ()
        elif value is None:
            continue  # Dify applies no filter for a condition without a value
        else:
            values = _values(operator, value)
        conditions += [Condition(name, operator, values) for name in names]
    return MetadataFilter(logical, tuple(conditions)) if conditions else None


def split_for_index(
    where: MetadataFilter | None,
) -> tuple[dict[str, Any] | None, MetadataFilter | None]:
    """(index filters, the rest as a predicate) with `filters AND rest == where`.

    Only conditions whose index filter means exactly the same go to the index (see
    `index.base.matches`): in an "and" (or a single condition), `is`/`=`/`in` on strings
    that are neither numeric nor "true"/"false", one per field. Everything else (or,
    negation, substrings, emptiness, numbers, dates) stays in the predicate."""
    if where is None:
        return None, None
    if where.logical_operator == "or" and len(where.conditions) > 1:
        return None, where
    filters: dict[str, Any] = {}
    rest: list[Condition] = []
    for condition in where.conditions:
        wanted = _index_filter(condition)
        if wanted is None or condition.name in filters:
            rest.append(condition)
        else:
            filters[condition.name] = wanted
    return filters or None, MetadataFilter("and", tuple(rest)) if rest else None


def _index_filter(condition: Condition) -> Any | None:
    if condition.operator not in ("is", "=", "in") or not condition.values:
        return None
    if not all(_plain_string(v) for v in condition.values):
        return None
    wanted = condition.values[0] if len(condition.values) == 1 else list(condition.values)
    try:
        check_filters({condition.name: wanted})
    except ValueError:  # a key the index cannot address: the predicate handles it
        return None
    return wanted


def _plain_string(value: Any) -> bool:
    """A string whose equality means the same in the index and here."""
    return isinstance(value, str) and _number(value) is None and value not in ("true", "false")


def _operator(raw: Any) -> str:
    if isinstance(raw, str) and raw in OPERATORS:
        return raw
    if isinstance(raw, str) and raw in ALIASES:
        return ALIASES[raw]
    raise InvalidInput(
        f"metadata_condition: operator {raw!r} is not supported; use one of: "
        + ", ".join(OPERATORS)
    )


def _names(raw: Any) -> list[str]:
    names = raw if isinstance(raw, list) else [raw]
    if not names or not all(isinstance(n, str) and n for n in names):
        raise InvalidInput(
            f"metadata_condition: name must be a metadata field name or a non-empty list "
            f"of them, got {raw!r}"
        )
    return names


def _values(operator: str, raw: Any) -> tuple[Any, ...]:
    if isinstance(raw, str) and operator in ("in", "not in"):
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    values = raw if isinstance(raw, list) else [raw]
    if not all(v is None or isinstance(v, _SCALAR) for v in values):
        raise InvalidInput(
            f"metadata_condition: value for {operator!r} must be a string, number, boolean "
            f"or a list of them, got {raw!r}"
        )
    return tuple(v for v in values if v is not None)


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, list | tuple) and not value)


def _holds(operator: str, have: Any, want: Any) -> bool:
    if operator in ("is", "=", "in"):
        return _equal(have, want)
    if operator in ("contains", "start with", "end with"):
        text, part = _text(have), _text(want)
        if text is None or part is None:
            return False
        if operator == "contains":
            return part in text
        return text.startswith(part) if operator == "start with" else text.endswith(part)
    order = _compare(have, want)
    if order is None:
        return False
    if operator in (">", "after"):
        return order > 0
    if operator in ("<", "before"):
        return order < 0
    return order >= 0 if operator == "≥" else order <= 0


def _equal(have: Any, want: Any) -> bool:
    if isinstance(have, bool) or isinstance(want, bool):
        return _text(have) == _text(want)
    if isinstance(have, str) and isinstance(want, str):
        return have == want
    a, b = _number(have), _number(want)
    return a is not None and b is not None and a == b


def _text(value: Any) -> str | None:
    """A scalar as its JSON text (what Dify's SQL compares)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return None


def _number(value: Any) -> int | float | None:
    """A finite number, or a string spelling one; None otherwise (booleans included)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        text = value.strip()
        if _INTEGER.fullmatch(text):
            try:
                return int(text)
            except ValueError:  # over Python's 4,300-digit limit: no usable number
                return None
        number = float(text)
        return number if math.isfinite(number) else None
    return None


def _instant(value: Any) -> datetime | None:
    """Unix seconds or an ISO 8601 date/date-time (no zone: UTC) as an aware datetime."""
    number = _number(value)
    if number is not None:
        try:
            return datetime.fromtimestamp(number, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _compare(have: Any, want: Any) -> int | None:
    """-1, 0 or 1 as numbers, else as instants; None when they do not compare."""
    a: Any = _number(have)
    b: Any = _number(want)
    if a is None or b is None:
        a, b = _instant(have), _instant(want)
        if a is None or b is None:
            return None
    return (a > b) - (a < b)

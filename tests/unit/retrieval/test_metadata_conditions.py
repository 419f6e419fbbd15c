"""Dify's metadata conditions as a predicate: every operator, and/or, nulls, types, and
the split between what the index pre-filters and what stays a predicate. Inputs are the
shapes Dify sends (`MetadataCondition.model_dump()`)."""

import pytest

from core.errors import InvalidInput
from index.base import matches
from retrieval.metadata_conditions import (
    OPERATORS,
    parse_metadata_condition,
    split_for_index,
)

pytestmark = pytest.mark.unit

DOC = {
    "topic": "Cooking",
    "author": "Ana Ruiz",
    "year": 2023,
    "year_text": "2023",
    "rating": 4.5,
    "published": "2023-01-10",
    "stamp": 1673308800,  # 2023-01-10T00:00:00Z
    "draft": True,
    "blank": "",
    "none": None,
    "tags": ["bread", "fermentation"],
    "no_tags": [],
    "filename": "sourdough.md",
}


def where(operator, value=None, name="topic", logical="and", **extra):
    return parse_metadata_condition(
        {
            "logical_operator": logical,
            "conditions": [
                {"name": name, "comparison_operator": operator, "value": value, **extra}
            ],
        }
    )


def holds(operator, value=None, name="topic", doc=DOC):
    predicate = where(operator, value, name)
    assert predicate is not None
    return predicate(doc)


def test_the_operator_list_is_difys():
    assert set(OPERATORS) == {
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
    }


@pytest.mark.parametrize(
    ("operator", "value", "name", "expected"),
    [
        ("contains", "ook", "topic", True),
        ("contains", "ook", "author", False),
        ("contains", "cook", "topic", False),  # case-sensitive, as PostgreSQL's LIKE
        ("not contains", "ook", "topic", False),
        ("not contains", "xyz", "topic", True),
        ("start with", "Ana", "author", True),
        ("start with", "Ruiz", "author", False),
        ("end with", "Ruiz", "author", True),
        ("end with", ".md", "filename", True),
        ("end with", ".pdf", "filename", False),
        ("is", "Cooking", "topic", True),
        ("is", "cooking", "topic", False),
        ("is not", "Geology", "topic", True),
        ("is not", "Cooking", "topic", False),
        ("in", ["Geology", "Cooking"], "topic", True),
        ("in", "Geology, Cooking", "topic", True),  # Dify splits a string on commas
        ("in", ["Geology"], "topic", False),
        ("not in", ["Geology", "History"], "topic", True),
        ("not in", "Cooking,History", "topic", False),
        ("=", 2023, "year", True),
        ("=", 2022, "year", False),
        ("≠", 2022, "year", True),
        ("≠", 2023, "year", False),
        (">", 2022, "year", True),
        (">", 2023, "year", False),
        ("<", 2024, "year", True),
        ("≥", 2023, "year", True),
        ("≥", 2024, "year", False),
        ("≤", 2023, "year", True),
        ("≤", 2022.5, "year", False),
        (">=", 2023, "year", True),  # ASCII spellings Dify's filter code accepts
        ("<=", 2022, "year", False),
        (">", 4, "rating", True),
        ("before", "2023-02-01", "published", True),
        ("before", "2023-01-10", "published", False),
        ("after", "2022-12-31T23:59:59Z", "published", True),
        ("after", "2023-01-10T00:00:01", "published", False),
    ],
)
def test_each_operator(operator, value, name, expected):
    assert holds(operator, value, name) is expected


def test_empty_and_not_empty_ignore_the_value():
    for name in ("missing", "none", "blank", "no_tags"):
        assert holds("empty", None, name) and not holds("not empty", None, name)
        assert holds("empty", "whatever", name)
    for name in ("topic", "year", "draft", "tags"):
        assert holds("not empty", None, name) and not holds("empty", None, name)
    assert holds("not empty", None, "year") and not holds("empty", 0, "year")


def test_missing_or_null_fields_match_nothing_but_empty():
    # SQL's NULL, as in Dify: a negation does not pick documents without the field.
    for name in ("missing", "none"):
        for operator in ("is", "is not", "≠", "not contains", "not in", ">", "<", "before"):
            assert not holds(operator, "x", name), (operator, name)


def test_numbers_and_numeric_strings():
    assert holds("is", "2023", "year")  # what Dify's JSON-as-text comparison does
    assert holds("=", 2023, "year_text")
    assert holds("=", 2023.0, "year")
    assert holds(">", "2022", "year") and holds("<", 2024, "year_text")
    assert holds("≥", "2023.0", "year_text")  # ordering reads numeric strings as numbers
    assert not holds("is", "2023.0", "year_text")  # two strings compare as strings
    assert holds("in", "2021, 2023", "year")
    assert holds("in", [2023], "year_text")
    assert holds("not in", [2021, 2022], "year")
    assert not holds(">", "abc", "year")  # nothing to compare: no match, no error
    assert not holds(">", 1, "topic")
    assert holds("contains", "02", "year")  # substrings see the number's JSON text
    assert holds("start with", "4.", "rating")


def test_booleans_equal_booleans_and_their_json_text():
    assert holds("is", True, "draft") and holds("is", "true", "draft")
    assert not holds("is", 1, "draft") and not holds("is", "True", "draft")
    assert holds("is not", False, "draft")
    assert not holds(">", 0, "draft")
    assert not holds("is", True, "year")


def test_dates_and_unix_seconds_compare_as_instants():
    assert holds("before", 1673308801, "published")  # Dify's time metadata: Unix seconds
    assert not holds("before", 1673308800, "published")
    assert holds("after", "2023-01-09", "stamp")
    assert holds("<", "2023-01-10T01:00:00+01:00", "stamp") is False  # same instant
    assert holds("≤", "2023-01-10T01:00:00+01:00", "stamp")
    assert holds("before", "2024-01-01", "published") and not holds("after", "junk", "published")
    assert not holds("before", "2024-01-01", "topic")


def test_list_valued_metadata():
    assert holds("contains", "ferment", "tags")
    assert holds("is", "bread", "tags") and holds("in", ["x", "bread"], "tags")
    assert holds("not contains", "rye", "tags") and not holds("not contains", "bre", "tags")
    assert not holds("is not", "bread", "tags") and holds("not in", ["rye"], "tags")
    assert holds("start with", "fer", "tags") and holds("end with", "ead", "tags")
    # An empty list has a value (it is not null) but no element: negations hold.
    assert not holds("contains", "a", "no_tags") and holds("not contains", "a", "no_tags")


def test_a_list_value_means_any_of_it():
    assert holds("is", ["Geology", "Cooking"]) and not holds("is not", ["Geology", "Cooking"])
    assert holds("contains", ["zzz", "ook"]) and holds("not contains", ["zzz", "yyy"])
    assert holds("in", ["Cooking", None])  # nulls inside a list are dropped
    assert not holds("in", []) and holds("not in", [])
    assert not holds("in", [None]) and holds("not in", "")


def test_and_or():
    both = [
        {"name": "topic", "comparison_operator": "is", "value": "Geology"},
        {"name": "author", "comparison_operator": "start with", "value": "Ana"},
    ]
    any_of = parse_metadata_condition({"logical_operator": "or", "conditions": both})
    all_of = parse_metadata_condition({"logical_operator": "and", "conditions": both})
    assert any_of(DOC) and not all_of(DOC)
    assert any_of({"topic": "Geology"}) and not any_of({"topic": "History"})
    assert all_of({"topic": "Geology", "author": "Ana Ruiz"})


def test_null_means_no_filter():
    assert parse_metadata_condition(None) is None
    assert parse_metadata_condition({"logical_operator": "and", "conditions": None}) is None
    assert parse_metadata_condition({"logical_operator": None, "conditions": []}) is None
    # A condition whose value is null is ignored (Dify applies no filter for it)...
    assert where("is", None) is None
    assert where("contains", None) is None
    # ...and only it: the others keep filtering, with the request's logical operator.
    predicate = parse_metadata_condition(
        {
            "logical_operator": "or",
            "conditions": [
                {"name": "topic", "comparison_operator": "is", "value": None},
                {"name": "topic", "comparison_operator": "is", "value": "Geology"},
            ],
        }
    )
    assert predicate.logical_operator == "or"
    assert len(predicate.conditions) == 1 and not predicate(DOC)
    # A null logical operator is "and".
    and_ = parse_metadata_condition(
        {
            "logical_operator": None,
            "conditions": [
                {"name": "topic", "comparison_operator": "is", "value": "Cooking"},
                {"name": "year", "comparison_operator": ">", "value": 2030},
            ],
        }
    )
    assert and_.logical_operator == "and" and not and_(DOC)


def test_a_list_of_names_is_one_condition_per_name():
    predicate = where("contains", "Ruiz", name=["topic", "author"], logical="or")
    assert predicate(DOC) and len(predicate.conditions) == 2
    assert not where("contains", "Ruiz", name=["topic", "author"])(DOC)


@pytest.mark.parametrize("operator", ["like", "regex", "!=", "IS", "", None, 5])
def test_unknown_operators_name_themselves_and_the_supported_list(operator):
    with pytest.raises(InvalidInput) as info:
        where(operator, "x")
    message = info.value.message
    assert f"operator {operator!r} is not supported" in message
    assert "not contains, start with" in message and "before, after" in message


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({"logical_operator": "xor", "conditions": []}, "logical_operator"),
        ({"conditions": {"name": "a"}}, "conditions must be a list"),
        ({"conditions": ["topic"]}, "a condition must be an object"),
        ({"conditions": [{"name": "", "comparison_operator": "is", "value": 1}]}, "name"),
        ({"conditions": [{"name": [], "comparison_operator": "is", "value": 1}]}, "name"),
        ({"conditions": [{"comparison_operator": "is", "value": 1}]}, "name"),
        ({"conditions": [{"name": "a", "comparison_operator": "is", "value": {"x": 1}}]}, "value"),
        ({"conditions": [{"name": "a", "comparison_operator": "in", "value": [[1]]}]}, "value"),
        ("topic is x", "must be an object"),
    ],
)
def test_malformed_conditions_are_invalid_input(raw, fragment):
    with pytest.raises(InvalidInput) as info:
        parse_metadata_condition(raw)
    assert fragment in info.value.message


def test_huge_or_odd_numbers_do_not_crash():
    assert not holds("=", 1, "x", doc={"x": "9" * 5000})
    assert not holds(">", 1, "x", doc={"x": "1e999"})
    assert not holds("before", 10**30, "published")
    assert holds(">", float("nan"), "year") is False


def test_split_sends_only_identical_conditions_to_the_index():
    predicate = parse_metadata_condition(
        {
            "logical_operator": "and",
            "conditions": [
                {"name": "topic", "comparison_operator": "is", "value": "Cooking"},
                {"name": "author", "comparison_operator": "in", "value": "Ana Ruiz, Ben"},
                {"name": "year", "comparison_operator": "=", "value": 2023},
                {"name": "topic", "comparison_operator": "is", "value": "Geology"},
                {"name": "draft", "comparison_operator": "is", "value": "true"},
                {"name": "code", "comparison_operator": "is", "value": "42"},
                {"name": 'we"ird', "comparison_operator": "is", "value": "x"},
                {"name": "blank", "comparison_operator": "empty"},
            ],
        }
    )
    filters, rest = split_for_index(predicate)
    assert filters == {"topic": "Cooking", "author": ["Ana Ruiz", "Ben"]}
    assert [(c.name, c.operator) for c in rest.conditions] == [
        ("year", "="),
        ("topic", "is"),  # a second condition on a field the index already filters
        ("draft", "is"),  # "true" also equals a boolean here, not in the index
        ("code", "is"),  # "42" also equals the number 42 here, not in the index
        ('we"ird', "is"),  # a key the index cannot address
        ("blank", "empty"),
    ]
    assert rest.logical_operator == "and"


def test_split_keeps_or_whole_and_agrees_with_the_index():
    two = parse_metadata_condition(
        {
            "logical_operator": "or",
            "conditions": [
                {"name": "topic", "comparison_operator": "is", "value": "Cooking"},
                {"name": "topic", "comparison_operator": "is", "value": "Geology"},
            ],
        }
    )
    assert split_for_index(two) == (None, two)
    one = where("in", ["Cooking", "History"], logical="or")
    assert split_for_index(one) == ({"topic": ["Cooking", "History"]}, None)
    assert split_for_index(None) == (None, None)
    # Where the index takes a condition, it decides exactly as the predicate does.
    docs = [DOC, {"topic": "History"}, {"topic": ["Cooking"]}, {"topic": None}, {}]
    docs += [{"topic": 5}, {"topic": True}, {"topic": "cooking"}]
    for doc in docs:
        filters, rest = split_for_index(one)
        assert rest is None and matches(doc, filters) == one(doc), doc

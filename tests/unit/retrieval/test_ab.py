"""A/B assignment: deterministic sticky buckets, weight shares, edge splits, the Wilson
interval and the arm checks (the catalog side is in tests/integration/api/test_ab_api.py)."""

from collections import Counter

import pytest

from core.errors import InvalidInput
from eval.ab import check_arms, wilson
from retrieval.ab import BUCKETS, Arm, bounds, bucket, choose, pick, subject_key

pytestmark = pytest.mark.unit

SUBJECTS = [f"user:u{i}" for i in range(10_000)]


def arms(*weights, prefix="arm"):
    return [
        Arm(f"{prefix}{i}", float(w), i + 1, "extractive", "default@1")
        for i, w in enumerate(weights)
    ]


def shares(test_id, weights):
    picked = Counter(choose(test_id, arms(*weights), s).name for s in SUBJECTS)
    return [picked[f"arm{i}"] / len(SUBJECTS) for i in range(len(weights))]


def test_bucket_is_deterministic_in_range_and_depends_on_the_test():
    assert bucket("t1", "user:alice") == bucket("t1", "user:alice")
    values = [bucket("t1", s) for s in SUBJECTS[:2000]]
    assert all(0 <= v < BUCKETS for v in values)
    assert len(set(values)) > 1500  # spread, not a constant
    other = [bucket("t2", s) for s in SUBJECTS[:2000]]
    assert sum(a == b for a, b in zip(values, other, strict=True)) < 20


def test_assignment_is_sticky_per_subject():
    test_arms = arms(50, 50)
    first = {s: choose("test-a", test_arms, s).name for s in SUBJECTS[:500]}
    for _ in range(3):
        assert {s: choose("test-a", test_arms, s).name for s in SUBJECTS[:500]} == first
    assert set(first.values()) == {"arm0", "arm1"}


@pytest.mark.parametrize(
    "weights",
    [(50, 50), (90, 10), (1, 1, 1), (70, 20, 10), (0.25, 0.75), (5, 15, 30, 50)],
)
def test_ten_thousand_subjects_land_within_two_points_of_the_weights(weights):
    total = sum(weights)
    for got, w in zip(shares("weights-test", weights), weights, strict=True):
        assert abs(got - w / total) <= 0.02, (weights, got)


def test_zero_hundred_split_sends_everyone_to_one_arm():
    assert shares("split", (0, 100)) == [0.0, 1.0]
    assert shares("split", (100, 0)) == [1.0, 0.0]
    assert shares("split", (0, 100, 0)) == [0.0, 1.0, 0.0]


def test_two_tests_split_subjects_independently():
    a = [choose("test-a", arms(50, 50), s).name for s in SUBJECTS]
    b = [choose("test-b", arms(50, 50), s).name for s in SUBJECTS]
    same = sum(x == y for x, y in zip(a, b, strict=True)) / len(SUBJECTS)
    assert abs(same - 0.5) <= 0.02


def test_bounds_and_pick():
    assert bounds([1, 1, 1]) == [3333, 6667, BUCKETS]
    assert bounds([90, 10]) == [9000, BUCKETS]
    assert bounds([0, 100]) == [0, BUCKETS]
    assert [pick([90, 10], b) for b in (0, 8999, 9000, BUCKETS - 1)] == [0, 0, 1, 1]
    with pytest.raises(InvalidInput, match="positive total"):
        bounds([0, 0])
    with pytest.raises(InvalidInput, match="non-negative"):
        bounds([-1, 2])


def test_subject_key_prefers_the_user_and_separates_namespaces():
    assert subject_key("7", "s1") == "user:7"
    assert subject_key(None, "7") == "session:7"
    assert subject_key("7") != subject_key(None, "7")
    assert subject_key(None, None) is None and subject_key("", "") is None


def test_wilson_interval():
    low, high = wilson(8, 10)
    assert round(low, 4) == 0.4902 and round(high, 4) == 0.9433
    assert wilson(0, 0) is None
    assert wilson(0, 5)[0] == 0.0 and wilson(5, 5)[1] == 1.0
    narrow, wide = wilson(800, 1000), wilson(8, 10)
    assert narrow[1] - narrow[0] < wide[1] - wide[0]


def test_check_arms_rejects_twins_and_duplicate_names():
    check_arms(arms(50, 50))
    a = Arm("a", 50, 1, "extractive", "default@1")
    with pytest.raises(InvalidInput, match="'a' is used twice"):
        check_arms([a, Arm("a", 50, 2, "extractive", "default@1")])
    with pytest.raises(InvalidInput, match="'a' and 'b' are the same configuration"):
        check_arms([a, Arm("b", 50, 1, "extractive", "default@1")])
    check_arms([a, Arm("b", 50, 1, "local", "default@1")])
    check_arms([a, Arm("b", 50, 1, "extractive", "default@2")])


def test_arm_round_trips_through_its_stored_form():
    arm = Arm("b", 50.0, 2, "local", "support@3")
    assert arm.as_dict() == {
        "name": "b",
        "weight": 50,
        "index_version": 2,
        "generator": "local",
        "prompt": "support@3",
    }
    assert Arm.from_dict(arm.as_dict()) == arm
    assert Arm("c", 12.5, 1, "extractive", "default@1").as_dict()["weight"] == 12.5

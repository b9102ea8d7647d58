"""The one retry policy: bounded, jittered, retrying lost commit races only."""

from __future__ import annotations

import pytest
from pyiceberg.exceptions import CommitFailedException

from lakehouse.exceptions import CommitConflictError
from lakehouse.table.retry import RetryPolicy, is_commit_conflict

FAST = RetryPolicy(attempts=4, base_delay=0.001, max_delay=0.002)


def test_lost_races_are_retried_with_a_refresh_until_one_commits() -> None:
    calls: list[str] = []

    def action() -> str:
        calls.append("try")
        if calls.count("try") < 3:
            raise CommitFailedException("Requirement failed: branch main has changed")
        return "committed"

    result = FAST.run(action, on_conflict=lambda: calls.append("refresh"), what="append")
    assert result == "committed"
    assert calls == ["try", "refresh", "try", "refresh", "try"]


def test_stale_sequence_value_error_counts_as_a_race() -> None:
    attempts = []

    def action() -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise ValueError(
                "Cannot add snapshot with sequence number 3 older than last sequence number 4"
            )

    FAST.run(action, what="overwrite")
    assert len(attempts) == 2


def test_other_errors_propagate_at_once() -> None:
    attempts = []

    def action() -> None:
        attempts.append(1)
        raise ValueError("a bug, not a race")

    with pytest.raises(ValueError, match="a bug"):
        FAST.run(action, what="append")
    assert attempts == [1]
    assert not is_commit_conflict(KeyError("x"))


def test_exhausted_attempts_raise_an_actionable_conflict() -> None:
    attempts = []

    def action() -> None:
        attempts.append(1)
        raise CommitFailedException("branch moved")

    with pytest.raises(
        CommitConflictError, match=r"merge of t lost the commit race .* 4 time\(s\)"
    ):
        FAST.run(action, what="merge of t")
    assert len(attempts) == 4


def test_delays_grow_are_bounded_and_jittered() -> None:
    steady = RetryPolicy(base_delay=0.05, max_delay=0.3, jitter=False)
    assert [steady.delay(a) for a in (1, 2, 3, 4, 5)] == [0.05, 0.1, 0.2, 0.3, 0.3]
    jittered = RetryPolicy(base_delay=0.05, max_delay=0.3)
    draws = {jittered.delay(3) for _ in range(50)}
    assert all(0.1 <= d <= 0.2 for d in draws) and len(draws) > 1
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0)

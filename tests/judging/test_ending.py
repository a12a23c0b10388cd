"""How a judging job ends: failed only when every item failed, with the first item's error."""

from __future__ import annotations

import pytest

from app.judging.ending import ERROR_MAX_CHARS, JudgingEnd, judging_end


def _unread() -> str:
    raise AssertionError("the first error is read only when every item failed")


@pytest.mark.parametrize(("judged", "failed"), [(0, 0), (4, 0), (4, 3)])
def test_a_job_with_an_item_that_did_not_fail_succeeds(judged: int, failed: int) -> None:
    assert judging_end(judged, failed, _unread) == JudgingEnd("succeeded")


def test_every_item_failed_fails_the_job_with_the_count_and_first_error() -> None:
    end = judging_end(4, 4, lambda: "no verdict in the reply")
    assert end == JudgingEnd("failed", "all 4 items failed: no verdict in the reply")


def test_a_single_failed_item_and_a_long_error() -> None:
    end = judging_end(1, 1, lambda: "x" * 2000)
    assert end.status == "failed"
    assert end.error == "its only item failed: " + "x" * ERROR_MAX_CHARS

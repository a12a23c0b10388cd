from collections.abc import Sequence

from app.self_reward.domain import GuardSettings, IterationStats
from app.self_reward.guards import GuardResult, check_iteration, length_ratio

SETTINGS = GuardSettings()  # min_pairs 2, parse failures 50%, ties 80%, length 1.5x for 2 iterations


def stats(
    prompts: int = 10,
    pairs: int = 8,
    ties: int = 2,
    judgments: int = 120,
    parse_failures: int = 0,
    chosen: Sequence[int] = (100, 100),
    rejected: Sequence[int] = (100, 100),
) -> IterationStats:
    return IterationStats(
        prompts=prompts,
        pairs=pairs,
        ties=ties,
        judgments=judgments,
        parse_failures=parse_failures,
        chosen_lengths=list(chosen),
        rejected_lengths=list(rejected),
    )


def test_a_healthy_iteration_passes() -> None:
    assert check_iteration(stats(), [], SETTINGS) == GuardResult(stop=None, flags=[])


def test_too_few_pairs_stop() -> None:
    assert (
        check_iteration(stats(pairs=1, ties=1), [], SETTINGS).stop
        == "only 1 preference pair survived (minimum 2)"
    )
    assert (
        check_iteration(stats(pairs=0, ties=1), [], SETTINGS).stop
        == "no preference pair survived (minimum 2)"
    )
    assert check_iteration(stats(pairs=3), [], GuardSettings(min_pairs=4)).stop == (
        "only 3 preference pairs survived (minimum 4)"
    )
    assert check_iteration(stats(pairs=2), [], SETTINGS).stop is None


def test_parse_failures_over_the_limit_stop() -> None:
    result = check_iteration(stats(judgments=100, parse_failures=60), [], SETTINGS)
    assert result.stop == "parse failures 60% of judgments (limit 50%)"
    # At the limit is not over it.
    assert check_iteration(stats(judgments=100, parse_failures=50), [], SETTINGS).stop is None
    # No judgments: no rate, no stop from it.
    assert check_iteration(stats(judgments=0), [], SETTINGS).stop is None


def test_many_ties_flag_while_enough_pairs_remain() -> None:
    result = check_iteration(stats(prompts=100, ties=85, pairs=15), [], SETTINGS)
    assert result.stop is None
    assert result.flags == ["ties on 85% of prompts (limit 80%)"]


def test_many_ties_that_leave_too_few_pairs_stop_and_are_named_as_the_cause() -> None:
    result = check_iteration(stats(prompts=10, ties=9, pairs=1), [], SETTINGS)
    assert result.stop == "only 1 preference pair survived (minimum 2): ties on 90% of prompts (limit 80%)"
    assert result.flags == []


def test_every_stop_reason_is_reported() -> None:
    result = check_iteration(stats(pairs=0, ties=0, judgments=10, parse_failures=9), [], SETTINGS)
    assert (
        result.stop == "parse failures 90% of judgments (limit 50%); no preference pair survived (minimum 2)"
    )


def test_length_ratio() -> None:
    assert length_ratio(stats(chosen=[300, 100], rejected=[100, 100])) == 2.0
    assert length_ratio(stats(chosen=[], rejected=[100])) is None
    assert length_ratio(stats(chosen=[10], rejected=[0, 0])) is None


def test_one_long_iteration_flags() -> None:
    long = stats(chosen=[200], rejected=[100])
    result = check_iteration(long, [], SETTINGS)
    assert result.stop is None
    assert result.flags == ["chosen answers 2.00x as long as rejected ones (limit 1.50x)"]
    # The previous iteration was within the ratio: still a flag.
    assert check_iteration(long, [stats()], SETTINGS).stop is None


def test_consecutive_long_iterations_stop_as_length_explosion() -> None:
    long = stats(chosen=[200], rejected=[100])
    result = check_iteration(long, [stats(), stats(chosen=[160], rejected=[100])], SETTINGS)
    assert result.stop is not None and result.stop.startswith("length explosion: chosen answers 2.00x")
    assert "2 iterations in a row" in result.stop
    # Only the most recent iterations count.
    assert check_iteration(long, [stats(chosen=[160], rejected=[100]), stats()], SETTINGS).stop is None


def test_length_explosion_window_follows_settings() -> None:
    long = stats(chosen=[200], rejected=[100])
    three = GuardSettings(length_growth_iterations=3)
    assert check_iteration(long, [long], three).stop is None
    assert check_iteration(long, [long, long], three).stop is not None
    assert check_iteration(long, [long, stats(), long], three).stop is None
    assert check_iteration(long, [], GuardSettings(length_growth_iterations=1)).stop is not None
    # Exactly at the ratio is within it.
    assert check_iteration(stats(chosen=[150], rejected=[100]), [], SETTINGS).flags == []

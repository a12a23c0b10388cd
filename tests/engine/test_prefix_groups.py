"""How the transformers engine splits a batch of several templates' prompts into sub-batches that
each share a prefix (computed once per sub-batch)."""

from __future__ import annotations

from app.engine.transformers_backend import prefix_groups

HEADER = [1, 2, 3]  # the chat template's opening, common to every prompt


def prompts(template: int, count: int, start: int = 0) -> list[list[int]]:
    instructions = [100 * template + k for k in range(20)]
    return [HEADER + instructions + [9000 + start + i, 7] for i in range(count)]


def test_two_templates_interleaved_become_two_groups_in_order_of_first_row() -> None:
    a, b = prompts(1, 10), prompts(2, 12)
    mixed = [p for pair in zip(b, a, strict=False) for p in pair] + b[10:]
    groups = prefix_groups(mixed, min_shared=16, min_rows=8)
    assert groups == [[i for i, p in enumerate(mixed) if p in b], [i for i, p in enumerate(mixed) if p in a]]


def test_one_template_or_too_few_rows_stay_one_group() -> None:
    one = prompts(1, 20)
    assert prefix_groups(one, min_shared=16, min_rows=8) == [list(range(20))]
    few = prompts(1, 5) + prompts(2, 5)
    assert prefix_groups(few, min_shared=16, min_rows=8) == [list(range(10))]


def test_small_runs_join_the_rest() -> None:
    rows = prompts(1, 9) + prompts(2, 3) + prompts(3, 4) + prompts(4, 8)
    groups = prefix_groups(rows, min_shared=16, min_rows=8)
    assert groups == [list(range(9)), list(range(9, 16)), list(range(16, 24))]
    assert sorted(i for g in groups for i in g) == list(range(len(rows)))


def test_a_prefix_shorter_than_the_minimum_does_not_split() -> None:
    # Two wordings sharing 18 tokens (header + 15): enough to stay together at min_shared=16.
    a = [HEADER + list(range(15)) + [500 + k for k in range(5)] + [i] for i in range(8)]
    b = [HEADER + list(range(15)) + [600 + k for k in range(5)] + [i] for i in range(8)]
    assert prefix_groups(a + b, min_shared=16, min_rows=8) == [list(range(16))]
    assert prefix_groups(a + b, min_shared=19, min_rows=8) == [list(range(8)), list(range(8, 16))]

"""How the transformers engine finds the prefixes of a batch of several templates' prompts: groups that
each share a prefix (computed once per batch), and each prompt's prefix length."""

from __future__ import annotations

from app.engine.transformers_backend import prefix_groups, shared_prefixes

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


def test_each_prompt_gets_its_groups_prefix_and_the_rest_none() -> None:
    rows = prompts(1, 9) + prompts(2, 3) + prompts(3, 4) + prompts(4, 8)
    lengths = shared_prefixes(rows, keep=1, min_shared=16, min_rows=8)
    # Template 1's and 4's rows share header + instructions (23 tokens); templates 2 and 3, too few
    # rows each, are the rest, which shares only the header (3 tokens): not worth a prefix.
    assert lengths == [23] * 9 + [0] * 7 + [23] * 8
    # A rest of one template's rows shares that template's prefix.
    assert shared_prefixes(rows[:12] + rows[16:], keep=1, min_shared=16, min_rows=8) == [23] * 20


def test_a_prefix_leaves_each_prompt_its_last_tokens() -> None:
    same = [prompts(1, 1)[0]] * 10
    assert shared_prefixes(same, keep=1, min_shared=16, min_rows=8) == [len(same[0]) - 1] * 10
    assert shared_prefixes(same, keep=4, min_shared=16, min_rows=8) == [len(same[0]) - 4] * 10
    assert shared_prefixes(same[:1], keep=1, min_shared=16, min_rows=8) == [0]


def test_one_group_of_a_few_prompts_still_shares_its_prefix() -> None:
    # Fewer rows than a group needs to split off: one group, whose common prefix is still worth it.
    few = prompts(1, 3)
    assert shared_prefixes(few, keep=1, min_shared=16, min_rows=8) == [23] * 3

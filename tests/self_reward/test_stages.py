"""What the data steps of an iteration make of the model's outputs (no database, no model)."""

from __future__ import annotations

import random

from app.engine.base import Generation
from app.self_reward import head_to_head, stages
from app.self_reward.domain import InstructSettings, PairSettings
from app.self_reward.stages import CandidateRow, JudgmentRow, PairRow, PromptCollector, PromptRow

SEEDS = [f"Seed task {i}: describe the history of city number {i} in detail." for i in range(6)]


def gen(text: str, finish: str = "stop", stop_string: str | None = None) -> Generation:
    return Generation(
        text=text, tokens_in=10, tokens_out=len(text.split()), finish_reason=finish, stop_string=stop_string
    )


def test_prompt_collection_asks_for_what_is_missing_and_records_every_reply() -> None:
    collector = PromptCollector(
        SEEDS, [], InstructSettings(), wanted=2, attempts_factor=3, rng=random.Random(0)
    )
    first = collector.next_batch(batch_size=1)
    assert len(first) == 2  # the prompts still wanted, however small the batch
    collector.add([gen("Compose a limerick about a lighthouse keeper and his cat."), gen("")])
    assert len(collector.next_batch(batch_size=1)) == 1
    collector.add([gen("Explain how glaciers carve valleys over thousands of years.")])
    assert collector.next_batch(batch_size=8) == []  # enough kept
    assert [r.index for r in collector.rows] == [0, 1, 2]
    assert collector.rows[1] == PromptRow(index=1, text="", raw="", dropped="no task found in the reply")
    assert collector.metrics() == {
        "prompts": {"generated": 3, "kept": 2, "dropped": {"no task found in the reply": 1}}
    }


def test_prompt_collection_gives_up_after_its_attempts() -> None:
    collector = PromptCollector(
        SEEDS, [], InstructSettings(), wanted=2, attempts_factor=2, rng=random.Random(0)
    )
    while convs := collector.next_batch(batch_size=3):
        collector.add([gen(SEEDS[0]) for _ in convs])  # a copy of a seed: a duplicate every time
    assert len(collector.rows) == 4 and collector.kept == []
    assert all(r.dropped for r in collector.rows)


def test_a_candidate_cut_by_the_token_limit_is_kept_unfinished() -> None:
    prompts = [PromptRow(4, "Task four?", "", None), PromptRow(7, "Task seven?", "", None)]
    convs = stages.candidate_conversations(prompts, 2)
    assert [c[0]["content"] for c in convs] == ["Task four?"] * 2 + ["Task seven?"] * 2
    rows = stages.candidate_rows(prompts, 2, [gen("a b"), gen("c d e", "length"), gen("  "), gen("f")])
    assert [(r.prompt_index, r.index, r.finished) for r in rows] == [
        (4, 0, True),
        (4, 1, False),
        (7, 0, False),
        (7, 1, True),
    ]
    assert stages.candidate_metrics(rows) == {"candidates": {"total": 4, "unfinished": 2}}


def test_only_finished_candidates_are_judged_each_sample_apart() -> None:
    prompts = [PromptRow(0, "What is rain?", "", None)]
    cands = [CandidateRow(0, 0, "Water falling.", True, 2), CandidateRow(0, 1, "Water", False, 1)]
    requests = stages.judgment_requests(prompts, cands, samples=2)
    assert [(r.prompt_index, r.candidate_index, r.sample) for r in requests] == [(0, 0, 0), (0, 0, 1)]
    assert "Water falling." in requests[0].conversation[-1]["content"]
    rows = stages.judgment_rows(requests, [gen("Good.\nScore: 4"), gen("Hmm, the answer", "length")])
    assert rows[0].score == 4.0 and rows[0].error is None
    assert (
        rows[1].score is None
        and rows[1].error is not None
        and rows[1].error.endswith("(the judgment hit the token limit)")
    )
    metrics = stages.judgment_metrics(rows)
    assert metrics["judgments"] == {"total": 2, "parse_failures": 1}


def test_pairs_take_the_best_and_worst_scored_answers_and_count_ties() -> None:
    cands = [
        CandidateRow(0, 0, "short", True, 1),
        CandidateRow(0, 1, "a much longer answer", True, 4),
        CandidateRow(1, 0, "same", True, 1),
        CandidateRow(1, 1, "same too", True, 2),
    ]
    judged = [
        JudgmentRow(0, 0, 0, "", 1.0, None),
        JudgmentRow(0, 1, 0, "", 5.0, None),
        JudgmentRow(1, 0, 0, "", 3.0, None),
        JudgmentRow(1, 1, 0, "", 3.0, None),
        JudgmentRow(1, 1, 1, "", None, "no score"),
    ]
    decided = stages.decide_pairs(cands, judged, PairSettings())
    first, second = decided.rows
    assert first == PairRow(0, True, first.reason, 1, 0, 5.0, 1.0)
    assert not second.kept and second.reason.startswith("all candidates tie")
    stats = decided.stats
    assert (stats.prompts, stats.pairs, stats.ties, stats.judgments, stats.parse_failures) == (2, 1, 1, 5, 1)
    assert (stats.chosen_lengths, stats.rejected_lengths) == ([4], [1])
    metrics = stages.pair_metrics(stats)
    assert metrics["pairs"] == {
        "kept": 1,
        "prompts": 2,
        "tie_dropped": 1,
        "tie_drop_rate": 0.5,
        "other_dropped": 0,
    }
    assert metrics["parse_failure_rate"] == 0.2
    assert metrics["length"] == {"chosen_mean_words": 4.0, "rejected_mean_words": 1.0}

    prompts = [PromptRow(0, "Why?", "", None), PromptRow(1, "How?", "", None)]
    assert stages.dpo_pairs(prompts, cands, decided.rows) == [
        {"prompt": "Why?", "chosen": "a much longer answer", "rejected": "short"}
    ]


def test_head_to_head_judges_both_orders_and_counts_what_gives_no_verdict() -> None:
    plans = head_to_head.plan(["Q1?", "Q2?"], ["new 1", "new 2"], ["old 1", "old 2"])
    assert [len(calls) for calls in plans] == [2, 2]
    # Q1: A wins in both orders (AB: "A", BA: "B" is the old answer shown first); Q2: unreadable.
    replies = [gen("[[A", stop_string="]]"), gen("[[B", stop_string="]]"), gen("no idea"), gen("none")]
    summary = head_to_head.summarize(plans, replies)
    assert summary["n"] == 2 and summary["errors"] == 1
    assert summary["win_rate"] == 1.0

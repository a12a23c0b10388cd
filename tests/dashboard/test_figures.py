"""The dashboard's pure parts: chart geometry, the charts of a summary and of self-reward iterations, the
judge-agreement matrix, the prompt diff and what its forms ask for."""

from __future__ import annotations

import uuid

import pytest

from app.core.errors import InvalidInput
from app.dashboard.charts import (
    LABEL_WIDTH,
    PLOT_WIDTH,
    BarRow,
    bar_chart,
    histogram,
    line_chart,
    score_counts,
)
from app.dashboard.diff import Segment, prompt_diff
from app.dashboard.figures import agreement_matrix, iteration_charts, summary_charts
from app.dashboard.filters import ItemFilter, job_ref, metadata_filters
from app.jobs.schemas import ItemResult
from app.summaries.schemas import (
    IntervalOut,
    JudgeFiguresOut,
    JuryOut,
    KappaOut,
    LengthControlledOut,
    RatingOut,
    ScoreOut,
    SummaryOut,
    VerdictFigures,
    WinRateOut,
)


def test_bars_and_whiskers_sit_where_their_values_are() -> None:
    chart = bar_chart("Win rate", [BarRow("alpha", 0.5, 0.25, 0.75), BarRow("beta", 1.0)], (0.0, 1.0))
    alpha, beta = chart.bars
    assert alpha.x == LABEL_WIDTH and alpha.width == pytest.approx(PLOT_WIDTH / 2)
    assert alpha.whisker == pytest.approx((LABEL_WIDTH + PLOT_WIDTH / 4, LABEL_WIDTH + 3 * PLOT_WIDTH / 4))
    assert beta.width == pytest.approx(PLOT_WIDTH) and beta.whisker is None
    assert beta.y > alpha.y  # in the order given
    assert [t.text for t in chart.ticks] == ["0.00", "0.25", "0.50", "0.75", "1.00"]
    # Values outside the domain are drawn at its edge, never outside the plot.
    clipped = bar_chart("x", [BarRow("a", 2.0, -1.0, 3.0)], (0.0, 1.0)).bars[0]
    assert clipped.width == pytest.approx(PLOT_WIDTH) and clipped.whisker == pytest.approx(
        (LABEL_WIDTH, LABEL_WIDTH + PLOT_WIDTH)
    )


def test_histogram_columns_scale_with_their_counts() -> None:
    assert score_counts([1.0, 3.0, 3.4, 2.5]) == [("1", 1), ("2", 0), ("3", 3)]
    assert score_counts([2.0, 7.0], (1, 5)) == [
        ("1", 0),
        ("2", 1),
        ("3", 0),
        ("4", 0),
        ("5", 0),
        ("6", 0),
        ("7", 1),
    ]
    assert score_counts([], (1, 5)) == []
    chart = histogram("Scores", [("1", 1), ("2", 0), ("3", 4)])
    one, two, three = chart.columns
    assert three.height == pytest.approx(4 * one.height) and two.height == 0
    assert one.x < two.x < three.x and three.y + three.height == pytest.approx(chart.baseline)


def test_line_chart_draws_one_line_per_series_on_one_scale() -> None:
    chart = line_chart("Loss", [("SFT", [2.0, 1.0]), ("DPO", [0.7, 0.69, 0.6]), ("none", [])])
    assert [line.label for line in chart.lines] == ["SFT", "DPO"]
    sft = [tuple(map(float, p.split(","))) for p in chart.lines[0].points.split()]
    assert sft[0][1] < sft[1][1]  # the higher loss is drawn higher (smaller y)
    assert [t.text for t in chart.x_ticks][0] == "1" and [t.text for t in chart.x_ticks][-1] == "3"


def _interval(low: float, high: float) -> IntervalOut:
    return IntervalOut(low=low, high=high)


def _summary(**parts: object) -> SummaryOut:
    figures = VerdictFigures(
        items=0, ok=0, errors=0, pending=0, verdicts={}, swapped=0, consistent=0, judged_orders=0
    )
    fields: dict[str, object] = {
        "jobs": [uuid.uuid4()],
        "bootstrap_rounds": 100,
        "seed": 0,
        "figures": figures,
        "win_rates": [],
        "scores": [],
        "ratings": [],
        "length_controlled": [],
    }
    return SummaryOut.model_validate({**fields, **parts})


def test_summary_charts_show_the_summarys_own_figures() -> None:
    summary = _summary(
        baseline="base",
        win_rates=[
            WinRateOut(
                model="alpha",
                games=4,
                wins=3,
                losses=1,
                ties=0,
                win_rate=0.75,
                win_rate_interval=_interval(0.5, 1.0),
                tie_adjusted_win_rate=0.75,
                tie_adjusted_interval=_interval(0.5, 1.0),
            )
        ],
        scores=[
            ScoreOut(model="alpha", count=2, mean=8.0, interval=_interval(7.0, 9.0)),
            ScoreOut(model="alpha", category="writing", count=1, mean=9.0, interval=_interval(9.0, 9.0)),
            ScoreOut(model="beta", category="math", count=1, mean=2.0, interval=_interval(2.0, 2.0)),
        ],
        length_controlled=[
            LengthControlledOut(
                model="alpha", games=4, win_rate=0.75, length_controlled_win_rate=0.6, length_weight=0.3
            )
        ],
    )
    charts = summary_charts(summary)
    plain, adjusted = charts.win_rates
    assert plain.bars[0].full_label == "alpha" and plain.bars[0].text == "75.0% [50.0%, 100.0%]"
    assert plain.bars[0].whisker is not None and adjusted.title.startswith("Tie-adjusted")
    assert charts.scores is not None and charts.scores.bars[0].text == "8.00 [7.00, 9.00]"
    assert [c.title for c in charts.categories] == ["Category: math", "Category: writing"]
    # One scale for every score chart: the same score sits at the same x everywhere.
    assert charts.categories[1].ticks == charts.scores.ticks
    assert charts.length_controlled is not None and "against base" in charts.length_controlled.title
    assert charts.ratings is None

    rated = summary_charts(
        _summary(ratings=[RatingOut(model="a", rating=1100.0, interval=_interval(1050.0, 1150.0))])
    )
    assert rated.ratings is not None and rated.ratings.bars[0].text == "1100 [1050, 1150]"
    assert summary_charts(_summary()).empty


def test_agreement_matrix_of_a_jury() -> None:
    def judge(model: str) -> JudgeFiguresOut:
        return JudgeFiguresOut(model=model, job_id=uuid.uuid4(), weight=1, ok=4)

    jury = JuryOut(
        aggregate="majority",
        ratings="verdicts",
        judges=[judge("j1"), judge("j2"), judge("j3")],
        cohen_kappa=[
            KappaOut(judge_a="j1", judge_b="j2", items=4, kappa=0.9),
            KappaOut(judge_a="j1", judge_b="j3", items=4, kappa=-0.1),
            KappaOut(judge_a="j2", judge_b="j3", items=4, kappa=None),
        ],
        fleiss_kappa=0.35,
        fleiss_items=4,
    )
    matrix = agreement_matrix(jury)
    assert matrix is not None and matrix.judges == ["j1", "j2", "j3"]
    assert [c.band for c in matrix.rows[0]] == ["self", "5", "neg"]
    assert matrix.rows[1][0].kappa == 0.9 and matrix.rows[1][0].items == 4  # symmetric
    assert matrix.rows[1][2].band == "none" and matrix.rows[2][1].kappa is None
    assert [c.words for c in matrix.rows[2]][0] == "worse than chance"
    assert agreement_matrix(None) is None


def test_self_reward_iterations_give_loss_histogram_pairs_and_win_rate_charts() -> None:
    iterations = [
        (0, {"training": {"kind": "sft", "loss_history": [2.0, 1.5, 1.2]}}),
        (
            1,
            {
                "score_histogram": {"0": 0, "1": 1, "2": 0, "3": 2, "4": 5, "5": 1, "10": 0},
                "pairs": {"kept": 3, "prompts": 8},
                "training": {"kind": "dpo", "loss_history": [0.69, 0.6]},
                "evaluation": {"win_rate_vs_previous": {"win_rate": 0.625, "n": 8}},
            },
        ),
    ]
    charts = iteration_charts(iterations)
    assert charts.losses is not None
    assert [line.label for line in charts.losses.lines] == ["iteration 0 (SFT)", "iteration 1 (DPO)"]
    (hist,) = charts.histograms
    assert [c.label for c in hist.columns] == ["0", "1", "2", "3", "4", "5", "10"]  # numeric order
    assert charts.pairs is not None and charts.pairs.bars[0].full_label == "iteration 1 (of 8)"
    assert charts.pairs.bars[0].text == "3"
    assert charts.win_rate is not None and charts.win_rate.bars[0].text == "62.5%"
    assert iteration_charts([(0, {})]).empty


def test_prompt_diff_marks_removed_and_added_words() -> None:
    before = "Decide whether the review is positive.\nAnswer in one word."
    after = "Decide whether the review is positive or sarcastic.\nAnswer in one word."
    assert prompt_diff(before, after) == [
        Segment("same", "Decide whether the review is "),
        Segment("removed", "positive."),
        Segment("added", "positive or sarcastic."),
        Segment("same", "\nAnswer in one word."),
    ]
    assert prompt_diff("same", "same") == [Segment("same", "same")]


def test_metadata_filters_and_job_references() -> None:
    assert metadata_filters(" run = r1 , team=a b ") == ["run:r1", "team:a b"]
    assert metadata_filters("") == [] and metadata_filters(None) == []
    with pytest.raises(InvalidInput, match="is not `key=value`") as caught:
        metadata_filters("run:r1")
    assert caught.value.field == "metadata"
    full = uuid.uuid4()
    assert job_ref(f" {full} ").full == full
    assert job_ref("3FA85F64-57").prefix == "3fa85f6457"
    for bad in ("", "xyz", "3fa8 5f64", "0" * 33):
        with pytest.raises(InvalidInput, match="is not a job id"):
            job_ref(bad)


def test_item_filter_keeps_what_it_names() -> None:
    ok_a = ItemResult(index=0, status="ok", verdict="A", consistent=True)
    split = ItemResult(index=1, status="ok", verdict="tie", consistent=False)
    failed = ItemResult(index=2, status="error", error="no verdict")
    items = [ok_a, split, failed]
    assert [r.index for r in items if ItemFilter.parse("inconsistent", None).keeps(r)] == [1]
    assert [r.index for r in items if ItemFilter.parse("error", "").keeps(r)] == [2]
    assert [r.index for r in items if ItemFilter.parse(None, "A").keeps(r)] == [0]
    assert [r.index for r in items if ItemFilter.parse("inconsistent", "tie").keeps(r)] == [1]
    assert all(ItemFilter.parse("", "").keeps(r) for r in items) and not ItemFilter.parse("", "").active
    assert ItemFilter.parse("error", "B").query() == {"only": "error", "verdict": "B"}
    with pytest.raises(InvalidInput, match="only must be one of"):
        ItemFilter.parse("wrong", None)
    with pytest.raises(InvalidInput, match="verdict must be one of"):
        ItemFilter.parse(None, "C")

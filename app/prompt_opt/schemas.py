"""API contract of prompt-optimization jobs (ProTeGi)."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, model_validator
from pydantic_core import PydanticCustomError

from app.jobs.schemas import CapCheck, JobOptionsIn
from app.prompt_opt.domain import Budget, Hyperparams, Metric, SelectorConfig


def _bad(field: str, message: str) -> PydanticCustomError:
    """A model-level validation error that names the field at fault (the error handler appends it)."""
    return PydanticCustomError("invalid_request", message, {"field": field})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InlineRow(BaseModel):
    """A labelled example: ``label`` plus the input fields the prompt's placeholders name."""

    model_config = ConfigDict(extra="allow")
    label: StrictStr | StrictInt = Field(
        description="The gold label (a dataset label value; see `label_values`)."
    )


class DataSplit(_Strict):
    dataset_id: uuid.UUID | None = Field(
        default=None, description="A dataset uploaded with POST /v1/datasets."
    )
    rows: list[InlineRow] | None = Field(
        default=None, min_length=1, max_length=20000, description="Inline examples instead of a dataset."
    )
    shuffle: bool = Field(
        default=False,
        description="Shuffle the rows with the job's seed before slicing (the same seed shuffles a dataset "
        "the same way, so disjoint slices of one dataset never overlap).",
    )
    start: int = Field(default=0, ge=0, description="First row taken (after the shuffle).")
    count: int | None = Field(default=None, ge=1, description="Rows taken from `start`; all by default.")

    @model_validator(mode="after")
    def _one_source(self) -> DataSplit:
        if (self.dataset_id is None) == (self.rows is None):
            raise ValueError("give exactly one of dataset_id or rows")
        return self


class Splits(_Strict):
    train: DataSplit = Field(description="Minibatches, gradients and bandit selection draw from it.")
    dev: DataSplit | None = Field(
        default=None, description="Picks the best prompt across rounds and drives early stopping."
    )
    test: DataSplit | None = Field(default=None, description="Reported only: initial vs best prompt.")


class SelectorIn(_Strict):
    method: Literal["ucb", "ucb-e", "successive-rejects", "successive-halving", "brute-force"] = Field(
        default="ucb",
        description="How the next beam is chosen among the candidates: UCB bandits (default), UCB-E, "
        "successive rejects, successive halving, or every candidate on the whole dev set (`brute-force`).",
    )
    eval_rounds: int = Field(default=8, ge=1, le=1000, description="Bandit rounds (budget of the bandit).")
    prompts_per_round: int = Field(default=8, ge=1, le=100, description="Arms pulled per bandit round.")
    samples_per_eval: int = Field(default=32, ge=1, le=10000, description="Examples per pull.")
    c: float = Field(
        default=1.0,
        gt=0,
        le=100,
        description="UCB exploration weight, on the reference's (LMOps') scale: the bonus is "
        "`c * sqrt(ln t / n)` (`ucb-e`: `c * sqrt(c / n)`) with `t` the 0-based bandit round and `n` the "
        "examples the candidate was scored on so far.",
    )


class HyperparamsIn(_Strict):
    rounds: int = Field(default=6, ge=0, le=100, description="Search rounds.")
    beam_size: int = Field(default=4, ge=1, le=64, description="Prompts kept after each round.")
    minibatch_size: int = Field(
        default=64, ge=1, le=10000, description="Training examples a parent is scored on to find its errors."
    )
    n_gradients: int = Field(default=4, ge=1, le=32, description="Gradient requests per parent.")
    errors_per_gradient: int = Field(default=4, ge=1, le=64, description="Errors shown per gradient request.")
    gradients_per_error: int = Field(default=1, ge=1, le=8, description="Reasons asked for per request.")
    steps_per_gradient: int = Field(default=1, ge=1, le=8, description="Edited prompts per gradient.")
    mc_samples: int = Field(
        default=2,
        ge=0,
        le=16,
        description="Paraphrases per edited prompt, and per parent when `paraphrase_parents`.",
    )
    max_expansion: int = Field(default=8, ge=1, le=128, description="Successors kept per parent.")
    paraphrase_parents: bool = Field(
        default=True,
        description="Also paraphrase each parent's own task section (`mc_samples` times), as the reference "
        "(LMOps) does; `false`: paraphrase only the edited prompts.",
    )
    shared_minibatch: bool = Field(
        default=True,
        description="Draw one training minibatch per round and score every parent on it, as the reference "
        "(LMOps) does; `false`: draw a minibatch for each parent.",
    )
    patience: int | None = Field(
        default=None,
        ge=1,
        le=100,
        description="Early stop after this many rounds without a better dev score.",
    )
    selector: SelectorIn = Field(default_factory=SelectorIn)

    def domain(self) -> Hyperparams:
        values = self.model_dump(exclude={"selector"})
        return Hyperparams(**values, selector=SelectorConfig(**self.selector.model_dump()))


class MetricIn(_Strict):
    name: Literal["accuracy", "f1", "macro_f1"] = Field(
        default="accuracy",
        description="`accuracy`; `f1`: binary F1 of `positive_label`; `macro_f1`: mean F1 over the labels.",
    )
    positive_label: str | None = Field(default=None, max_length=200, description="Required for `f1`.")

    @model_validator(mode="after")
    def _positive(self) -> MetricIn:
        if self.name == "f1" and not self.positive_label:
            raise _bad("positive_label", "metric f1 needs positive_label")
        return self

    def domain(self) -> Metric:
        return Metric(self.name, self.positive_label)


class TaskDecoding(_Strict):
    mode: Literal["generate", "logprobs"] = Field(
        default="generate",
        description="`generate`: greedy completion, first label word wins; `logprobs` (classification): "
        "the most probable label as the next tokens, one forward pass per example.",
    )
    max_tokens: int = Field(default=16, ge=1, le=2048, description="Completion limit (`generate`).")


class OptimizerDecoding(_Strict):
    temperature: float = Field(default=0.8, ge=0, le=2, description="Sampling temperature.")
    top_p: float = Field(default=1.0, gt=0, le=1)
    max_tokens: int = Field(default=400, ge=16, le=4096, description="Completion limit.")


class BudgetIn(_Strict):
    max_calls: int | None = Field(default=None, ge=1, description="Most model calls (cache hits are free).")
    max_tokens: int | None = Field(default=None, ge=1, description="Most prompt + completion tokens.")

    def domain(self) -> Budget:
        return Budget(self.max_calls, self.max_tokens)


class PromptOptimizationRequest(_Strict, JobOptionsIn):
    task_type: Literal["classification", "judge-agreement"] = Field(
        default="classification",
        description="`classification`: the prompt labels each example; `judge-agreement`: the prompt is a "
        "pairwise judge template and the labels are human verdicts (`A`, `B`, `tie`).",
    )
    task_description: str = Field(
        min_length=1, max_length=4000, description="What the task is, for the optimizer model."
    )
    labels: list[str] = Field(
        default_factory=list,
        max_length=100,
        description='Classification: the label words the prompt asks for (e.g. `["No", "Yes"]`). '
        "Judge-agreement: ignored (`A`, `B`, `tie`).",
    )
    label_values: list[str] | None = Field(
        default=None,
        description='The dataset\'s label value for each of `labels`, in order (e.g. `["0", "1"]`); by '
        "default the labels themselves.",
    )
    initial_prompt: str | None = Field(
        default=None,
        min_length=1,
        max_length=20000,
        description="The prompt to improve, with `{field}` placeholders for the example's fields. Optional "
        "`# Task` / `# Output format` sections: only the task section is edited, the output format is "
        "kept verbatim. For judge-agreement, `# Task` holds the judge instructions (system message) and "
        "`# Output format` the user message with `{question}`, `{answer_a}`, `{answer_b}`.",
    )
    judge_template: str | None = Field(
        default=None,
        max_length=64,
        description="Judge-agreement: start from this pairwise judge template (built-in or registered) "
        "instead of `initial_prompt`.",
    )
    data: Splits = Field(description="Training, dev and test examples.")
    hyperparameters: HyperparamsIn = Field(default_factory=HyperparamsIn)
    metric: MetricIn = Field(default_factory=MetricIn)
    task_model: str | None = Field(
        default=None, max_length=200, description="Model that runs the prompt; the default model if omitted."
    )
    optimizer_model: str | None = Field(
        default=None,
        max_length=200,
        description="Model that writes gradients, edits and paraphrases; the task model if omitted.",
    )
    task_decoding: TaskDecoding = Field(default_factory=TaskDecoding)
    optimizer_decoding: OptimizerDecoding = Field(default_factory=OptimizerDecoding)
    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="Seeds every random choice of the search.")
    budget: BudgetIn = Field(default_factory=BudgetIn)
    dry_run: bool = Field(default=False, description="Only return the projected calls and tokens.")

    @model_validator(mode="after")
    def _consistent(self) -> PromptOptimizationRequest:
        if self.task_type == "classification":
            if len(self.labels) < 2:
                raise _bad("labels", "classification needs at least two labels")
            if len(set(self.labels)) != len(self.labels):
                raise _bad("labels", "labels must be distinct")
            if self.initial_prompt is None:
                raise _bad("initial_prompt", "classification needs initial_prompt")
            if self.judge_template is not None:
                raise _bad("judge_template", "judge_template is for task_type judge-agreement")
        elif (self.initial_prompt is None) == (self.judge_template is None):
            field = "initial_prompt" if self.initial_prompt is None else "judge_template"
            raise _bad(field, "judge-agreement needs exactly one of initial_prompt or judge_template")
        labels = self.labels if self.task_type == "classification" else ["A", "B", "tie"]
        if self.label_values is not None and len(self.label_values) != len(labels):
            raise _bad("label_values", f"label_values needs one value per label ({', '.join(labels)})")
        if self.label_values is not None and len(set(self.label_values)) != len(self.label_values):
            raise _bad("label_values", "label_values must be distinct (each value maps to one label)")
        positive = self.metric.positive_label
        if positive is not None and positive not in labels:
            raise _bad("metric.positive_label", f"positive_label {positive!r} is not one of the labels")
        if self.task_type == "judge-agreement" and self.task_decoding.mode == "logprobs":
            raise _bad("task_decoding.mode", "task_decoding.mode logprobs is for classification")
        return self


class Projection(BaseModel):
    task_calls: int = Field(ge=0, description="Task-model calls, at most (before cache hits).")
    optimizer_calls: int = Field(ge=0, description="Optimizer-model calls, at most.")
    calls: int = Field(ge=0, description="All model calls, at most.")
    tokens: int = Field(ge=0, description="Prompt + completion tokens, estimated from text length.")
    final_eval_calls: int = Field(
        ge=0, description="Of `calls`: the final evaluation, held back from the search."
    )
    per_round: list[dict[str, int]] = Field(description="Calls per round: task, optimizer.")
    caps: list[CapCheck] = Field(
        description="The server's per-job caps against the projection, bounded by the budget (the budget "
        "stops the search at its share)."
    )
    within_caps: bool = Field(
        description="Whether every cap in `caps` holds; a submission is refused (422) otherwise."
    )
    fits_budget: bool = Field(
        description="Whether the whole projected run fits the budget and the server's per-job caps."
    )


class DryRunOut(BaseModel):
    dry_run: Literal[True] = True
    projection: Projection
    train_size: int
    dev_size: int
    test_size: int


class CandidateOut(BaseModel):
    key: str = Field(description="Stable id within the job, `r<round>c<n>`.")
    round: int
    text: str
    parent: str | None = None
    origin: Literal["initial", "edit", "paraphrase"]
    gradient: str | None = Field(default=None, description="The textual gradient the edit answered.")
    rejected: str | None = Field(default=None, description="Why the candidate was dropped, if it was.")
    minibatch_score: float | None = None
    pulls: int = Field(default=0, description="Bandit pulls (samples scored).")
    examples: int = Field(default=0, description="Examples the bandit scored it on.")
    estimate: float | None = Field(default=None, description="The bandit's score estimate.")
    dev_score: float | None = None
    in_beam: bool = False


class RoundOut(BaseModel):
    round: int
    beam: list[str] = Field(description="Candidate keys kept, best first.")
    best_key: str = Field(description="Best prompt so far (by dev score when there is a dev split).")
    best_dev_score: float | None = None
    details: dict[str, Any]


class PromptOptimizationResults(BaseModel):
    job_id: uuid.UUID
    status: str
    stop_reason: str | None = Field(default=None, description="`rounds`, `early stop: ...`, `budget`.")
    metric: str
    initial_prompt: str
    best_prompt: str | None = None
    best_key: str | None = None
    best_template: dict[str, str] | None = Field(
        default=None, description="Judge-agreement: the best prompt as a judge template (`system`, `user`)."
    )
    evaluation: dict[str, Any] = Field(
        default_factory=dict,
        description="Per split (`dev`, `test`): `initial` and `best` reports (score in the chosen metric, "
        "accuracy, macro_f1, f1 when a positive label is set, n, unparsed).",
    )
    usage: dict[str, Any] = Field(default_factory=dict, description="Calls, tokens and cache hits spent.")
    rounds: list[RoundOut]
    candidates: list[CandidateOut]

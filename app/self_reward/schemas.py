"""API contract of self-reward jobs ("Self-Rewarding Language Models")."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator

from app.jobs.schemas import CapCheck, JobOptionsIn
from app.self_reward.domain import (
    CandidateSettings,
    GuardSettings,
    InstructSettings,
    JudgeSettings,
    PairSettings,
    PromptGeneration,
)
from app.training.specs import DPOSpec, LoraSpec, SFTSpec


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IFTRow(_Strict):
    prompt: str = Field(min_length=1, max_length=20000)
    response: str = Field(min_length=1, max_length=20000)


class EFTRow(_Strict):
    prompt: str = Field(min_length=1, max_length=20000)
    response: str = Field(min_length=1, max_length=20000)
    judgment: str = Field(min_length=1, max_length=20000, description="A rubric judgment ending `Score: N`.")
    score: StrictInt = Field(ge=0, le=5)


class IFTSource(_Strict):
    dataset_id: uuid.UUID | None = Field(
        default=None, description="A dataset whose rows have `prompt` and `response` fields (label unused)."
    )
    rows: list[IFTRow] | None = Field(default=None, min_length=1, max_length=100000)

    @model_validator(mode="after")
    def _one(self) -> IFTSource:
        if (self.dataset_id is None) == (self.rows is None):
            raise ValueError("give exactly one of dataset_id or rows")
        return self


class EFTSource(_Strict):
    dataset_id: uuid.UUID | None = Field(
        default=None,
        description="A dataset whose rows have `prompt`, `response` and `judgment` fields; the label is "
        "the score.",
    )
    rows: list[EFTRow] | None = Field(default=None, min_length=1, max_length=100000)

    @model_validator(mode="after")
    def _one(self) -> EFTSource:
        if (self.dataset_id is None) == (self.rows is None):
            raise ValueError("give exactly one of dataset_id or rows")
        return self


class LoraIn(_Strict):
    r: int = Field(default=8, ge=1, le=256)
    alpha: int = Field(default=16, ge=1, le=512)
    dropout: float = Field(default=0.05, ge=0, lt=1)

    def spec(self) -> LoraSpec:
        return LoraSpec(r=self.r, alpha=self.alpha, dropout=self.dropout)


_SCHEDULE = (
    "The learning rate decays along a cosine from `learning_rate` to this at the last step (the "
    "paper's {}); equal to `learning_rate` for a constant rate, at most `learning_rate`."
)
_DROPOUT = (
    "Dropout while training, set on every dropout probability of the model's config (Llama-style models "
    "such as SmolLM2 have attention dropout only); 0 for none. Unset: the paper's 0.1 where training runs "
    "on a GPU, 0 on a CPU (there attention dropout keeps every layer's attention probabilities for the "
    "backward pass: the default model's SFT batch of 8 x 896 tokens went from 17.3 GB to over 23.9 GB)."
)


class SFTIn(_Strict):
    enabled: bool = Field(default=True, description="Train M1 from the base model on IFT + EFT data first.")
    learning_rate: float = Field(default=5.5e-6, gt=0, le=1, description="The paper's SFT learning rate.")
    min_learning_rate: float = Field(default=1.1e-6, ge=0, le=1, description=_SCHEDULE.format("1.1e-6"))
    dropout: float | None = Field(default=None, ge=0, lt=1, description=_DROPOUT)
    epochs: int = Field(default=1, ge=1, le=20)
    batch_size: int = Field(
        default=16, ge=1, le=256, description="Examples per optimizer step (the paper's 16)."
    )
    max_length: int = Field(
        default=1024, ge=32, le=32768, description="Longest example in tokens; TRL drops longer ones."
    )
    lora: LoraIn | None = Field(default=None, description="Train a LoRA adapter (merged when saved).")

    def spec(self, base_path: str, output_path: str, examples: list[dict[str, str]], seed: int) -> SFTSpec:
        """The training run these settings ask for, on ``examples`` ({"prompt", "completion"})."""
        return SFTSpec(
            base_path=base_path,
            output_path=output_path,
            examples=examples,
            learning_rate=self.learning_rate,
            min_learning_rate=self.min_learning_rate,
            dropout=self.dropout,
            epochs=self.epochs,
            batch_size=self.batch_size,
            max_length=self.max_length,
            seed=seed,
            lora=self.lora.spec() if self.lora is not None else None,
        )


class DPOIn(_Strict):
    beta: float = Field(default=0.1, gt=0, le=10)
    learning_rate: float = Field(default=1e-6, gt=0, le=1, description="The paper's DPO learning rate.")
    min_learning_rate: float = Field(default=1e-7, ge=0, le=1, description=_SCHEDULE.format("1e-7"))
    dropout: float | None = Field(default=None, ge=0, lt=1, description=_DROPOUT)
    epochs: int = Field(default=1, ge=1, le=20)
    batch_size: int = Field(
        default=16, ge=1, le=256, description="Pairs per optimizer step (the paper's 16)."
    )
    loss_type: Literal["sigmoid", "hinge", "ipo", "robust"] = Field(default="sigmoid")
    max_length: int = Field(
        default=1024, ge=32, le=32768, description="Longest example in tokens; TRL drops longer ones."
    )
    lora: LoraIn | None = Field(default=None, description="Train a LoRA adapter (merged when saved).")

    def spec(self, base_path: str, output_path: str, pairs: list[dict[str, str]], seed: int) -> DPOSpec:
        """The training run these settings ask for, on ``pairs`` ({"prompt", "chosen", "rejected"})."""
        return DPOSpec(
            base_path=base_path,
            output_path=output_path,
            pairs=pairs,
            beta=self.beta,
            learning_rate=self.learning_rate,
            min_learning_rate=self.min_learning_rate,
            dropout=self.dropout,
            epochs=self.epochs,
            batch_size=self.batch_size,
            loss_type=self.loss_type,
            max_length=self.max_length,
            seed=seed,
            lora=self.lora.spec() if self.lora is not None else None,
        )


class InstructIn(_Strict):
    shots: int = Field(default=8, ge=1, le=32)
    seed_shots: int = Field(default=6, ge=0, le=32)
    temperature: float = Field(default=0.6, ge=0, le=2)
    top_p: float = Field(default=0.9, gt=0, le=1)
    max_tokens: int = Field(default=128, ge=8, le=2048)
    min_words: int = Field(default=3, ge=1)
    max_words: int = Field(default=150, ge=1)
    max_rouge_l: float = Field(default=0.7, gt=0, le=1, description="Near-duplicate threshold.")
    max_attempts_factor: int = Field(
        default=4, ge=1, le=20, description="At most this many generation attempts per wanted prompt."
    )

    def domain(self) -> InstructSettings:
        return InstructSettings(**self.model_dump(exclude={"max_attempts_factor"}))


class CandidatesIn(_Strict):
    n: int = Field(default=4, ge=2, le=32, description="Responses sampled per prompt.")
    temperature: float = Field(default=0.7, ge=0, le=2)
    top_p: float = Field(default=0.9, gt=0, le=1)
    max_tokens: int = Field(default=256, ge=8, le=4096)

    def domain(self) -> CandidateSettings:
        return CandidateSettings(**self.model_dump())


class JudgeIn(_Strict):
    samples: int = Field(default=3, ge=1, le=16, description="Rubric judgments per response, averaged.")
    temperature: float = Field(default=0.7, ge=0, le=2)
    top_p: float = Field(default=0.9, gt=0, le=1)
    max_tokens: int = Field(default=256, ge=8, le=4096)

    def domain(self) -> JudgeSettings:
        return JudgeSettings(**self.model_dump())


class EvaluationIn(_Strict):
    heldout_prompts: int = Field(
        default=8,
        ge=0,
        le=1000,
        description="Distinct prompts of the held-out EFT data answered by both models for the win rate.",
    )
    max_tokens: int = Field(default=256, ge=8, le=4096)


class GuardsIn(_Strict):
    min_pairs: int = Field(default=2, ge=1)
    max_parse_failure_rate: float = Field(default=0.5, ge=0, le=1)
    max_tie_rate: float = Field(default=0.8, ge=0, le=1)
    max_length_ratio: float = Field(default=1.5, gt=1)
    length_growth_iterations: int = Field(default=2, ge=1)

    def domain(self) -> GuardSettings:
        return GuardSettings(**self.model_dump())


class SelfRewardRequest(_Strict, JobOptionsIn):
    base_model: str | None = Field(default=None, max_length=200, description="Name or id; the default model.")
    ift: IFTSource | None = Field(
        default=None, description="Seed instruction data; the shipped set by default."
    )
    eft: EFTSource | None = Field(default=None, description="Seed judging data; the shipped set by default.")
    eft_heldout: EFTSource | None = Field(
        default=None, description="Held-out judging data for evaluation; the shipped set by default."
    )
    iterations: int = Field(default=2, ge=1, le=20, description="DPO iterations (M1 -> M2 -> ...).")
    prompts_per_iteration: int = Field(default=16, ge=1, le=100000)
    prompt_generation: PromptGeneration = Field(
        default="fixed",
        description="Which model writes each iteration's new prompts: `fixed`, one model for every "
        "iteration, as the paper's fixed generator (`prompt_generator`, or the base model when unset); "
        "`current`, M_t, the model the iteration trains.",
    )
    prompt_generator: str | None = Field(
        default=None,
        max_length=200,
        description="The registered model that writes every iteration's new prompts with `prompt_generation` "
        "`fixed`; the base model by default. Not allowed with `current`.",
    )
    instruct: InstructIn = Field(default_factory=InstructIn)
    candidates: CandidatesIn = Field(default_factory=CandidatesIn)
    judge: JudgeIn = Field(default_factory=JudgeIn)
    length_control: bool = Field(
        default=False, description="Among equally scored answers, choose the shorter and reject the longer."
    )
    sft: SFTIn = Field(default_factory=SFTIn)
    dpo: DPOIn = Field(default_factory=DPOIn)
    evaluation: EvaluationIn = Field(default_factory=EvaluationIn)
    guards: GuardsIn = Field(default_factory=GuardsIn)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    dry_run: bool = Field(
        default=False, description="Only return the projected calls, tokens and training steps."
    )

    def pair_settings(self) -> PairSettings:
        return PairSettings(length_control=self.length_control)


class StageProjection(BaseModel):
    calls: int = Field(ge=0, description="Engine calls, at most.")
    tokens: int = Field(ge=0, description="Prompt + completion tokens, estimated from text length.")


class IterationProjection(BaseModel):
    iteration: int = Field(description="0: the SFT stage; t >= 1: DPO iteration t.")
    calls: int = Field(ge=0)
    tokens: int = Field(ge=0)
    training_steps: int = Field(ge=0, description="Optimizer steps of this iteration's training, at most.")


class SelfRewardProjection(BaseModel):
    prompts: StageProjection = Field(
        description="Self-instruct generations: `prompts_per_iteration` x `instruct.max_attempts_factor` "
        "per iteration."
    )
    candidates: StageProjection = Field(description="`candidates.n` responses per prompt.")
    judgments: StageProjection = Field(description="`judge.samples` rubric judgments per response.")
    evaluation: StageProjection = Field(
        description="Held-out answers of both models, held-out EFT grading and the win-rate judgments, "
        "after every training stage."
    )
    calls: int = Field(ge=0, description="All engine calls, at most.")
    tokens: int = Field(ge=0, description="All prompt + completion tokens, estimated.")
    training_steps: int = Field(ge=0, description="Optimizer steps of SFT and every DPO iteration, at most.")
    per_iteration: list[IterationProjection]
    caps: list[CapCheck] = Field(description="The server's per-job caps against the projection.")
    fits_budget: bool = Field(
        description="Whether the projected run is within every cap in `caps`; a submission is refused "
        "otherwise."
    )


class SelfRewardDryRunOut(BaseModel):
    dry_run: Literal[True] = True
    projection: SelfRewardProjection
    ift_size: int = Field(description="Seed instruction examples.")
    eft_size: int = Field(description="Seed judging examples.")
    heldout_size: int = Field(description="Held-out judging examples.")


class IterationOut(BaseModel):
    iteration: int = Field(description="0: the SFT stage; t >= 1: DPO iteration t (M_t -> M_{t+1}).")
    model_id: uuid.UUID | None = Field(default=None, description="The model this iteration produced.")
    model: str | None = None
    metrics: dict[str, Any] = Field(
        description="Prompts kept and dropped, candidates, pairs kept, tie-drop rate, parse failures, score "
        "histogram, chosen vs rejected length, training metrics (loss, DPO reward margins), evaluation "
        "(the judge's ranking of each held-out EFT prompt's responses against gold, as the paper's Table 4: "
        "pairwise accuracy, exact match, 5-best, Spearman and Kendall tau; mean response length; "
        "self-judged win rate against the previous model)."
    )
    flags: list[str] = Field(default_factory=list, description="Warnings the guards raised.")


class SelfRewardResults(BaseModel):
    job_id: uuid.UUID
    status: str
    stage: str | None = None
    stop_reason: str | None = Field(default=None, description="Why the loop stopped early, if it did.")
    base_model: str
    final_model: str | None = None
    iterations: list[IterationOut]

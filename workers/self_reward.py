"""Self-reward jobs in the worker: the Self-Rewarding Language Models loop as a chain of stages, each
committed before the next starts.

Iteration 0 (optional) fine-tunes M1 from the base model on the seed IFT and EFT data. Iteration t
(M_t -> M_{t+1}) runs: ``prompts`` (self-instruct), ``candidates`` (N samples per prompt),
``judgments`` (M_t grades each candidate k times with the additive rubric), ``pairs`` (best vs worst,
then the guards), ``train`` (DPO with TRL, in a child process, checkpoint written before anything uses
it), ``register`` (the new model and its lineage) and ``evaluate`` (held-out judging accuracy, response
length, self-judged win rate against M_t). A retried job resumes at the stage it was in; an interrupted
stage is redone from its start (its partial rows are cleared first).

The worker's one engine serves every model of the run: it swaps weights in place between models.
"""

from __future__ import annotations

import functools
import logging
import random
import re
import threading
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from app.db.tables import SrCandidate, SrJudgment, SrPair, SrPrompt
from app.engine.base import Conversation, Generation, SamplingParams
from app.jobs import lifecycle
from app.jobs import repository as jobs_repo
from app.judging.domain import CallOutput, JudgeItem, JudgeOptions
from app.judging.planning import plan_item
from app.judging.swap import aggregate
from app.judging.templates import builtin_templates
from app.models import repository as models_repo
from app.scheduling.policy import Priority
from app.self_reward import repository as sr_repo
from app.self_reward import service as sr_service
from app.self_reward.domain import IterationStats, ScoredCandidate
from app.self_reward.evaluation import pairwise_accuracy, spearman, win_rate
from app.self_reward.guards import check_iteration
from app.self_reward.instruct import few_shot_conversation, filter_prompt, parse_new_prompt, task_complete
from app.self_reward.pairs import score_histogram, select_pair
from app.self_reward.rubric import judge_conversation, parse_score
from app.self_reward.schemas import LoraIn, SelfRewardRequest
from app.training.dispatch import train
from app.training.runner import TrainingCancelled, TrainingFailed
from app.training.specs import DPOSpec, LoraSpec, SFTSpec
from workers import outcome
from workers.context import WorkerContext
from workers.lease import LeaseKeeper
from workers.scheduler import RequestCancelled, SchedulerStopped

log = logging.getLogger(__name__)

LOOP_STEPS = ("prompts", "candidates", "judgments", "pairs", "train", "register", "evaluate")
SFT_STEPS = ("train", "register", "evaluate")


class Stop(Exception):
    """The job ends here: cancelled by the client, or stopped by a guard."""

    def __init__(self, status: str, reason: str | None) -> None:
        super().__init__(reason or status)
        self.status = status
        self.reason = reason


class LeaseLost(RuntimeError):
    pass


def _words(text: str) -> int:
    return len(re.findall(r"\S+", text))


def _lora(spec: LoraIn | None) -> LoraSpec | None:
    return None if spec is None else LoraSpec(r=spec.r, alpha=spec.alpha, dropout=spec.dropout)


class SelfRewardRun:
    def __init__(
        self, ctx: WorkerContext, lease: LeaseKeeper, job_id: uuid.UUID, cancel: threading.Event | None = None
    ) -> None:
        self.ctx = ctx
        self.lease = lease
        self.job_id = job_id
        # Set by the worker when the job is cancelled: stops a training child at once.
        self.cancel = cancel or threading.Event()
        with ctx.db.unit_of_work() as session:
            job = jobs_repo.get_job(session, job_id)
            if job is None:
                raise LookupError(f"job {job_id} is gone")
            self.tenant = job.tenant
            self.request = SelfRewardRequest.model_validate(job.params)
            self.data = sr_service.load_seed_data(session, self.request, job.tenant)
            run = sr_repo.get_run(session, job_id)
            self.state: dict[str, Any] = dict(run.state) if run is not None else {}
            base = models_repo.get_by_name(session, self.request.base_model or job.model)
            if base is None:
                raise LookupError(f"base model {self.request.base_model!r} is not registered")
            self.base_name = base.name
        if not self.state:
            first = 0 if self.request.sft.enabled else 1
            self.state = {
                "iteration": first,
                "step": "train" if first == 0 else "prompts",
                "model": self.base_name,
                "history": [],
                "stop_reason": None,
            }
        self.total = self.request.iterations + (1 if self.request.sft.enabled else 0)

    # -- driving -------------------------------------------------------------------------------
    def run(self) -> None:
        while self.state["iteration"] <= self.request.iterations:
            t, step = self.state["iteration"], self.state["step"]
            self._check_interrupted()
            self._progress(f"iteration {t}/{self.request.iterations}: {step}" if t else f"sft: {step}")
            getattr(self, f"_{step}")(t)
        self._progress("done")

    def _advance(self, session: Any, t: int) -> None:
        """Move the state past the step just done (committed with that step's rows)."""
        steps = SFT_STEPS if t == 0 else LOOP_STEPS
        index = steps.index(self.state["step"])
        if index + 1 < len(steps):
            self.state["step"] = steps[index + 1]
        else:
            self.state["iteration"] = t + 1
            self.state["step"] = "prompts"
        sr_repo.save_run(session, self.job_id, f"iteration {t}: {steps[index]}", self.state)

    def _progress(self, stage: str) -> None:
        done = self.state["iteration"] - (0 if self.request.sft.enabled else 1)
        with self.ctx.db.unit_of_work() as session:
            lifecycle.record_progress(
                session, self.ctx.queue, self.job_id, max(0, done), stage[:64], total=self.total
            )
            jobs_repo.set_detail(
                session,
                self.job_id,
                {
                    "iteration": self.state["iteration"],
                    "step": self.state["step"],
                    "model": self.state["model"],
                },
            )

    def _check_interrupted(self) -> None:
        if self.lease.is_lost(self.job_id):
            raise LeaseLost
        with self.ctx.db.unit_of_work() as session:
            if jobs_repo.is_cancel_requested(session, self.job_id):
                raise Stop("cancelled", None)
        if self.ctx.shutdown.is_set():
            raise outcome.ShuttingDown

    def _generate(
        self, model: str, convs: Sequence[Conversation], sampling: SamplingParams
    ) -> list[Generation]:
        """Generate in chunks, checking for cancel between them (the job may be long)."""
        engine = self.ctx.engine_for(model, Priority.BACKGROUND, self.tenant, self.job_id)
        chunk = max(1, self.ctx.settings.batch_size * 4)
        out: list[Generation] = []
        for start in range(0, len(convs), chunk):
            if start:
                self._check_interrupted()
            try:
                out.extend(engine.generate(list(convs[start : start + chunk]), sampling))
            except RequestCancelled:
                raise Stop("cancelled", None) from None
            except SchedulerStopped:
                raise outcome.ShuttingDown from None
        return out

    def _seed(self, *parts: object) -> int:
        return random.Random(":".join(str(p) for p in (self.request.seed, *parts))).randrange(2**31)

    # -- iteration stages ----------------------------------------------------------------------
    def _prompts(self, t: int) -> None:
        req = self.request
        settings = req.instruct.domain()
        generator = req.prompt_generator or self.state["model"]
        seeds = [ex.prompt for ex in self.data.ift]
        with self.ctx.db.unit_of_work() as session:
            earlier = [
                p.text for p in sr_repo.prompts(session, self.job_id) if p.iteration < t and not p.dropped
            ]
        rng = random.Random(self._seed(t, "prompts"))
        wanted = req.prompts_per_iteration
        budget = wanted * req.instruct.max_attempts_factor
        kept: list[str] = []
        rows: list[SrPrompt] = []
        sampling = SamplingParams(
            temperature=settings.temperature,
            top_p=settings.top_p,
            max_tokens=settings.max_tokens,
            seed=self._seed(t, "prompts", "sampling"),
        )
        while len(kept) < wanted and len(rows) < budget:
            batch = min(budget - len(rows), max(wanted - len(kept), self.ctx.settings.batch_size))
            convs = [few_shot_conversation(seeds, [*earlier, *kept], settings, rng) for _ in range(batch)]
            for gen in self._generate(generator, convs, sampling):
                text = parse_new_prompt(gen.text)
                if text is None:
                    reason: str | None = "no task found in the reply"
                elif not task_complete(gen.text, gen.finish_reason == "length"):
                    reason = "the reply hit the token limit inside the task"
                elif len(kept) >= wanted:
                    reason = "enough prompts already"
                else:
                    reason = filter_prompt(text, [*seeds, *earlier, *kept], settings)
                if reason is None and text is not None:
                    kept.append(text)
                rows.append(
                    SrPrompt(
                        job_id=self.job_id,
                        iteration=t,
                        index=len(rows),
                        text=text or "",
                        raw=gen.text,
                        dropped=reason,
                    )
                )
        with self.ctx.db.unit_of_work() as session:
            sr_repo.clear_stage(session, self.job_id, t, "prompts")
            sr_repo.add_rows(session, rows)
            dropped = Counter(_reason_kind(r.dropped) for r in rows if r.dropped)
            sr_repo.save_iteration(
                session,
                self.job_id,
                t,
                metrics={"prompts": {"generated": len(rows), "kept": len(kept), "dropped": dict(dropped)}},
            )
            if kept:
                self._advance(session, t)
        if not kept:
            raise Stop("failed", f"iteration {t}: no usable prompt in {len(rows)} generated")

    def _candidates(self, t: int) -> None:
        req = self.request.candidates
        with self.ctx.db.unit_of_work() as session:
            prompts = [p for p in sr_repo.prompts(session, self.job_id, t) if not p.dropped]
        convs: list[Conversation] = [
            [{"role": "user", "content": p.text}] for p in prompts for _ in range(req.n)
        ]
        sampling = SamplingParams(
            temperature=req.temperature,
            top_p=req.top_p,
            max_tokens=req.max_tokens,
            seed=self._seed(t, "cand"),
        )
        gens = self._generate(self.state["model"], convs, sampling)
        rows = [
            SrCandidate(
                job_id=self.job_id,
                iteration=t,
                prompt_index=prompts[i // req.n].index,
                index=i % req.n,
                text=gen.text,
                finished=gen.finish_reason == "stop" and bool(gen.text.strip()),
                tokens_out=gen.tokens_out,
            )
            for i, gen in enumerate(gens)
        ]
        with self.ctx.db.unit_of_work() as session:
            sr_repo.clear_stage(session, self.job_id, t, "candidates")
            sr_repo.add_rows(session, rows)
            unfinished = sum(1 for r in rows if not r.finished)
            sr_repo.save_iteration(
                session,
                self.job_id,
                t,
                metrics={"candidates": {"total": len(rows), "unfinished": unfinished}},
            )
            self._advance(session, t)

    def _judgments(self, t: int) -> None:
        req = self.request.judge
        with self.ctx.db.unit_of_work() as session:
            texts = {p.index: p.text for p in sr_repo.prompts(session, self.job_id, t)}
            cands = [c for c in sr_repo.candidates(session, self.job_id, t) if c.finished]
            keys = [(c.prompt_index, c.index, texts[c.prompt_index], c.text) for c in cands]
        units = [(p, c, s) for p, c, _, _ in keys for s in range(req.samples)]
        convs = [judge_conversation(prompt, text) for _, _, prompt, text in keys for _ in range(req.samples)]
        sampling = SamplingParams(
            temperature=req.temperature,
            top_p=req.top_p,
            max_tokens=req.max_tokens,
            seed=self._seed(t, "judge"),
        )
        gens = self._generate(self.state["model"], convs, sampling)
        rows = []
        for (p, c, s), gen in zip(units, gens, strict=True):
            score = parse_score(gen.text)
            error = score.error
            if score.value is None and gen.finish_reason == "length":
                error = f"{error} (the judgment hit the token limit)"
            rows.append(
                SrJudgment(
                    job_id=self.job_id,
                    iteration=t,
                    prompt_index=p,
                    candidate_index=c,
                    sample=s,
                    raw=gen.text,
                    score=score.value,
                    error=error,
                )
            )
        with self.ctx.db.unit_of_work() as session:
            sr_repo.clear_stage(session, self.job_id, t, "judgments")
            sr_repo.add_rows(session, rows)
            failures = sum(1 for r in rows if r.score is None)
            sr_repo.save_iteration(
                session,
                self.job_id,
                t,
                metrics={
                    "judgments": {"total": len(rows), "parse_failures": failures},
                    "score_histogram": score_histogram(r.score for r in rows if r.score is not None),
                },
            )
            self._advance(session, t)

    def _pairs(self, t: int) -> None:
        settings = self.request.pair_settings()
        with self.ctx.db.unit_of_work() as session:
            cands = sr_repo.candidates(session, self.job_id, t)
            judged = sr_repo.judgments(session, self.job_id, t)
        scores: dict[tuple[int, int], list[float]] = defaultdict(list)
        for j in judged:
            if j.score is not None:
                scores[(j.prompt_index, j.candidate_index)].append(j.score)
        by_prompt: dict[int, list[SrCandidate]] = defaultdict(list)
        for c in cands:
            by_prompt[c.prompt_index].append(c)
        stats = IterationStats(
            judgments=len(judged), parse_failures=sum(1 for j in judged if j.score is None)
        )
        rows = []
        for p, group in sorted(by_prompt.items()):
            scored = [
                ScoredCandidate(c.index, c.text, tuple(scores.get((p, c.index), ())), c.finished)
                for c in group
            ]
            decision = select_pair(scored, settings)
            means = {s.index: s.mean for s in scored}
            stats.prompts += 1
            kept = decision.chosen is not None and decision.rejected is not None
            texts = {c.index: c.text for c in group}
            if decision.chosen is not None and decision.rejected is not None:
                stats.pairs += 1
                stats.chosen_lengths.append(_words(texts[decision.chosen]))
                stats.rejected_lengths.append(_words(texts[decision.rejected]))
            elif decision.reason.startswith("all candidates tie"):
                stats.ties += 1
            rows.append(
                SrPair(
                    job_id=self.job_id,
                    iteration=t,
                    prompt_index=p,
                    kept=kept,
                    reason=decision.reason,
                    chosen_index=decision.chosen,
                    rejected_index=decision.rejected,
                    chosen_score=means.get(decision.chosen) if decision.chosen is not None else None,
                    rejected_score=means.get(decision.rejected) if decision.rejected is not None else None,
                )
            )
        history = [IterationStats(**h) for h in self.state["history"]]
        guard = check_iteration(stats, history, self.request.guards.domain())
        metrics = {
            "pairs": {
                "kept": stats.pairs,
                "prompts": stats.prompts,
                "tie_dropped": stats.ties,
                "tie_drop_rate": stats.ties / stats.prompts if stats.prompts else 0.0,
                "other_dropped": stats.prompts - stats.pairs - stats.ties,
            },
            "parse_failure_rate": stats.parse_failures / stats.judgments if stats.judgments else 0.0,
            "length": {
                "chosen_mean_words": _mean(stats.chosen_lengths),
                "rejected_mean_words": _mean(stats.rejected_lengths),
            },
        }
        with self.ctx.db.unit_of_work() as session:
            sr_repo.clear_stage(session, self.job_id, t, "pairs")
            sr_repo.add_rows(session, rows)
            sr_repo.save_iteration(session, self.job_id, t, metrics=metrics, flags=guard.flags)
            self.state["history"] = [*self.state["history"], _stats_json(stats)]
            if guard.stop is not None:
                self.state["stop_reason"] = f"iteration {t}: {guard.stop}"
                sr_repo.save_run(session, self.job_id, f"iteration {t}: pairs (guard stop)", self.state)
            else:
                self._advance(session, t)
        if guard.stop is not None:
            raise Stop("failed", self.state["stop_reason"])

    # -- training, registration, evaluation ------------------------------------------------------
    def _model_name(self, t: int) -> str:
        return f"{self.base_name}-sr-{self.job_id.hex[:8]}-m{t + 1}"

    def _model_path(self, name: str) -> Path:
        with self.ctx.db.unit_of_work() as session:
            record = models_repo.get_by_name(session, name)
            path = record.artifact_path if record is not None else None
        if path is None:
            raise LookupError(f"model {name!r} has no local weights")
        return Path(path)

    def _train(self, t: int) -> None:
        name = self._model_name(t)
        base_path = str(self._model_path(self.state["model"]))
        output = str(self.ctx.settings.models_dir / name)
        timeout = float(self.ctx.settings.job_timeout_seconds)
        if t == 0:
            sft = self.request.sft
            examples = [{"prompt": ex.prompt, "completion": ex.response} for ex in self.data.ift] + [
                {
                    "prompt": judge_conversation(ex.prompt, ex.response)[-1]["content"],
                    "completion": ex.judgment,
                }
                for ex in self.data.eft
            ]
            spec: SFTSpec | DPOSpec = SFTSpec(
                base_path=base_path,
                output_path=output,
                examples=examples,
                learning_rate=sft.learning_rate,
                epochs=sft.epochs,
                batch_size=sft.batch_size,
                max_length=sft.max_length,
                seed=self._seed(t, "sft"),
                lora=_lora(sft.lora),
            )
            kind, counts = "sft", {"ift_examples": len(self.data.ift), "eft_examples": len(self.data.eft)}
        else:
            dpo = self.request.dpo
            pairs = self._dpo_pairs(t)
            spec = DPOSpec(
                base_path=base_path,
                output_path=output,
                pairs=pairs,
                beta=dpo.beta,
                learning_rate=dpo.learning_rate,
                epochs=dpo.epochs,
                batch_size=dpo.batch_size,
                loss_type=dpo.loss_type,
                max_length=dpo.max_length,
                seed=self._seed(t, "dpo"),
                lora=_lora(dpo.lora),
            )
            kind, counts = "dpo", {"pairs": len(pairs)}
        try:
            result = train(
                kind,
                spec,
                timeout,
                self.cancel,
                settings=self.ctx.settings,
                redis=self.ctx.queue.redis,
                shutdown=self.ctx.shutdown,
                job_id=str(self.job_id),
            )
        except TrainingCancelled:
            self._check_interrupted()  # cancelled, or the worker is stopping: say which
            raise outcome.ShuttingDown from None
        except TrainingFailed as exc:
            raise Stop("failed", f"iteration {t}: {kind} training failed: {exc}") from exc
        if not result.metrics.get("steps"):
            # TRL silently drops examples longer than max_length; a run with no step taught nothing.
            raise Stop(
                "failed",
                f"iteration {t}: {kind} training ran no step (are all examples longer than "
                f"{kind}.max_length tokens?)",
            )
        with self.ctx.db.unit_of_work() as session:
            self.state["trained"] = {"name": name, "path": result.output_path}
            sr_repo.save_iteration(
                session, self.job_id, t, metrics={"training": {"kind": kind, **counts, **result.metrics}}
            )
            self._advance(session, t)

    def _dpo_pairs(self, t: int) -> list[dict[str, str]]:
        with self.ctx.db.unit_of_work() as session:
            texts = {p.index: p.text for p in sr_repo.prompts(session, self.job_id, t)}
            cands = {(c.prompt_index, c.index): c.text for c in sr_repo.candidates(session, self.job_id, t)}
            kept = [p for p in sr_repo.pairs(session, self.job_id, t) if p.kept]
        return [
            {
                "prompt": texts[p.prompt_index],
                "chosen": cands[(p.prompt_index, p.chosen_index)],  # type: ignore[index]
                "rejected": cands[(p.prompt_index, p.rejected_index)],  # type: ignore[index]
            }
            for p in kept
        ]

    def _register(self, t: int) -> None:
        trained = self.state["trained"]
        with self.ctx.db.unit_of_work() as session:
            parent = models_repo.get_by_name(session, self.state["model"])
            assert parent is not None
            rows = sr_repo.iterations(session, self.job_id)
            metrics = next((r.metrics for r in rows if r.iteration == t), {})
            record = models_repo.register_trained(
                session,
                name=trained["name"],
                backend=self.ctx.settings.backend,
                artifact_path=trained["path"],
                parent_id=parent.id,
                job_id=self.job_id,
                iteration=t,
                metrics={
                    "stage": "sft" if t == 0 else "dpo",
                    "training": metrics.get("training", {}),
                    "pairs": metrics.get("pairs"),
                    "prompts": metrics.get("prompts"),
                },
                owner=self.tenant,
            )
            sr_repo.save_iteration(session, self.job_id, t, metrics={}, model_id=record.id)
            self._advance(session, t)

    def _evaluate(self, t: int) -> None:
        previous, new = self.state["model"], self.state["trained"]["name"]
        ev = self.request.evaluation
        greedy = SamplingParams(temperature=0.0, max_tokens=ev.max_tokens)
        prompts = list(dict.fromkeys(ex.prompt for ex in self.data.heldout))[: ev.heldout_prompts]
        convs: list[Conversation] = [[{"role": "user", "content": p}] for p in prompts]
        before = [g.text for g in self._generate(previous, convs, greedy)] if prompts else []
        after = [g.text for g in self._generate(new, convs, greedy)] if prompts else []
        judged = self._generate(
            new,
            [judge_conversation(ex.prompt, ex.response) for ex in self.data.heldout],
            SamplingParams(temperature=0.0, max_tokens=self.request.judge.max_tokens),
        )
        parsed = [parse_score(g.text).value for g in judged]
        gold = [float(ex.score) for ex in self.data.heldout]
        both = [(p, g) for p, g in zip(parsed, gold, strict=True) if p is not None]
        evaluation: dict[str, Any] = {
            "eft_heldout": {
                "n": len(gold),
                "parse_failures": sum(1 for p in parsed if p is None),
                "pairwise_accuracy": pairwise_accuracy(parsed, gold),
                "spearman": spearman([p for p, _ in both], [g for _, g in both]) if len(both) >= 2 else None,
            },
            "mean_response_words": _mean([_words(a) for a in after]),
            "previous_mean_response_words": _mean([_words(b) for b in before]),
        }
        if prompts:
            evaluation["win_rate_vs_previous"] = self._win_rate(new, prompts, after, before)
        with self.ctx.db.unit_of_work() as session:
            sr_repo.save_iteration(session, self.job_id, t, metrics={"evaluation": evaluation})
            self.state["model"] = new
            self.state.pop("trained", None)
            self._advance(session, t)

    def _win_rate(self, judge: str, prompts: list[str], new: list[str], old: list[str]) -> dict[str, Any]:
        """The new model judges its answers (A) against the previous model's (B), in both orders."""
        template = builtin_templates()["pairwise"]
        options = JudgeOptions(mode="pairwise", swap="conservative")
        plans = [
            plan_item(JudgeItem(turns=(p,), answers_a=(a,), answers_b=(b,)), template, options, i)
            for i, (p, a, b) in enumerate(zip(prompts, new, old, strict=True))
        ]
        flat = [call for plan in plans for call in plan]
        gens = iter(
            self._generate(
                judge,
                [c.messages for c in flat],
                SamplingParams(temperature=0.0, max_tokens=16, stop=("]]",)),
            )
        )
        verdicts, errors = [], 0
        for plan in plans:
            outputs = []
            for call in plan:
                gen = next(gens)
                outputs.append(
                    CallOutput(call.order, call.response_prefix + gen.text + (gen.stop_string or ""))
                )
            outcome = aggregate("pairwise", "conservative", outputs, options.scale)
            if outcome.verdict is None:
                errors += 1
            else:
                verdicts.append(outcome.verdict)
        rates: dict[str, Any] = win_rate(verdicts) if verdicts else {}
        return {**rates, "n": len(prompts), "errors": errors}


def _reason_kind(reason: str | None) -> str:
    """Group drop reasons for counting ("near-duplicate of '...'" -> "near-duplicate of")."""
    if not reason:
        return ""
    return re.split(r"[:(']", reason, maxsplit=1)[0].strip()


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _stats_json(stats: IterationStats) -> dict[str, Any]:
    return {
        "prompts": stats.prompts,
        "pairs": stats.pairs,
        "ties": stats.ties,
        "judgments": stats.judgments,
        "parse_failures": stats.parse_failures,
        "chosen_lengths": stats.chosen_lengths,
        "rejected_lengths": stats.rejected_lengths,
    }


def run_self_reward(
    ctx: WorkerContext,
    lease: LeaseKeeper,
    job_id: uuid.UUID,
    attempts: int,
    cancel: threading.Event | None = None,
) -> str:
    """Run (or resume) a self-reward job to its end; returns what happened, for RQ's logs. ``cancel``,
    when set by the worker, stops a training in progress at once."""
    lease.hold(job_id)
    try:
        return _run(ctx, lease, job_id, attempts, cancel)
    finally:
        lease.release(job_id)


def _run(
    ctx: WorkerContext, lease: LeaseKeeper, job_id: uuid.UUID, attempts: int, cancel: threading.Event | None
) -> str:
    end: Callable[[str, str | None], None] = functools.partial(outcome.end, ctx, job_id)
    try:
        SelfRewardRun(ctx, lease, job_id, cancel).run()
    except LeaseLost:
        log.warning("job %s: lease lost to another worker; stopping", job_id)
        return "lease lost"
    except Stop as stop:
        end(stop.status, stop.reason)
        return stop.status
    except outcome.ShuttingDown:
        # Committed stages stay done; the next worker redoes only the interrupted one.
        with ctx.db.unit_of_work() as session:
            outcome.hand_back(ctx, session, job_id)
        return "handed back (shutdown)"
    except Exception as exc:
        log.exception("self-reward job %s failed", job_id)
        with ctx.db.unit_of_work() as session:
            outcome.retry_or_fail(ctx, session, job_id, attempts, f"{type(exc).__name__}: {exc}")
        return "failed or retrying"
    end("succeeded", None)
    return "succeeded"

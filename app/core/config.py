"""The one settings object. Environment variables use the ``JUDGE_`` prefix, except the two
connection URLs, which also accept the conventional ``DATABASE_URL`` and ``REDIS_URL``.

With no settings at all the service runs in *embedded* mode: a SQLite file and an in-process
Redis (fakeredis) under the data directory.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MODEL = "SmolLM2-135M-Instruct"


def _default_data_dir() -> Path:
    return Path.home() / ".local" / "share" / "judge-service"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="JUDGE_", extra="ignore")

    data_dir: Path = Field(default_factory=_default_data_dir, description="Models, SQLite file, logs.")
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("JUDGE_DATABASE_URL", "DATABASE_URL"),
        description="SQLAlchemy URL; unset means the embedded SQLite file under data_dir.",
    )
    redis_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("JUDGE_REDIS_URL", "REDIS_URL"),
        description="Redis URL; unset means an in-process fakeredis server (embedded mode).",
    )

    default_model: str = DEFAULT_MODEL
    backend: Literal["transformers", "vllm", "openai"] = "transformers"
    device: str = Field(default="auto", description="transformers device: auto, cpu, cuda, cuda:1 ...")
    dtype: str = Field(default="auto", description="auto, float32, bfloat16, float16")
    torch_threads: int | None = Field(
        default=None,
        ge=1,
        description="CPU threads a worker's torch runs its operations on; unset: torch's default (one per "
        "core). Where several model workers share one CPU host (a jury's judges), give each a share of the "
        "cores: threads beyond the cores make every worker slower.",
    )
    tensor_parallel_size: int = Field(default=1, ge=1)
    gpu_memory_utilization: float = Field(
        default=0.85,
        gt=0,
        le=1,
        description="Share of GPU memory a worker's vLLM engines take, split evenly over its own engine "
        "and the `max_extra_engines` it may load beside it.",
    )
    openai_base_url: str | None = None
    openai_api_key: str | None = None
    openai_model: str | None = Field(default=None, description="Model name on the OpenAI-compatible server.")
    openai_max_concurrency: int = Field(default=8, ge=1)

    max_items: int = Field(default=1000, ge=1, description="Most items one judging request may carry.")
    max_dataset_rows: int = Field(default=100_000, ge=1, description="Most rows one dataset may hold.")
    summary_bootstrap_rounds: int = Field(
        default=1000,
        ge=0,
        description="Bootstrap resamples behind a summary's intervals when the request names none.",
    )
    max_summary_bootstrap_rounds: int = Field(
        default=10_000, ge=0, description="Most bootstrap resamples one summary request may ask for."
    )
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    max_prompt_chars: int = Field(
        default=100_000,
        ge=1,
        description="Longest text one judging item may carry (all its fields together).",
    )
    max_samples: int = Field(
        default=10,
        ge=1,
        description="Most judgments per order one judging request may ask for (`samples`, self-consistency).",
    )
    rate_limit_per_second: float = Field(
        default=50.0, ge=0, description="Requests per second per API key (a token bucket); 0 turns it off."
    )
    rate_limit_burst: int = Field(default=200, ge=1, description="Requests a key may make at once.")
    auth_cache_seconds: float = Field(
        default=2.0,
        ge=0,
        description="How long an API process trusts an API key it has checked without looking it up "
        "again; a revoked key stops working within this time. 0 looks every request up.",
    )
    auth_failures_per_second: float = Field(
        default=1.0,
        ge=0,
        description="Failed API key lookups (a well-formed key that is unknown or revoked) per second per "
        "client address (a token bucket); past it the address gets 429 without a lookup. 0 turns it off.",
    )
    auth_failures_burst: int = Field(
        default=20, ge=1, description="Failed API key lookups a client address may make at once."
    )
    max_active_jobs_per_tenant: int = Field(
        default=10_000, ge=1, description="Queued plus running jobs a tenant may have at once."
    )
    max_active_long_jobs_per_tenant: int = Field(
        default=8,
        ge=1,
        description="Queued plus running long jobs (prompt optimization, self-reward) a tenant may have "
        "at once.",
    )
    # Cost bounds of long jobs: what one job may project, and caps on each of its size parameters
    # (the request schemas' own bounds are far looser). Generous for research runs on a GPU; they
    # refuse values no run means to spend.
    max_job_calls: int = Field(
        default=5_000_000,
        ge=1,
        description="Most model calls one long job may project (a prompt-optimization budget, if smaller, "
        "bounds the projection).",
    )
    max_job_tokens: int = Field(
        default=5_000_000_000,
        ge=1,
        description="Most prompt + completion tokens one long job may project (a prompt-optimization "
        "budget, if smaller, bounds the projection).",
    )
    max_job_new_tokens: int = Field(
        default=2048,
        ge=1,
        description="Largest completion limit (`max_tokens`) of any generation in a long job.",
    )
    max_sr_iterations: int = Field(default=10, ge=1, description="Self-reward: most DPO `iterations`.")
    max_sr_prompts_per_iteration: int = Field(
        default=20_000, ge=1, description="Self-reward: most `prompts_per_iteration`."
    )
    max_sr_attempts_factor: int = Field(
        default=10, ge=1, description="Self-reward: largest `instruct.max_attempts_factor`."
    )
    max_sr_candidates: int = Field(
        default=16, ge=2, description="Self-reward: most responses sampled per prompt (`candidates.n`)."
    )
    max_sr_judge_samples: int = Field(
        default=8, ge=1, description="Self-reward: most judgments per response (`judge.samples`)."
    )
    max_sr_heldout_prompts: int = Field(
        default=500, ge=0, description="Self-reward: most `evaluation.heldout_prompts`."
    )
    max_sr_seed_examples: int = Field(
        default=20_000,
        ge=2,
        description="Self-reward: most examples in each seed set (`ift`, `eft`, `eft_heldout`).",
    )
    max_sr_training_epochs: int = Field(
        default=10, ge=1, description="Self-reward: most `sft.epochs` and `dpo.epochs`."
    )
    max_sr_training_max_length: int = Field(
        default=8192, ge=32, description="Self-reward: largest `sft.max_length` and `dpo.max_length`."
    )
    max_po_rounds: int = Field(default=30, ge=0, description="Prompt optimization: most search `rounds`.")
    max_po_beam_size: int = Field(default=16, ge=1, description="Prompt optimization: largest `beam_size`.")
    max_po_minibatch_size: int = Field(
        default=1000, ge=1, description="Prompt optimization: largest `minibatch_size`."
    )
    max_po_gradients: int = Field(
        default=16, ge=1, description="Prompt optimization: most `n_gradients` per parent."
    )
    max_po_errors_per_gradient: int = Field(
        default=32, ge=1, description="Prompt optimization: most `errors_per_gradient`."
    )
    max_po_gradients_per_error: int = Field(
        default=4, ge=1, description="Prompt optimization: most `gradients_per_error`."
    )
    max_po_steps_per_gradient: int = Field(
        default=4, ge=1, description="Prompt optimization: most `steps_per_gradient`."
    )
    max_po_paraphrases: int = Field(
        default=8, ge=0, description="Prompt optimization: most paraphrases per edit (`mc_samples`)."
    )
    max_po_expansion: int = Field(
        default=32, ge=1, description="Prompt optimization: most successors per parent (`max_expansion`)."
    )
    max_po_bandit_rounds: int = Field(
        default=200, ge=1, description="Prompt optimization: most `selector.eval_rounds`."
    )
    max_po_prompts_per_bandit_round: int = Field(
        default=32, ge=1, description="Prompt optimization: most `selector.prompts_per_round`."
    )
    max_po_samples_per_eval: int = Field(
        default=1000, ge=1, description="Prompt optimization: most `selector.samples_per_eval`."
    )
    max_po_eval_rows: int = Field(
        default=10_000,
        ge=1,
        description="Prompt optimization: most examples in the dev split and in the test split (each is "
        "scored again every round or at the end; the train split is only sampled).",
    )
    prediction_cache_scope: Literal["tenant", "operator"] = Field(
        default="tenant",
        description="Whose prompt-optimization model outputs a job may reuse from the prediction cache: "
        "`tenant`, its own tenant's only (a hit on another tenant's rows would tell what that tenant ran); "
        "`operator`, every tenant's (fewer model calls, for a service whose tenants trust each other).",
    )
    verdict_cache_scope: Literal["tenant", "operator"] = Field(
        default="tenant",
        description="Whose cached judge outputs a judging job may reuse (the verdict cache): `tenant`, its "
        "own tenant's only (a hit on another tenant's entries would tell what that tenant judged); "
        "`operator`, every tenant's (fewer engine calls, for a service whose tenants trust each other).",
    )
    max_wait_seconds: float = Field(default=600.0, ge=0)
    max_new_tokens_limit: int = Field(default=4096, ge=1)
    batch_size: int = Field(
        default=64, ge=1, description="Most requests (rows) one engine batch decodes together."
    )
    batch_tokens: int | None = Field(
        default=None,
        ge=256,
        description="Key/value memory one engine batch may hold, in tokens: the sum over its rows of "
        "prompt + new tokens. Unset: a quarter of the machine's memory (GPU memory on a GPU) divided by "
        "the model's key/value bytes per token (the worker logs the figure).",
    )
    scheduler_aging_seconds: float = Field(
        default=20.0,
        ge=0,
        description="A long job's model request that waited this many seconds moves up to batch judging's "
        "priority class, so no stream of judging starves a long job (a client waiting with `?wait=` "
        "always comes first). 0 turns aging off.",
    )
    max_long_jobs_per_worker: int = Field(
        default=4,
        ge=1,
        description="Long jobs (prompt optimization, self-reward) one worker orchestrates at once; their "
        "model calls share its scheduler with judging.",
    )

    api_drain_seconds: float = Field(
        default=30.0,
        ge=0,
        description="On SIGTERM the API stops accepting connections and gives open requests (long "
        "`wait`s included) this long to finish.",
    )
    job_lease_seconds: float = Field(default=120.0, gt=0)
    job_max_attempts: int = Field(default=3, ge=1)
    job_queued_timeout_seconds: float = Field(
        default=24 * 3600.0,
        gt=0,
        description="A job still queued this long after its last change fails: no worker took it (none "
        "runs for its model, or none can load it; the error then says why). Every worker's sweeper and "
        "`judge reconcile` check all queues.",
    )
    model_load_failure_grace_seconds: float = Field(
        default=300.0,
        ge=0,
        description="Jobs queued for a model that its workers reported they cannot load fail, with the "
        "reason, once the failure has stood this long (time to fix the model's folder and restart its "
        "worker: a load clears the report). Every worker's sweeper and `judge reconcile` check them.",
    )
    min_free_disk_mb: int = Field(
        default=512,
        ge=0,
        description="`/readyz` answers `unavailable` (503) when the data directory's disk has less free "
        "space than this, in MiB (0: no check).",
    )
    job_timeout_seconds: int = Field(default=6 * 3600, ge=1)
    model_call_retries: int = Field(
        default=3, ge=0, le=20, description="Retries of a failed model call in long jobs before they fail."
    )
    model_retry_backoff_seconds: float = Field(default=1.0, ge=0, description="First retry delay; doubles.")
    max_extra_engines: int = Field(
        default=1, ge=0, description="Models a worker loads besides its own (e.g. a job's optimizer model)."
    )
    train_launcher: Literal["python", "accelerate"] = Field(
        default="python",
        description="How a worker starts an SFT/DPO child: `python -m app.training`, or under `accelerate "
        "launch` (multi-GPU DDP/FSDP/DeepSpeed through `train_accelerate_config`).",
    )
    train_accelerate_config: Path | None = Field(
        default=None, description="`accelerate launch --config_file` for the `accelerate` launcher."
    )
    train_num_processes: int | None = Field(
        default=None,
        ge=1,
        description="Training processes under `accelerate` (one per GPU); unset: the config file's, or 1.",
    )
    train_nice: int = Field(
        default=10,
        ge=0,
        le=19,
        description="Niceness added to training processes, so that a training on the serving machine "
        "does not starve the engine of CPU.",
    )
    train_idle_priority: bool = Field(
        default=True,
        description="Run training processes in Linux's SCHED_IDLE class: on a machine that also serves, "
        "they get a CPU only when serving leaves one idle (serving first, training in the gaps).",
    )
    train_yield_to_serving: Literal["auto", "always", "never"] = Field(
        default="auto",
        description="Pause (SIGSTOP) a training while a worker on the same host runs a waiting client's or "
        "a judging job's calls, resuming it after (time paused does not count against its timeout). "
        "`auto`: only on hosts without an NVIDIA device, where training and serving share the CPU.",
    )
    train_devices: str | None = Field(
        default=None,
        description="CUDA_VISIBLE_DEVICES of training processes (e.g. `1` or `2,3`, apart from the serving "
        "engine's); unset: they see what the worker sees.",
    )
    trainer: Literal["queue", "local"] = Field(
        default="queue",
        description="Where a worker's SFT/DPO runs: `queue` sends it to a `judge trainer` process (its own "
        "process and devices; the embedded mode starts one), `local` runs it as a child of the worker.",
    )
    trainer_queue: str = Field(
        default="judge.trainer",
        min_length=1,
        description="Redis key prefix of the trainer queue: workers and `judge trainer` processes that share "
        "it share the trainings (one prefix per pool of training devices).",
    )
    trainer_heartbeat_seconds: float = Field(
        default=15.0,
        ge=1,
        description="A trainer, and a worker waiting for it, count as gone when they have not refreshed "
        "their heartbeat in Redis for this long (both refresh it several times per period).",
    )
    trainer_absent_seconds: float = Field(
        default=120.0,
        ge=1,
        description="How long a queued training waits while no `judge trainer` is running before the "
        "worker gives up on it (the job is retried, then fails).",
    )

    metrics_access: Literal["public", "admin", "off"] = Field(
        default="public",
        description="`/metrics`: `public` (no key; it shows no tenant's data, restrict it at the network "
        "edge), `admin` (a key with the admin scope, e.g. Prometheus' `authorization` setting), `off`.",
    )
    metrics_jobs_cache_seconds: float = Field(
        default=5.0, ge=0, description="How long `/metrics` reuses its count of jobs by state and kind."
    )
    dashboard_session_hours: float = Field(
        default=12.0,
        gt=0,
        description="How long a dashboard sign-in lasts (a browser then signs in again); signing out or "
        "revoking the key ends it at once.",
    )
    dashboard_refresh_seconds: int = Field(
        default=5,
        ge=0,
        description="Dashboard pages showing queued or running jobs reload this often (0: never).",
    )

    public_url: str | None = Field(
        default=None,
        max_length=1000,
        description="The API's public base URL (e.g. `https://judge.example.com`): webhook bodies then "
        "carry an absolute `results_url`; unset, a path.",
    )
    job_events_max_len: int = Field(
        default=1000,
        ge=10,
        description="Live events kept per job (older ones are trimmed: a client resuming behind them gets "
        "the job's current state instead).",
    )
    job_events_ttl_seconds: int = Field(
        default=3600, ge=1, description="How long a job's live events are kept after the job ends."
    )
    events_keepalive_seconds: float = Field(
        default=15.0, gt=0, description="Seconds between keep-alive comments on an idle event stream."
    )
    webhook_secret: SecretStr | None = Field(
        default=None,
        description="Key of the HMAC-SHA256 signature of webhook bodies (`X-Judge-Signature`); while it is "
        "unset, requests with a `callback_url` are refused.",
    )
    webhook_max_attempts: int = Field(
        default=10, ge=1, le=100, description="Deliveries of one webhook before it is given up."
    )
    webhook_retry_backoff_seconds: float = Field(
        default=5.0, ge=0, description="Delay before a webhook's first retry; doubles, at most an hour."
    )
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, description="Timeout of one webhook call.")
    webhook_private_addresses: bool = Field(
        default=False,
        description="Whether webhooks may call non-global addresses: private, loopback, link-local, shared "
        "(100.64.0.0/10) ... (off: a tenant cannot make the service probe its internal network; the embedded "
        "mode turns it on).",
    )

    embedded_worker: bool = Field(
        default=True, description="`judge serve` in embedded mode also starts a worker process."
    )
    embedded_trainer: bool = Field(
        default=True,
        description="`judge serve` in embedded mode also starts a `judge trainer` process (with "
        "`trainer` = `queue`).",
    )
    auto_pull_default_model: bool = Field(
        default=True, description="Fetch and convert the default model on first start when it is missing."
    )

    @property
    def embedded(self) -> bool:
        return self.database_url is None and self.redis_url is None

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            url = self.database_url
            # Bare postgres URLs select psycopg 3, the driver we ship.
            for prefix in ("postgresql://", "postgres://"):
                if url.startswith(prefix):
                    return "postgresql+psycopg://" + url[len(prefix) :]
            return url
        return f"sqlite:///{self.data_dir / 'judge.sqlite3'}"


@lru_cache
def get_settings() -> Settings:
    return Settings()

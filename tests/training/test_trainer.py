"""`judge trainer` and its requester (app.training.dispatch) over the test Redis: requests are served and
answered, cancel and shutdown reach the training child within seconds, and a requester never waits
forever for a trainer that died or never ran.

The training child is a stand-in (tests/training/sleeper.py, or a script that writes a result), except
in one real tiny SFT through the queue.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import pytest
from redis import Redis

from app.core.config import Settings
from app.models.artifacts import is_model_present
from app.training.dispatch import TrainerClient, TrainerLost, train
from app.training.protocol import TrainerKeys, TrainReply, TrainRequest
from app.training.runner import TrainingCancelled, TrainingFailed
from app.training.specs import SFTSpec, TrainResult
from app.training.trainer import Trainer
from tests.conftest import TEST_REDIS_URL
from tests.training.test_launch import EXAMPLES
from tests.training.test_lifecycle import ROOT, SPEC, alive, sleeper, wait_for_pids, wait_gone
from tests.training.tiny_model import make_tiny_model

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux process control")

HEARTBEAT_S = 2.0
# The training child for a successful run: writes a result naming the spec's output path.
WRITES_RESULT = [
    sys.executable,
    "-c",
    "import json, sys; spec = json.load(open(sys.argv[1])); "
    "json.dump({'output_path': spec['output_path'], 'metrics': {'steps': 3}}, open(sys.argv[2], 'w'))",
]
FAILS = [sys.executable, "-c", "import sys; print('out of memory, say'); sys.exit(3)"]


@pytest.fixture
def trainer_settings() -> Settings:
    return Settings(
        redis_url=TEST_REDIS_URL,
        trainer_queue=f"test.trainer.{uuid.uuid4().hex[:8]}",
        trainer_heartbeat_seconds=HEARTBEAT_S,
        trainer_absent_seconds=3.0,
        train_nice=0,
    )


class TrainerThread:
    """A trainer serving in a thread of this process, stopped at the end of the test."""

    def __init__(self, redis: Redis, settings: Settings, command: Sequence[str] | None) -> None:
        self.trainer = Trainer(redis, settings, command=command, grace_s=2.0)
        self.thread = threading.Thread(target=self.trainer.serve, daemon=True)

    def __enter__(self) -> Trainer:
        self.thread.start()
        return self.trainer

    def __exit__(self, *exc: object) -> None:
        self.trainer.stop()
        self.thread.join(timeout=15)
        assert not self.thread.is_alive()


class Request(threading.Thread):
    """The requester (a worker's long job) in a thread: ``result`` or ``error`` is how it ended."""

    def __init__(
        self,
        redis: Redis,
        settings: Settings,
        spec: SFTSpec = SPEC,
        cancel: threading.Event | None = None,
        shutdown: threading.Event | None = None,
    ) -> None:
        super().__init__(daemon=True)
        self.redis, self.settings, self.spec = redis, settings, spec
        self.cancel, self.shutdown = cancel, shutdown
        self.result: TrainResult | None = None
        self.error: BaseException | None = None
        self.ended_at = 0.0

    def run(self) -> None:
        try:
            self.result = train(
                "sft",
                self.spec,
                300,
                self.cancel,
                settings=self.settings,
                redis=self.redis,
                shutdown=self.shutdown,
                job_id="job-1",
            )
        except BaseException as exc:
            self.error = exc
        self.ended_at = time.monotonic()


def test_a_request_is_served_and_answered(redis: Redis, trainer_settings: Settings) -> None:
    with TrainerThread(redis, trainer_settings, WRITES_RESULT):
        result = train("sft", SPEC, 60, settings=trainer_settings, redis=redis, job_id="job-1")

    assert result == TrainResult(output_path=SPEC.output_path, metrics={"steps": 3})
    keys = TrainerKeys(trainer_settings.trainer_queue)
    request_keys = [k for k in redis.keys(f"{keys.prefix}:*") if k != keys.alive.encode()]
    assert request_keys == []  # nothing left behind but the trainer's presence


def test_a_failed_training_raises_training_failed_with_its_output(
    redis: Redis, trainer_settings: Settings
) -> None:
    with TrainerThread(redis, trainer_settings, FAILS), pytest.raises(TrainingFailed) as failed:
        train("sft", SPEC, 60, settings=trainer_settings, redis=redis)

    assert "exit code 3" in str(failed.value)
    assert "out of memory, say" in failed.value.output_tail


@pytest.mark.parametrize("stop", ["cancelled", "shutdown"])
def test_cancel_or_worker_shutdown_ends_the_training_child_within_seconds(
    stop: str, redis: Redis, trainer_settings: Settings, tmp_path: Path
) -> None:
    event = threading.Event()
    cancel, shutdown = (event, None) if stop == "cancelled" else (None, event)
    with TrainerThread(redis, trainer_settings, sleeper(tmp_path / "pids")):
        request = Request(redis, trainer_settings, cancel=cancel, shutdown=shutdown)
        request.start()
        pids = wait_for_pids(tmp_path / "pids")

        started = time.monotonic()
        event.set()
        request.join(timeout=15)

        assert isinstance(request.error, TrainingCancelled)
        assert request.error.reason == stop
        # The requester returns once the trainer confirms that the child's whole group is gone.
        assert request.ended_at - started < 5
        assert not any(alive(p) for p in pids)


def test_a_request_cancelled_before_a_trainer_takes_it_leaves_the_queue(
    redis: Redis, trainer_settings: Settings
) -> None:
    redis.set(TrainerKeys(trainer_settings.trainer_queue).alive, "elsewhere", px=60_000)
    cancel = threading.Event()
    request = Request(redis, trainer_settings, cancel=cancel)
    request.start()
    time.sleep(1)
    cancel.set()
    request.join(timeout=5)

    assert isinstance(request.error, TrainingCancelled) and request.error.reason == "cancelled"
    assert redis.llen(TrainerKeys(trainer_settings.trainer_queue).queue) == 0


def trainer_process(settings: Settings, command: list[str]) -> subprocess.Popen[str]:
    """A real trainer process, as `judge trainer` runs it, with a stand-in training child."""
    code = f"""
        import logging
        from redis import Redis
        from app.core.config import Settings
        from app.training.trainer import Trainer, serve_until_signalled
        logging.basicConfig(level=logging.INFO)
        settings = Settings.model_validate_json({settings.model_dump_json()!r})
        trainer = Trainer(Redis.from_url(settings.redis_url), settings, command={command!r}, grace_s=2.0)
        serve_until_signalled(trainer)
        """
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, text=True)


def test_a_trainer_stopped_mid_request_answers_shutdown_and_leaves_no_child(
    redis: Redis, trainer_settings: Settings, tmp_path: Path
) -> None:
    proc = trainer_process(trainer_settings, sleeper(tmp_path / "pids"))
    try:
        request = Request(redis, trainer_settings)
        request.start()
        pids = wait_for_pids(tmp_path / "pids")

        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        request.join(timeout=5)

        assert time.monotonic() - started < 8
        # The job is handed back to its queue, not failed.
        assert isinstance(request.error, TrainingCancelled)
        assert request.error.reason == "shutdown"
        wait_gone(pids, timeout=2)
    finally:
        proc.kill()


def test_a_trainer_killed_mid_request_does_not_leave_its_requester_waiting(
    redis: Redis, trainer_settings: Settings, tmp_path: Path
) -> None:
    proc = trainer_process(trainer_settings, sleeper(tmp_path / "pids"))
    try:
        request = Request(redis, trainer_settings)
        request.start()
        pids = wait_for_pids(tmp_path / "pids")

        started = time.monotonic()
        proc.kill()
        request.join(timeout=HEARTBEAT_S + 10)

        assert isinstance(request.error, TrainerLost)
        assert "stopped answering" in str(request.error)
        assert request.ended_at - started < HEARTBEAT_S + 4
        # The training went with its trainer (parent-death signal, and its watchdog below a launcher).
        wait_gone(pids, timeout=5)
    finally:
        proc.kill()


def test_with_no_trainer_running_the_request_gives_up(redis: Redis, trainer_settings: Settings) -> None:
    started = time.monotonic()
    with pytest.raises(TrainerLost, match="judge trainer"):
        train("sft", SPEC, 60, settings=trainer_settings, redis=redis)

    assert time.monotonic() - started < trainer_settings.trainer_absent_seconds + 3
    # A trainer that starts later does not run the abandoned request.
    assert redis.llen(TrainerKeys(trainer_settings.trainer_queue).queue) == 0


def test_a_training_whose_requester_is_gone_is_stopped(
    redis: Redis, trainer_settings: Settings, tmp_path: Path
) -> None:
    keys = TrainerKeys(trainer_settings.trainer_queue)
    request = TrainRequest.model_validate({"kind": "sft", "spec": asdict(SPEC), "timeout_s": 60})
    rid = request.request_id
    # A requester that refreshed its heartbeat once, then died (its worker was killed).
    redis.set(keys.waiting(rid), "", px=1500)
    redis.lpush(keys.queue, request.model_dump_json())
    with TrainerThread(redis, trainer_settings, sleeper(tmp_path / "pids")):
        pids = wait_for_pids(tmp_path / "pids")
        raw = redis.blpop([keys.reply(rid)], timeout=10)

    assert raw is not None
    reply = TrainReply.model_validate_json(raw[1])
    assert reply.status == "cancelled"
    assert "requester is gone" in reply.message
    wait_gone(pids, timeout=2)


def test_an_invalid_request_is_answered_failed_and_the_trainer_keeps_serving(
    redis: Redis, trainer_settings: Settings
) -> None:
    keys = TrainerKeys(trainer_settings.trainer_queue)
    redis.lpush(keys.queue, '{"request_id": "bad-1", "kind": "rlhf", "spec": {}, "timeout_s": 1}')
    with TrainerThread(redis, trainer_settings, WRITES_RESULT):
        raw = redis.blpop([keys.reply("bad-1")], timeout=10)
        assert raw is not None
        assert TrainReply.model_validate_json(raw[1]).status == "failed"
        assert train("sft", SPEC, 60, settings=trainer_settings, redis=redis).metrics == {"steps": 3}


def test_judge_trainer_serves_until_sigterm(redis: Redis, trainer_settings: Settings) -> None:
    env = {
        **os.environ,
        "JUDGE_REDIS_URL": TEST_REDIS_URL,
        "JUDGE_TRAINER_QUEUE": trainer_settings.trainer_queue,
    }
    env.pop("REDIS_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "trainer"], cwd=ROOT, env=env)
    try:
        keys = TrainerKeys(trainer_settings.trainer_queue)
        deadline = time.monotonic() + 30
        while not redis.exists(keys.alive) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert redis.exists(keys.alive)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    texts = [f"{ex['prompt']} {ex['completion']}" for ex in EXAMPLES]
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "base", texts)


def test_a_tiny_sft_trains_through_the_queue(
    redis: Redis, trainer_settings: Settings, tiny_base: Path, tmp_path: Path
) -> None:
    output = tmp_path / "sft"
    spec = SFTSpec(
        base_path=str(tiny_base), output_path=str(output), examples=EXAMPLES, learning_rate=1e-3, batch_size=1
    )
    with TrainerThread(redis, trainer_settings, None):
        result = TrainerClient(redis, trainer_settings).train("sft", spec, 300, job_id="job-1")

    assert result.output_path == str(output)
    assert result.metrics["steps"] == 2
    assert is_model_present(output)

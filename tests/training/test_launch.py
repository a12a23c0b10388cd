"""How the training child is launched: plain ``python -m app.training`` or under ``accelerate launch``
(a real, tiny SFT through each), its CPU priority and the devices it sees."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest

from app.core.config import Settings
from app.models.artifacts import is_model_present
from app.training.runner import Launcher, TrainLaunch, run_in_subprocess
from app.training.specs import SFTSpec
from tests.training.test_lifecycle import SLEEPER, Training, wait_for_pids
from tests.training.tiny_model import make_tiny_model

EXAMPLES = [
    {"prompt": "What is 2+2?", "completion": "2+2 equals 4."},
    {"prompt": "Name the capital of France.", "completion": "The capital of France is Paris."},
]


def test_the_default_launch_is_plain_python() -> None:
    launch = TrainLaunch.from_settings(Settings())

    assert launch == TrainLaunch(launcher="python", nice=10, idle=True)
    assert launch.command(["sft", "s.json", "r.json"]) == [
        sys.executable,
        *("-m", "app.training", "sft", "s.json", "r.json"),
    ]


def test_accelerate_launch_takes_its_config_file_and_process_count() -> None:
    settings = Settings(
        train_launcher="accelerate", train_accelerate_config=Path("fsdp.yaml"), train_num_processes=4
    )

    cmd = TrainLaunch.from_settings(settings).command(["dpo", "s.json", "r.json"])

    assert cmd[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    assert cmd[3:7] == ["--config_file", "fsdp.yaml", "--num_processes", "4"]
    assert cmd[-5:] == ["-m", "app.training", "dpo", "s.json", "r.json"]
    # Without a process count, the config file's stands.
    assert "--num_processes" not in TrainLaunch(
        launcher="accelerate", accelerate_config=Path("c.yaml")
    ).command([])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_child_runs_at_a_lower_priority_on_its_own_devices(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    cancel = threading.Event()
    launch = TrainLaunch(nice=7, devices="3", idle=True)
    command = [sys.executable, str(SLEEPER), str(pidfile)]
    thread = Training(command, cancel, launch=launch)
    thread.start()
    try:
        child = wait_for_pids(pidfile, count=2)[0]
        nice = int(Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[16])
        policy = os.sched_getscheduler(child)
        environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
    finally:
        cancel.set()
        thread.join(timeout=10)
    assert nice == min(19, os.nice(0) + 7)
    assert policy == os.SCHED_IDLE  # serving threads preempt it at once
    assert b"CUDA_VISIBLE_DEVICES=3" in environ


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    texts = [f"{ex['prompt']} {ex['completion']}" for ex in EXAMPLES]
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "base", texts)


@pytest.mark.parametrize("launcher", ["python", "accelerate"])
def test_a_tiny_sft_trains_through_each_launcher(launcher: Launcher, tiny_base: Path, tmp_path: Path) -> None:
    output = tmp_path / "sft"
    spec = SFTSpec(
        base_path=str(tiny_base), output_path=str(output), examples=EXAMPLES, learning_rate=1e-3, batch_size=1
    )

    result = run_in_subprocess("sft", spec, 300, launch=TrainLaunch(launcher=launcher))

    assert result.output_path == str(output)
    assert result.metrics["steps"] == 2
    assert len(result.metrics["loss_history"]) == 2
    assert is_model_present(output)

"""A training child never outlives its parent, and a stop reaches every process it started.

Real processes stand in for the training (tests/training/sleeper.py): a launcher like ``accelerate
launch``, a "trainer" below it that watches its parent like ``python -m app.training``, and a
``sleep`` below each.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from app.training.runner import TrainingCancelled, TrainLaunch, run_in_subprocess, terminate_all
from app.training.specs import SFTSpec

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux process control")

ROOT = Path(__file__).resolve().parents[2]
SLEEPER = Path(__file__).with_name("sleeper.py")
SPEC = SFTSpec(base_path="unused", output_path="unused", examples=[{"prompt": "p", "completion": "c"}])
# launcher and its sleep, trainer and its sleep
TREE = 4


def sleeper(pidfile: Path, *flags: str) -> list[str]:
    return [sys.executable, str(SLEEPER), str(pidfile), "--launcher", *flags]


def wait_for_pids(pidfile: Path, count: int = TREE, timeout: float = 30) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pidfile.exists() and len(pids := [int(p) for p in pidfile.read_text().split()]) >= count:
            return pids
        time.sleep(0.05)
    raise AssertionError(f"the sleepers did not start: {pidfile.read_text() if pidfile.exists() else ''}")


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"  # a zombie has ended; only its exit status waits for its parent


def wait_gone(pids: list[int], timeout: float) -> float:
    """Seconds until every pid has ended; fails after ``timeout``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if not any(alive(p) for p in pids):
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"still running after {timeout}s: {[p for p in pids if alive(p)]}")


class Training(threading.Thread):
    """run_in_subprocess in a thread; ``error`` is what it raised."""

    def __init__(
        self,
        command: list[str],
        cancel: threading.Event | None = None,
        grace_s: float = 5.0,
        launch: TrainLaunch | None = None,
    ) -> None:
        super().__init__(daemon=True)
        self.command, self.cancel, self.grace_s = command, cancel, grace_s
        self.launch = launch or TrainLaunch(nice=0)
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            run_in_subprocess(
                "sft",
                SPEC,
                300,
                self.cancel,
                launch=self.launch,
                grace_s=self.grace_s,
                command=self.command,
            )
        except BaseException as exc:
            self.error = exc


def test_cancel_ends_the_whole_training_group_within_seconds(tmp_path: Path) -> None:
    cancel = threading.Event()
    training = Training(sleeper(tmp_path / "pids"), cancel)
    training.start()
    pids = wait_for_pids(tmp_path / "pids")

    started = time.monotonic()
    cancel.set()
    training.join(timeout=10)

    assert not training.is_alive()
    assert time.monotonic() - started < 4
    assert isinstance(training.error, TrainingCancelled)
    assert training.error.reason == "cancelled"
    wait_gone(pids, timeout=2)


def test_a_child_ignoring_sigterm_is_killed_after_the_grace_period(tmp_path: Path) -> None:
    cancel = threading.Event()
    training = Training(sleeper(tmp_path / "pids", "--ignore-term"), cancel, grace_s=1.0)
    training.start()
    pids = wait_for_pids(tmp_path / "pids")

    started = time.monotonic()
    cancel.set()
    training.join(timeout=10)

    assert 1.0 <= time.monotonic() - started < 4
    assert isinstance(training.error, TrainingCancelled)
    wait_gone(pids, timeout=2)


def test_terminate_all_stops_running_trainings_as_a_shutdown(tmp_path: Path) -> None:
    trainings = [Training(sleeper(tmp_path / f"pids{i}")) for i in range(2)]
    for training in trainings:
        training.start()
    pids = [pid for i in range(2) for pid in wait_for_pids(tmp_path / f"pids{i}")]

    assert terminate_all(grace_s=2.0) == 2

    for training in trainings:
        training.join(timeout=5)
        assert isinstance(training.error, TrainingCancelled)
        assert training.error.reason == "shutdown"
    wait_gone(pids, timeout=2)
    assert terminate_all() == 0


def run_python(code: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )


def test_a_parent_killed_by_sigkill_takes_its_training_and_grandchildren_along(tmp_path: Path) -> None:
    parent = run_python(
        f"""
        from app.training.runner import TrainLaunch, run_in_subprocess
        from app.training.specs import SFTSpec
        spec = SFTSpec(base_path="x", output_path="x", examples=[{{"prompt": "p", "completion": "c"}}])
        command = {sleeper(tmp_path / "pids")!r}
        run_in_subprocess("sft", spec, 300, launch=TrainLaunch(nice=0), command=command)
        """
    )
    try:
        pids = wait_for_pids(tmp_path / "pids")
        parent.kill()
        parent.wait()
        # the launcher by its parent-death signal, the trainer by its watchdog (0.2 s here)
        wait_gone(pids, timeout=5)
    finally:
        parent.kill()


def rq_worker(pidfile: Path, outfile: Path) -> str:
    """A process running an RQ worker (on fakeredis) whose one job trains with a sleeper."""
    return f"""
        import fakeredis, rq
        conn = fakeredis.FakeStrictRedis()
        queue = rq.Queue("train", connection=conn)
        queue.enqueue("tests.training.sleeper.train_job", {str(pidfile)!r}, {str(outfile)!r}, job_timeout=600)
        rq.SimpleWorker([queue], connection=conn).work(burst=True)
        """


def test_a_worker_asked_to_stop_ends_its_training_instead_of_waiting_for_it(tmp_path: Path) -> None:
    worker = run_python(rq_worker(tmp_path / "pids", tmp_path / "outcome"))
    try:
        pids = wait_for_pids(tmp_path / "pids")
        started = time.monotonic()
        worker.send_signal(signal.SIGTERM)  # RQ's warm shutdown: "finish the current job"
        worker.wait(timeout=10)
        assert time.monotonic() - started < 8
        assert (tmp_path / "outcome").read_text() == "shutdown"
        wait_gone(pids, timeout=2)
    finally:
        worker.kill()


def test_embedded_serve_killed_takes_its_worker_and_training_along(tmp_path: Path) -> None:
    # `judge serve` starts its worker with a parent-death SIGTERM (app.embedded._die_with_parent).
    worker_code = textwrap.dedent(rq_worker(tmp_path / "pids", tmp_path / "outcome"))
    serve = run_python(
        f"""
        import subprocess, sys
        from app.embedded import _die_with_parent
        worker = subprocess.Popen([sys.executable, "-c", {worker_code!r}], preexec_fn=_die_with_parent)
        print(worker.pid, flush=True)
        worker.wait()
        """
    )
    try:
        assert serve.stdout is not None
        worker_pid = int(serve.stdout.readline())
        pids = wait_for_pids(tmp_path / "pids")
        serve.kill()
        serve.wait()
        wait_gone([worker_pid, *pids], timeout=8)
        assert (tmp_path / "outcome").read_text() == "shutdown"
    finally:
        serve.kill()

"""Running one training in a child process (``python -m app.training``), so that a worker gets the
training's memory back when it ends and a crash in it cannot take the worker down.

A training never outlives the process that started it:

- cancel (the caller's event), timeout, :func:`terminate_all`, this process's exit (atexit) and a
  SIGTERM/SIGINT that this process handles in Python (RQ's warm shutdown) end the child's whole
  process group: SIGTERM, a grace period, then SIGKILL;
- the child gets SIGKILL from Linux when the thread that started it ends, even by SIGKILL
  (``PR_SET_PDEATHSIG``); :func:`run_in_subprocess` waits for its child in that same thread;
- ``python -m app.training`` ends its process group when its parent goes away, which covers the
  processes a launcher (``accelerate launch``) starts below the direct child.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import ctypes
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import IO, TYPE_CHECKING, Any, Literal

from app.training.specs import DPOSpec, SFTSpec, TrainResult, result_from_json
from app.training.watchdog import OWN_GROUP_ENV

if TYPE_CHECKING:
    from app.core.config import Settings

log = logging.getLogger(__name__)
child_log = logging.getLogger("app.training.child")

_TAIL_LINES = 40
_POLL_S = 0.2
_YIELD_POLL_S = 0.1
DEFAULT_GRACE_S = 5.0
_PR_SET_PDEATHSIG = 1

Launcher = Literal["python", "accelerate"]
_Handler = Callable[[int, FrameType | None], Any]


class TrainingFailed(RuntimeError):
    """A training child process failed, crashed or timed out. ``output_tail`` holds its last lines."""

    def __init__(self, message: str, output_tail: str = "") -> None:
        super().__init__(message)
        self.output_tail = output_tail


class TrainingCancelled(RuntimeError):
    """The training was stopped before its end. ``reason`` is "cancelled" (the caller's ``cancel``
    event was set) or "shutdown" (this process is stopping: :func:`terminate_all`, atexit, or a
    SIGTERM/SIGINT it handles).

    Deliberately not a :class:`TrainingFailed`: a stop says nothing about the training, and the caller
    decides what it means (end the job as cancelled, or hand it back to the queue).
    """

    def __init__(self, reason: Literal["cancelled", "shutdown"], message: str, output_tail: str = "") -> None:
        super().__init__(message)
        self.reason = reason
        self.output_tail = output_tail


@dataclass(frozen=True)
class TrainLaunch:
    """How the training child is started: the launcher, the devices it sees and its CPU priority.

    ``launcher`` "python" runs ``python -m app.training`` directly; "accelerate" runs it under
    ``accelerate launch`` (``accelerate_config``: its config file, for DDP/FSDP/DeepSpeed;
    ``num_processes``: None keeps the config's, or 1 without one). ``devices`` becomes the child's
    CUDA_VISIBLE_DEVICES (None: inherited). ``nice`` is added to the child's niceness; ``idle`` puts it
    in Linux's SCHED_IDLE class: it gets a CPU only when serving leaves one idle.
    """

    launcher: Launcher = "python"
    accelerate_config: Path | None = None
    num_processes: int | None = None
    nice: int = 10
    devices: str | None = None
    idle: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> TrainLaunch:
        return cls(
            launcher=settings.train_launcher,
            accelerate_config=settings.train_accelerate_config,
            num_processes=settings.train_num_processes,
            nice=settings.train_nice,
            devices=settings.train_devices,
            idle=settings.train_idle_priority,
        )

    def command(self, entry_args: Sequence[str]) -> list[str]:
        """The child's command line for ``python -m app.training <entry_args>``."""
        if self.launcher == "python":
            return [sys.executable, "-m", "app.training", *entry_args]
        cmd = [sys.executable, "-m", "accelerate.commands.launch"]
        if self.accelerate_config is not None:
            cmd += ["--config_file", str(self.accelerate_config)]
        if self.num_processes is not None or self.accelerate_config is None:
            cmd += ["--num_processes", str(self.num_processes or 1)]
        if self.accelerate_config is None:
            # What a config file would say; without them accelerate warns about each missing default.
            cmd += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
        return [*cmd, "-m", "app.training", *entry_args]


def run_in_subprocess(
    kind: str,
    spec: SFTSpec | DPOSpec,
    timeout_s: float,
    cancel: threading.Event | None = None,
    *,
    launch: TrainLaunch | None = None,
    grace_s: float = DEFAULT_GRACE_S,
    command: Sequence[str] | None = None,
    yield_to: Callable[[], bool] | None = None,
) -> TrainResult:
    """Run a ``kind`` ("sft" or "dpo") training of ``spec`` in a child process and return its result.
    The child's output goes to the ``app.training.child`` logger line by line.

    ``launch`` None reads :class:`TrainLaunch` from the process's settings. ``cancel`` is polled every
    0.2 s; once set, the child's process group gets SIGTERM, then SIGKILL after ``grace_s``.
    ``command`` replaces the ``python -m app.training`` command line (tests); the spec and result
    paths are appended to it. ``yield_to`` (see :mod:`app.training.yielding`), polled every 0.1 s:
    while it says True the child's process group is stopped (SIGSTOP), and resumed (SIGCONT) after;
    time paused does not count against ``timeout_s``.

    Call it from a thread that lives until it returns (it does not return before its child is
    gone): Linux kills the child when the thread that started it ends. Called from the main
    thread, a SIGTERM or SIGINT that the process handles in Python (RQ's warm shutdown) first
    stops the training, then runs that handler.

    Raises TrainingCancelled when ``cancel`` is set or the process shuts down, and TrainingFailed
    when the child exits non-zero (its error and last lines in the message) or runs past
    ``timeout_s``.
    """
    launch = launch if launch is not None else TrainLaunch.from_settings(_settings())
    with tempfile.TemporaryDirectory(prefix="judge-train-") as scratch:
        spec_path = Path(scratch) / "spec.json"
        result_path = Path(scratch) / "result.json"
        spec_path.write_text(json.dumps(asdict(spec)))
        paths = [str(spec_path), str(result_path)]
        cmd = [*command, *paths] if command is not None else launch.command([kind, *paths])
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "TOKENIZERS_PARALLELISM": "false",
            OWN_GROUP_ENV: "1",
        }
        if launch.devices is not None:
            env["CUDA_VISIBLE_DEVICES"] = launch.devices
        log.info("starting %s training in a child process (output %s): %s", kind, spec.output_path, cmd)
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            text=True,
            errors="replace",
            start_new_session=True,  # its own process group: stopping it reaches what it started
            preexec_fn=_child_setup(os.getpid(), launch.nice, launch.idle),
        )
        assert proc.stdout is not None
        tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
        reader = threading.Thread(target=_relay, args=(proc.stdout, tail), daemon=True)
        reader.start()
        training = _Training(proc)
        try:
            with _registered(training), _stop_on_signals(training):
                returncode = _wait(training, cancel, timeout_s, grace_s, yield_to)
        finally:
            if proc.poll() is None:  # interrupted while waiting: leave no orphan behind
                _end_group(proc, grace_s)
        reader.join(timeout=5)
        output = "\n".join(tail)
        if returncode is None:
            raise TrainingFailed(f"{kind} training timed out after {timeout_s:g}s", output)
        if training.reason is not None:
            raise TrainingCancelled(training.reason, f"{kind} training stopped ({training.reason})", output)
        outcome = _read_outcome(result_path)
        if returncode != 0 or outcome is None or "error" in outcome:
            error = (outcome or {}).get("error") or _last_line(output) or "no output"
            raise TrainingFailed(f"{kind} training failed (exit code {returncode}): {error}", output)
        return result_from_json(outcome)


def terminate_all(grace_s: float = DEFAULT_GRACE_S) -> int:
    """End every training child this process runs: SIGTERM their process groups, SIGKILL after
    ``grace_s``. Their :func:`run_in_subprocess` calls raise TrainingCancelled("shutdown"). Safe
    from any thread and from a signal handler; returns how many trainings it stopped."""
    with _live_lock:
        trainings = list(_live)
    for training in trainings:
        training.reason = training.reason or "shutdown"
        _signal_group(training.proc, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for training in trainings:
        _wait_group(training.proc, deadline)
        _signal_group(training.proc, signal.SIGKILL)
    if trainings:
        log.warning("stopped %d training process(es)", len(trainings))
    return len(trainings)


class _Training:
    """One live training child, and why it is being stopped (None: it is not)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.reason: Literal["cancelled", "shutdown"] | None = None


# Reentrant: terminate_all may run in a signal handler on a thread that holds the lock.
_live_lock = threading.RLock()
_live: set[_Training] = set()


@contextlib.contextmanager
def _registered(training: _Training) -> Iterator[None]:
    with _live_lock:
        _live.add(training)
    try:
        yield
    finally:
        with _live_lock:
            _live.discard(training)


@atexit.register
def _terminate_at_exit() -> None:
    terminate_all()


def _wait(
    training: _Training,
    cancel: threading.Event | None,
    timeout_s: float,
    grace_s: float,
    yield_to: Callable[[], bool] | None = None,
) -> int | None:
    """The child's exit code once it ends or is stopped (cancel, shutdown); None after a timeout.
    With ``yield_to``, the child's group is paused while it says so (the pause extends the deadline)."""
    proc = training.proc
    deadline = time.monotonic() + timeout_s
    poll_s = _YIELD_POLL_S if yield_to is not None else _POLL_S
    paused_at: float | None = None
    while True:
        try:
            left = poll_s if paused_at is not None else deadline - time.monotonic()
            return proc.wait(timeout=max(0.0, min(poll_s, left)))
        except subprocess.TimeoutExpired:
            pass
        if training.reason is None and cancel is not None and cancel.is_set():
            training.reason = "cancelled"
        if training.reason is not None:
            log.warning("stopping the training child %d (%s)", proc.pid, training.reason)
            return _end_group(proc, grace_s)
        if yield_to is not None:
            pause = yield_to()
            if pause and paused_at is None:
                _signal_group(proc, signal.SIGSTOP)
                paused_at = time.monotonic()
            elif not pause and paused_at is not None:
                _signal_group(proc, signal.SIGCONT)
                deadline += time.monotonic() - paused_at
                paused_at = None
            if paused_at is not None:
                continue
        if time.monotonic() >= deadline:
            _end_group(proc, grace_s)
            return None


@contextlib.contextmanager
def _stop_on_signals(training: _Training) -> Iterator[None]:
    """On the main thread: a SIGTERM/SIGINT with a Python handler first marks the training for a
    stop (the wait loop ends it) and signals its group, then runs the handler it replaced."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    installed: dict[int, tuple[_Handler, _Handler]] = {}
    for signum in (int(signal.SIGTERM), int(signal.SIGINT)):
        previous = signal.getsignal(signum)
        if not callable(previous):  # default or ignored: nothing in Python to chain to
            continue
        handler = _chained(training, previous)
        signal.signal(signum, handler)
        installed[signum] = (handler, previous)
    try:
        yield
    finally:
        for signum, (handler, previous) in installed.items():
            # The handler it chained to may have installed another one (RQ's cold shutdown): keep that.
            if signal.getsignal(signum) is handler:
                signal.signal(signum, previous)


def _chained(training: _Training, previous: _Handler) -> _Handler:
    def handler(signum: int, frame: FrameType | None) -> Any:
        training.reason = training.reason or "shutdown"
        _signal_group(training.proc, signal.SIGTERM)
        return previous(signum, frame)

    return handler


def _end_group(proc: subprocess.Popen[str], grace_s: float) -> int:
    """SIGTERM the child's process group, SIGKILL it after ``grace_s`` (or once the child is gone and
    the group empty); returns the child's exit code."""
    _signal_group(proc, signal.SIGTERM)
    _wait_group(proc, time.monotonic() + grace_s)
    _signal_group(proc, signal.SIGKILL)
    return proc.wait()


def _wait_group(proc: subprocess.Popen[str], deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None and not _group_alive(proc.pid):
            return
        time.sleep(0.05)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(proc: subprocess.Popen[str], signum: int) -> None:
    # The child leads its own session, so its process group id is its pid.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signum)
        if signum == signal.SIGTERM:
            # A group paused for serving (SIGSTOP) handles its SIGTERM only once it runs again.
            os.killpg(proc.pid, signal.SIGCONT)


_libc: Any = None


def _child_setup(parent_pid: int, nice: int, idle: bool = False) -> Callable[[], None]:
    """What the child runs between fork and exec: die with the parent's thread, lower its priority.
    libc is loaded here, in the parent: loading a library after fork may deadlock."""
    global _libc
    if sys.platform.startswith("linux") and _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    libc = _libc

    def setup() -> None:
        if libc is not None:
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != parent_pid:  # the parent died before prctl took effect
                os._exit(1)
        if nice:
            os.nice(nice)
        if idle and hasattr(os, "SCHED_IDLE"):
            # Serving threads preempt it at once: on a shared CPU, a training's threads would
            # otherwise hold up the engine's parallel regions (a thread of a matrix product waits for
            # a core the training has), making each judgment many times slower.
            with contextlib.suppress(OSError):
                os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))

    return setup


def _settings() -> Settings:
    from app.core.config import get_settings

    return get_settings()


def _relay(stream: IO[str], tail: collections.deque[str]) -> None:
    for line in stream:
        line = line.rstrip()
        if line:
            tail.append(line)
            child_log.info("%s", line)


def _read_outcome(path: Path) -> dict[str, object] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _last_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    return lines[-1] if lines else ""

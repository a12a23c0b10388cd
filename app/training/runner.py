"""Running one training in a child process (``python -m app.training``), so that a worker gets the
training's memory back when it ends and a crash in it cannot take the worker down."""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import asdict
from pathlib import Path
from typing import IO

from app.training.specs import DPOSpec, SFTSpec, TrainResult, result_from_json

log = logging.getLogger(__name__)
child_log = logging.getLogger("app.training.child")

_TAIL_LINES = 40


class TrainingFailed(RuntimeError):
    """A training child process failed, crashed or timed out. ``output_tail`` holds its last lines."""

    def __init__(self, message: str, output_tail: str = "") -> None:
        super().__init__(message)
        self.output_tail = output_tail


def run_in_subprocess(kind: str, spec: SFTSpec | DPOSpec, timeout_s: float) -> TrainResult:
    """Run a ``kind`` ("sft" or "dpo") training of ``spec`` in a child process with this Python, and
    return its result. The child's output goes to the ``app.training.child`` logger line by line.

    Raises TrainingFailed when the child exits non-zero (its error and last lines in the message) or
    runs past ``timeout_s`` (it is killed, with any process it started).
    """
    with tempfile.TemporaryDirectory(prefix="judge-train-") as scratch:
        spec_path = Path(scratch) / "spec.json"
        result_path = Path(scratch) / "result.json"
        spec_path.write_text(json.dumps(asdict(spec)))
        cmd = [sys.executable, "-m", "app.training", kind, str(spec_path), str(result_path)]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
        log.info("starting %s training in a child process (output %s)", kind, spec.output_path)
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            text=True,
            errors="replace",
            start_new_session=True,  # its own process group, so a timeout kills its children too
        )
        assert proc.stdout is not None
        tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
        reader = threading.Thread(target=_relay, args=(proc.stdout, tail), daemon=True)
        reader.start()
        try:
            returncode = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            reader.join(timeout=5)
            output = "\n".join(tail)
            raise TrainingFailed(f"{kind} training timed out after {timeout_s:g}s", output) from None
        finally:
            if proc.poll() is None:  # interrupted while waiting: leave no orphan behind
                _kill_group(proc)
        reader.join(timeout=5)
        output = "\n".join(tail)
        outcome = _read_outcome(result_path)
        if returncode != 0 or outcome is None or "error" in outcome:
            error = (outcome or {}).get("error") or _last_line(output) or "no output"
            raise TrainingFailed(f"{kind} training failed (exit code {returncode}): {error}", output)
        return result_from_json(outcome)


def _relay(stream: IO[str], tail: collections.deque[str]) -> None:
    for line in stream:
        line = line.rstrip()
        if line:
            tail.append(line)
            child_log.info("%s", line)


def _kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _read_outcome(path: Path) -> dict[str, object] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _last_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    return lines[-1] if lines else ""

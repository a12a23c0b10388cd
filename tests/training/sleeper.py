"""A stand-in for a training child, for the lifecycle tests: it records its pid and sleeps.

``python sleeper.py PIDFILE [--launcher] [--ignore-term] [SPEC RESULT]``: with ``--launcher`` it acts
like ``accelerate launch``, starting a second sleeper (the "trainer", which watches its parent like
``python -m app.training``) and waiting for it; every sleeper also starts a ``sleep`` of its own.
Each process appends its pid to PIDFILE.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    flags = {a for a in sys.argv[1:] if a.startswith("--")}
    pidfile = args[0]
    if "--ignore-term" in flags:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if "--trainer" in flags:
        from app.training.watchdog import exit_when_orphaned

        exit_when_orphaned(interval_s=0.2)
    sleep = subprocess.Popen(["sleep", "300"])
    with open(pidfile, "a") as f:
        f.write(f"{os.getpid()}\n{sleep.pid}\n")
    if "--launcher" in flags:
        rest = [a for a in sys.argv[1:] if a != "--launcher"]
        subprocess.run([sys.executable, __file__, "--trainer", *rest])
    else:
        time.sleep(300)


def train_job(pidfile: str, outfile: str) -> None:
    """An RQ job that runs a sleeper as its training and records how the training ended."""
    from app.training.runner import TrainingCancelled, TrainLaunch, run_in_subprocess
    from app.training.specs import SFTSpec

    spec = SFTSpec(base_path="unused", output_path="unused", examples=[{"prompt": "p", "completion": "c"}])
    command = [sys.executable, __file__, pidfile, "--launcher"]
    try:
        run_in_subprocess("sft", spec, 300, launch=TrainLaunch(nice=0), command=command)
    except TrainingCancelled as exc:
        with open(outfile, "w") as f:
            f.write(exc.reason)


if __name__ == "__main__":
    main()

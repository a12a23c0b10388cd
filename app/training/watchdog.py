"""Ending a training process whose parent is gone.

Linux's parent-death signal (set by the runner) reaches only the runner's direct child; under a
launcher (``accelerate launch``) the training processes are grandchildren, so each one watches its
own parent and ends the training's process group once that parent is gone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time

log = logging.getLogger(__name__)

# Set by the runner in the child's environment: the child's process group holds only this training,
# so a watchdog may kill the whole group.
OWN_GROUP_ENV = "JUDGE_TRAINING_OWN_GROUP"


def exit_when_orphaned(interval_s: float = 0.5) -> threading.Thread:
    """Start a daemon thread that ends this process once its parent changes (it died and this process
    was re-parented): SIGKILL to the process group when the runner gave the training a group of its
    own, else ``os._exit``."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval_s)
        log.error("the parent process %d is gone; ending the training", parent)
        if os.environ.get(OWN_GROUP_ENV) == "1":
            with contextlib.suppress(OSError):
                os.killpg(os.getpgrp(), signal.SIGKILL)
        os._exit(1)

    thread = threading.Thread(target=watch, name="orphan-watchdog", daemon=True)
    thread.start()
    return thread

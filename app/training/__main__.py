"""``python -m app.training {sft|dpo} SPEC.json RESULT.json``: one training run in this process.

Writes ``asdict(TrainResult)`` to RESULT.json and exits 0, or writes ``{"error": message}`` and
exits 1. Logs go to stderr. Under ``accelerate launch`` with several processes, each process trains
its share and only the main one (RANK 0) writes RESULT.json. The process ends itself when its parent
goes away (see :mod:`app.training.watchdog`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from app.training.specs import TRAINING_KINDS, DPOSpec, SFTSpec, TrainResult, spec_from_json
from app.training.watchdog import exit_when_orphaned

log = logging.getLogger("app.training")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.training", description=__doc__)
    parser.add_argument("kind", choices=TRAINING_KINDS)
    parser.add_argument("spec", type=Path, help="the spec as JSON (dataclasses.asdict of SFTSpec/DPOSpec)")
    parser.add_argument("result", type=Path, help="where to write the result JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    exit_when_orphaned()
    _quiet_progress_bars()
    try:
        spec = spec_from_json(args.kind, json.loads(args.spec.read_text()))
        result = _train(spec)
    except Exception as exc:
        log.exception("%s training failed", args.kind)
        if _is_main_process():
            _write_json(args.result, {"error": f"{type(exc).__name__}: {exc}"})
        return 1
    if _is_main_process():
        _write_json(args.result, asdict(result))
    return 0


def _is_main_process() -> bool:
    # RANK is set by torch's launcher (accelerate's multi-process path); one process has none.
    return os.environ.get("RANK", "0") == "0"


def _train(spec: SFTSpec | DPOSpec) -> TrainResult:
    # Imported here so that a bad spec fails before torch and TRL are loaded.
    if isinstance(spec, SFTSpec):
        from app.training.sft import run_sft

        return run_sft(spec)
    from app.training.dpo import run_dpo

    return run_dpo(spec)


def _quiet_progress_bars() -> None:
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(main())

"""`JUDGE_TORCH_THREADS`: the CPU threads a worker's torch computes on (workers sharing a CPU host)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from app.core.config import Settings
from workers.main import apply_torch_threads


@pytest.fixture
def restore_threads() -> Iterator[int]:
    before = torch.get_num_threads()
    yield before
    torch.set_num_threads(before)


def test_the_setting_sets_the_worker_threads(restore_threads: int) -> None:
    apply_torch_threads(Settings(torch_threads=1))
    assert torch.get_num_threads() == 1


def test_unset_leaves_torch_its_default(restore_threads: int) -> None:
    apply_torch_threads(Settings())
    assert torch.get_num_threads() == restore_threads


def test_it_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUDGE_TORCH_THREADS", "3")
    assert Settings().torch_threads == 3
    monkeypatch.setenv("JUDGE_TORCH_THREADS", "0")
    with pytest.raises(ValueError):
        Settings()

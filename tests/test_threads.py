"""Torch's process-wide thread count (util/threads.py): narrowed for a block and always given back, an error in the
block included, so a predictor's post-processing or a third-party call never slows what runs after it."""

from __future__ import annotations

import pytest
import torch

from detft.util.threads import one_torch_thread, torch_threads_kept


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_one_torch_thread_runs_the_block_on_one_thread_and_gives_the_count_back(two_threads):
    with one_torch_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    with pytest.raises(ValueError), one_torch_thread():
        raise ValueError("a failing frame")
    assert torch.get_num_threads() == 2


def test_torch_threads_kept_undoes_what_the_block_set(two_threads):
    with pytest.raises(RuntimeError), torch_threads_kept():
        torch.set_num_threads(1)  # as ultralytics' select_device does on a 2-core machine
        raise RuntimeError("a failing export")
    assert torch.get_num_threads() == 2

import os
import sys
from pathlib import Path

import pytest
import torch

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)  # one torch thread per xdist worker: no oversubscription on 2 cores

sys.path.insert(0, str(Path(__file__).parent))

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
BCCD = SHARED / "datasets" / "bccd" / "BCCD"
EVAL_VECTORS = SHARED / "eval-vectors"


@pytest.fixture
def bccd() -> Path:
    if not BCCD.is_dir():
        pytest.skip(f"shared BCCD dataset not found at {BCCD}")
    return BCCD


@pytest.fixture
def eval_vectors() -> Path:
    if not EVAL_VECTORS.is_dir():
        pytest.skip(f"shared eval vectors not found at {EVAL_VECTORS}")
    return EVAL_VECTORS

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


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``root`` (links not followed) with its size and modification time."""
    out = {}
    for p in root.rglob("*"):
        st = p.lstat()
        out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture
def sandbox(tmp_path: Path):
    """A folder for a hostile-input test, and a check that nothing in it but the allowed paths changed:
    ``sandbox.unchanged_except(out)`` after the command ran."""

    class Sandbox:
        root = tmp_path / "sandbox"

        def __init__(self):
            self.root.mkdir()
            self.before: dict[str, tuple[int, int]] = {}

        def freeze(self) -> None:
            self.before = snapshot(self.root)

        def changed_outside(self, *allowed: Path) -> list[str]:
            after = snapshot(self.root)
            keep = [str(a.relative_to(self.root)) for a in allowed]
            diff = {k for k in set(self.before) | set(after) if self.before.get(k) != after.get(k)}
            return sorted(k for k in diff if not any(k == a or k.startswith(a + "/") for a in keep))

    return Sandbox()

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


def assert_same_detections(a, b, floor: float, box_px: float = 1.0, score_tol: float = 1e-3) -> None:
    """Two Detections of one image are the same: one-to-one by class and overlap, boxes within ``box_px``,
    scores within ``score_tol``. A detection may be missing from one side only when its score is within
    ``score_tol`` of the cut (``floor``, or the lowest score kept when the count limit cut instead): that
    is where a difference below the tolerance decides which side of the cut it falls."""
    import numpy as np
    from torchvision.ops import box_iou

    assert len(a) > 0, "nothing to compare: the model detects nothing"
    cut = max(floor, min(a.scores.min(), b.scores.min() if len(b) else 1.0))
    iou = box_iou(torch.from_numpy(a.boxes), torch.from_numpy(b.boxes)).numpy() if len(b) else np.zeros((len(a), 0))
    iou[a.labels[:, None] != b.labels[None, :]] = 0
    used = np.zeros(len(b), bool)
    for i in np.argsort(-a.scores):
        cand = np.where(used, -1, iou[i])
        j = int(cand.argmax()) if len(cand) else -1
        if j < 0 or cand[j] < 0.5:
            assert a.scores[i] < cut + score_tol, f"detection {i} (score {a.scores[i]:.4f}) is missing from the other side"
            continue
        used[j] = True
        assert np.abs(a.boxes[i] - b.boxes[j]).max() <= box_px, (a.boxes[i], b.boxes[j])
        assert abs(float(a.scores[i]) - float(b.scores[j])) <= score_tol, (a.scores[i], b.scores[j])
        if a.masks is not None:
            disagree = (a.masks[i] != b.masks[j]).sum() / max(1, a.masks[i].sum())
            assert disagree <= 0.02, f"masks of detection {i} differ on {disagree:.1%} of its pixels"
    assert all(b.scores[~used] < cut + score_tol), "the other side has detections this one lacks"

"""PR curves and the confusion matrix as PNGs (matplotlib, no display needed)."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..output import atomic_write_bytes  # noqa: E402

MAX_CLASS_CURVES = 20


def _save(fig, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def pr_curves(precision: np.ndarray, names: list[str], path: Path, title: str) -> None:
    """``precision``: [iou thresholds, 101 recall points, classes]; curves at IoU 0.5."""
    recall = np.linspace(0, 1, precision.shape[1])
    p50 = precision[0]
    fig, ax = plt.subplots(figsize=(7, 5))
    if len(names) <= MAX_CLASS_CURVES:
        for k, name in enumerate(names):
            if (p50[:, k] > -1).any():
                ap = p50[:, k][p50[:, k] > -1].mean()
                ax.plot(recall, np.clip(p50[:, k], 0, None), lw=1, alpha=0.7, label=f"{name} {ap:.3f}")
    valid = np.where(p50 > -1, p50, np.nan)
    mean = np.nanmean(valid, axis=1) if np.isfinite(valid).any() else np.zeros_like(recall)
    ax.plot(recall, np.nan_to_num(mean), lw=3, color="black", label=f"all classes {np.nanmean(mean):.3f} AP50")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title=title)
    ax.legend(fontsize=7, loc="lower left")
    _save(fig, path)


def confusion_plot(matrix: np.ndarray, names: list[str], path: Path) -> None:
    labels = names + ["background"]
    col = matrix.sum(0, keepdims=True)
    norm = np.divide(matrix, col, out=np.zeros(matrix.shape, float), where=col > 0)
    size = min(2 + 0.45 * len(labels), 30)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set(xlabel="true", ylabel="predicted", title="confusion matrix (column-normalised)")
    if len(labels) <= 30:
        for i in range(len(labels)):
            for j in range(len(labels)):
                if matrix[i, j]:
                    ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=6,
                            color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    _save(fig, path)


def f1_curves(curves: dict[str, dict[str, np.ndarray]], chosen: dict, path: Path) -> None:
    """F1 against the score threshold per class (and all classes pooled, thick), each chosen threshold marked."""
    fig, ax = plt.subplots(figsize=(7, 5))
    classes = [n for n in curves if n != "all classes"]
    for name in (classes if len(classes) <= MAX_CLASS_CURVES else []) + ["all classes"]:
        c = curves[name]
        pick = chosen["overall"] if name == "all classes" else chosen["per_class"].get(name)
        label = f"{name} " + (f"{pick['f1']:.2f} at {pick['threshold']:.3f}" if pick else "(none)")
        line = ax.plot(c["threshold"], c["f1"], lw=3 if name == "all classes" else 1,
                       color="black" if name == "all classes" else None, label=label)[0]
        if pick:
            ax.plot([pick["threshold"]], [pick["f1"]], "o", color=line.get_color())
    ax.set(xlabel="score threshold", ylabel="F1 (IoU 0.5)", xlim=(0, 1), ylim=(0, 1.02), title="F1 against the score threshold")
    ax.legend(fontsize=7, loc="upper right")
    _save(fig, path)

"""The figures an evaluation writes, PR curves, F1 curves and the confusion matrix (drawn with Pillow:
:mod:`.charts`), and the matplotlib figure that training curves and benchmark plots use."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from ..util.output import atomic_write_bytes
from .charts import Series, heat_map, line_chart

MAX_CLASS_CURVES = 20


def figure(size: tuple[float, float], columns: int = 1) -> tuple[Any, Any]:
    """A matplotlib figure drawn straight to pixels (Agg), without pyplot: nothing global, nothing to close.
    Returns it and its axes (one per column)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(1, columns)


def save(fig: Any, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())


def pr_curves(precision: np.ndarray, names: list[str], path: Path, title: str) -> None:
    """``precision``: [iou thresholds, 101 recall points, classes]; curves at IoU 0.5, each class's (up to 20) and
    the mean over classes."""
    recall = np.linspace(0, 1, precision.shape[1])
    p50 = precision[0]
    series = []
    if len(names) <= MAX_CLASS_CURVES:
        for k, name in enumerate(names):
            if (p50[:, k] > -1).any():
                ap = p50[:, k][p50[:, k] > -1].mean()
                series.append(Series(f"{name} {ap:.3f}", recall, np.clip(p50[:, k], 0, None)))
    valid = np.where(p50 > -1, p50, np.nan)
    mean = np.nanmean(valid, axis=1) if np.isfinite(valid).any() else np.zeros_like(recall)
    series.append(Series(f"all classes {np.nanmean(mean):.3f} AP50", recall, np.nan_to_num(mean), 3, (0, 0, 0)))
    line_chart(series, path, title, "recall", "precision", legend="lower left")


def confusion_plot(matrix: np.ndarray, names: list[str], path: Path) -> None:
    col = matrix.sum(0, keepdims=True)
    norm = np.divide(matrix, col, out=np.zeros(matrix.shape, float), where=col > 0)
    heat_map(matrix, norm, names + ["background"], path, "confusion matrix (column-normalised)", "predicted", "true",
             numbers=len(names) < 30)


def f1_curves(curves: dict[str, dict[str, np.ndarray]], chosen: dict, path: Path) -> None:
    """F1 against the score threshold per class (and all classes pooled, thick), each chosen threshold marked."""
    classes = [n for n in curves if n != "all classes"]
    series = []
    for name in (classes if len(classes) <= MAX_CLASS_CURVES else []) + ["all classes"]:
        c = curves[name]
        pick = chosen["overall"] if name == "all classes" else chosen["per_class"].get(name)
        label = f"{name} " + (f"{pick['f1']:.2f} at {pick['threshold']:.3f}" if pick else "(none)")
        whole = name == "all classes"
        series.append(Series(label, np.asarray(c["threshold"], float), np.asarray(c["f1"], float), 3 if whole else 1,
                             (0, 0, 0) if whole else None, [(pick["threshold"], pick["f1"])] if pick else []))
    line_chart(series, path, "F1 against the score threshold", "score threshold", "F1 (IoU 0.5)", legend="upper right")

"""metrics.csv (one row per epoch, rewritten atomically) and loss/mAP plots."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ..output import atomic_write_text


def write_csv(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    fields = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields)
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def plot(run: Path, rows: list[dict]) -> None:
    """loss.png (every loss term) and map.png (bbox/segm AP and AP50) per epoch."""
    from ..evaluation.plots import _save, plt

    epochs = [r["epoch"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4))
    for key in [k for k in rows[0] if k.startswith("loss")]:
        ax.plot(epochs, [r.get(key) for r in rows], label=key, lw=2 if key == "loss" else 1)
    ax.set(xlabel="epoch", ylabel="training loss", title="loss")
    ax.legend(fontsize=7)
    _save(fig, run / "loss.png")
    fig, ax = plt.subplots(figsize=(7, 4))
    for key in [k for k in rows[0] if k.startswith(("bbox_", "segm_"))]:
        ax.plot(epochs, [r.get(key) for r in rows], marker="o", label=key)
    ax.set(xlabel="epoch", ylabel="COCO metric", ylim=(0, 1), title="validation mAP")
    ax.legend(fontsize=7)
    _save(fig, run / "map.png")

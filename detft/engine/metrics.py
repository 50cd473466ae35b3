"""metrics.csv (one row per epoch, rewritten atomically), results.png, and the overfitting watch."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from ..util.output import atomic_write_text

RISE = 0.02  # val loss this far (relative) above its minimum at the last epoch counts as rising


def write_csv(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    fields = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields)
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def fitness_key(rows: list[dict]) -> str | None:
    """The validation mAP a run is judged by: detft's segm AP, else bbox AP (YOLO epochs: ultralytics' own)."""
    keys = {k for r in rows for k in r}
    for key in ("segm_AP", "bbox_AP", "ultralytics_segm_AP", "ultralytics_bbox_AP"):
        if key in keys:
            return key
    return None


def overfitting(rows: list[dict]) -> dict[str, Any] | None:
    """Where validation loss and validation mAP parted: the epoch after which val loss only rose (ending more
    than ``RISE`` above its minimum) while the training loss kept falling, beside the epoch of the best mAP.
    None without val losses; ``parted_at`` None when val loss did not turn."""
    points = [(r["epoch"], r["val_loss"], r.get("loss")) for r in rows if r.get("val_loss") is not None]
    if len(points) < 2:
        return None
    key = fitness_key(rows)
    scored = [(r["epoch"], r[key]) for r in rows if key and r.get(key) is not None]
    best_map = max(scored, key=lambda p: p[1])[0] if scored else None
    low_epoch, low = min(((e, v) for e, v, _ in points), key=lambda p: p[1])
    last_epoch, last, last_train = points[-1]
    train_at_low = next(t for e, _, t in points if e == low_epoch)
    rising = low_epoch < last_epoch and last > low * (1 + RISE)
    train_falling = last_train is not None and train_at_low is not None and last_train < train_at_low
    watch = {"val_loss_min_epoch": low_epoch, "val_loss_min": round(low, 6), "val_loss_last": round(last, 6),
             "best_map_epoch": best_map, "map_key": key, "parted_at": low_epoch + 1 if rising else None}
    if rising:
        watch["note"] = (f"overfitting watch: val loss was lowest at epoch {low_epoch} ({low:.4f}) and rose to {last:.4f} "
                         f"by epoch {last_epoch} ({(last / low - 1):+.0%}){' while training loss kept falling' if train_falling else ''}; "
                         f"val and train parted at epoch {low_epoch + 1}. Best val mAP at epoch {best_map}: "
                         f"best.pt is that epoch; --epochs {best_map} or --patience would stop there")
    else:
        watch["note"] = (f"overfitting watch: val loss still at or near its lowest at epoch {last_epoch} "
                         f"(minimum {low:.4f} at epoch {low_epoch}); more epochs may still help")
    return watch


def plot(run: Path, rows: list[dict]) -> None:
    """results.png: training loss (solid) and validation loss (dashed) per epoch, and validation mAP."""
    from ..evaluation.plots import figure, save

    if not rows:
        return
    epochs = [r["epoch"] for r in rows]
    keys = list(dict.fromkeys(k for r in rows for k in r))
    fig, (left, right) = figure((12, 4), columns=2)
    for i, key in enumerate(k for k in keys if k.startswith("loss")):
        colour = f"C{i}"
        left.plot(epochs, [r.get(key) for r in rows], color=colour, label=f"train {key}", lw=2 if key == "loss" else 1)
        if f"val_{key}" in keys:
            left.plot(epochs, [r.get(f"val_{key}") for r in rows], color=colour, ls="--", label=f"val {key}",
                      lw=2 if key == "loss" else 1)
    left.set(xlabel="epoch", ylabel="loss", title="loss (train solid, val dashed)")
    left.legend(fontsize=7)
    for key in [k for k in keys if k.startswith(("bbox_", "segm_", "ultralytics_"))]:
        right.plot(epochs, [r.get(key) for r in rows], marker="o", label=key)
    right.set(xlabel="epoch", ylabel="COCO metric", ylim=(0, 1), title="validation mAP")
    right.legend(fontsize=7)
    save(fig, run / "results.png")

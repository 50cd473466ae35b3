"""The check every export ends with: the graph and the model it came from, evaluated by detft's evaluator
on the same images, and their detections matched one to one. A difference in AP is what a user of the
exported file would lose; the per-detection gaps say where it comes from (a resize that rounds
differently, fp16, a letterbox that pads differently)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from ..evaluation.matching import iou_xywh

MATCH_IOU = 0.5  # two detections of the same class on the same image are "the same" above this overlap


def match_detections(source: list[dict], exported: list[dict]) -> dict[str, Any]:
    """One-to-one matching of two COCO result lists (same image, same class, IoU >= 0.5, the most overlapping
    pairs first, so a detection pairs with its twin rather than a neighbour), and the largest differences
    among the matched pairs."""
    groups: dict[tuple[int, int], list[list[dict]]] = defaultdict(lambda: [[], []])
    for side, results in enumerate((source, exported)):
        for r in results:
            groups[(r["image_id"], r["category_id"])][side].append(r)
    ious: list[float] = []
    score_gaps: list[float] = []
    box_gaps: list[float] = []
    unmatched: list[float] = []
    for a, b in groups.values():
        boxes_a, boxes_b = _xyxy(a), _xyxy(b)
        iou = iou_xywh(np.array([r["bbox"] for r in a], float).reshape(-1, 4),
                       np.array([r["bbox"] for r in b], float).reshape(-1, 4))
        used_a, used_b = np.zeros(len(a), bool), np.zeros(len(b), bool)
        pairs = np.argwhere(iou >= MATCH_IOU)
        for i, j in pairs[np.argsort(-iou[pairs[:, 0], pairs[:, 1]], kind="stable")]:
            if used_a[i] or used_b[j]:
                continue
            used_a[i] = used_b[j] = True
            ious.append(float(iou[i, j]))
            score_gaps.append(abs(a[i]["score"] - b[j]["score"]))
            box_gaps.append(float(np.abs(boxes_a[i] - boxes_b[j]).max()))
        unmatched += [r["score"] for r, u in zip(a, used_a) if not u] + [r["score"] for r, u in zip(b, used_b) if not u]
    return {"source": len(source), "exported": len(exported), "matched": len(ious),
            "source_only": len(source) - len(ious), "export_only": len(exported) - len(ious),
            "max_unmatched_score": round(max(unmatched, default=0.0), 6),
            "min_iou": round(min(ious, default=1.0), 6), "max_score_diff": round(max(score_gaps, default=0.0), 6),
            "max_box_diff_px": round(max(box_gaps, default=0.0), 4)}


def ap_gaps(source: dict[str, float], exported: dict[str, float]) -> dict[str, float]:
    """|AP(source) - AP(export)| per metric both have (bbox_AP, bbox_AP50, segm_AP, segm_AP50)."""
    return {k: round(abs(source[k] - exported[k]), 6) for k in source if k in exported}


def format_parity(doc: dict[str, Any]) -> str:
    """The table ``detft export`` prints: both models' AP side by side, then the matched-detection gaps."""
    src, exp, gap = doc["source_metrics"], doc["export_metrics"], doc["ap_diff"]
    lines = [f"parity on {doc['images']} {doc['split']} images (detft's evaluator, conf {doc['conf']}):",
             f"  {'metric':<10} {'source':>8} {'export':>8} {'|diff|':>8}"]
    lines += [f"  {k:<10} {src[k]:>8.4f} {exp[k]:>8.4f} {gap[k]:>8.4f}" for k in gap]
    d = doc["detections"]
    lines.append(f"  detections: {d['matched']} matched, {d['source_only']} only in the source, {d['export_only']} only "
                 f"in the export (highest unmatched score {d['max_unmatched_score']:.3f}); matched pairs: min IoU "
                 f"{d['min_iou']:.4f}, max score diff {d['max_score_diff']:.4f}, max box diff {d['max_box_diff_px']:.2f} px")
    verdict = "within" if doc["within_tolerance"] else "OUTSIDE"
    lines.append(f"  largest AP difference {doc['max_ap_diff']:.4f}: {verdict} the tolerance {doc['tolerance']}")
    return "\n".join(lines)


def _xyxy(results: list[dict]) -> np.ndarray:
    b = np.array([r["bbox"] for r in results], np.float64).reshape(-1, 4)
    b[:, 2:] += b[:, :2]
    return b



"""detft benchmark: candidates x freeze policies on one split and one budget, a ranked table that agrees with
its CSV and JSON, finished trials never trained twice, a failing candidate reported while the others go on."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
import tiny_models  # noqa: F401  (registers tiny_fasterrcnn / tiny_maskrcnn)

import detft
from detft.benchmark import Candidate, Trial, auto_verdict, format_table, parse_budget, rank, trial_name
from detft.cli import main
from detft.errors import DetftError

SHARED = dict(imgsz=96, workers=0, lr=0.002, optimizer="adamw", augment="none", batch=4)
CANDIDATES = "tiny_fasterrcnn,tiny_maskrcnn,yolo:missing-start.pt"


def test_benchmark_ranks_reports_failures_and_resumes(tmp_path: Path, capsys):
    out = tmp_path / "bench"
    result = detft.benchmark(candidates=CANDIDATES, freeze="backbone,none", epochs=1, out=out, **SHARED)
    printed = capsys.readouterr().out
    assert printed.splitlines()[0] == "candidates: " + CANDIDATES.replace(",", ", ")

    # 2 candidates x 2 freeze policies trained, ranked by bbox AP; the third candidate failed, reported last
    ok = [r for r in result.ranking if r["status"] == "ok"]
    assert [r["rank"] for r in ok] == [1, 2, 3, 4]
    assert [r["bbox_AP"] for r in ok] == sorted((r["bbox_AP"] for r in ok), reverse=True)
    failed = [r for r in result.ranking if r["status"] == "failed"]
    assert len(failed) == 2 and all("missing-start.pt" in r["error"] for r in failed)
    assert result.ranking[-2:] == failed and printed.count("FAILED") >= 2
    for r in ok:
        assert r["epochs"] == 1 and r["train_s"] > 0 and r["ms_per_image"] > 0
        assert 0 < r["trainable"] <= r["parameters"] and (r["trainable"] < r["parameters"]) == (r["freeze"] == "backbone")
        assert r["weakest_class"] in {"circle", "square", "triangle"} and r["weakest_AP"] <= r["bbox_AP"] + 1e-9
        assert (out / r["best_run"] / "eval.json").is_file()
        assert (r["segm_AP"] is not None) == (r["candidate"] == "tiny_maskrcnn")
    assert result.best_run == out / ok[0]["best_run"]

    # the printed table, the CSV and the JSON say the same thing in the same order
    doc = json.loads((out / "benchmark.json").read_text())
    rows = list(csv.DictReader(io.StringIO((out / "benchmark.csv").read_text())))
    assert doc["ranking"] == result.ranking and doc["best"] == result.best and doc["rank_key"] == "bbox_AP"
    assert [(r["candidate"], r["freeze"]) for r in rows] == [(r["candidate"], r["freeze"]) for r in result.ranking]
    for row, ranked in zip(rows, result.ranking):
        assert row["bbox_AP"] == ("" if ranked["bbox_AP"] is None else str(ranked["bbox_AP"]))
        assert row["status"] == ranked["status"] and row["best_run"] == (ranked["best_run"] or "")
    table = format_table(result.ranking, "bbox_AP")
    assert table in printed
    lines = table.splitlines()[2:]
    for line, ranked in zip(lines, result.ranking):
        assert ranked["candidate"] in line and ranked["freeze"] in line
        if ranked["status"] == "ok":
            assert line.startswith(str(ranked["rank"])) and f"{ranked['bbox_AP']:.4f}" in line
    assert (out / "benchmark.png").stat().st_size > 1000
    assert len(doc["trials"]) == 6 and doc["settings"]["epochs"] == 1

    # what --freeze auto chooses for each candidate, decided as training would before anything trained, is marked
    # beside the policies it chose among and judged against them
    assert doc["auto"]["tiny_fasterrcnn"] == {"freeze": "none", "why": "auto: --freeze none (random init: nothing learnt "
                                                                       "to keep)"}
    missing = doc["auto"]["yolo:missing-start.pt"]
    assert missing["freeze"] is None and missing["why"].startswith("not decided: ") and "missing-start.pt" in missing["why"]
    assert "tiny_maskrcnn: --freeze auto chooses none [auto: --freeze none (random init" in printed
    for line, ranked in zip(lines, ok):
        assert ranked["auto_pick"] == (ranked["freeze"] == "none") and ("none (auto)" in line) == ranked["auto_pick"]
    for candidate in ("tiny_fasterrcnn", "tiny_maskrcnn"):
        assert f"auto's pick for {candidate}: freeze=none, " in printed

    # the same benchmark again, from the CLI: nothing finished is trained again; the failure is tried again
    weights = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/weights/best.pt")}
    assert len(weights) == 4
    config = tmp_path / "shared.yaml"
    config.write_text("lr: 0.002\noptimizer: adamw\naugment: none\n")
    assert main(["benchmark", "--candidates", CANDIDATES, "--epochs", "1", "--out", str(out), "--imgsz", "96",
                 "--workers", "0", "--batch", "4", "--config", str(config)]) == 0
    again = capsys.readouterr().out
    assert again.count("not trained again") == 4 and again.count("FAILED") >= 2
    assert {p: p.stat().st_mtime_ns for p in out.glob("runs/*/weights/best.pt")} == weights
    assert json.loads((out / "benchmark.json").read_text())["ranking"] == result.ranking


def test_seeds_report_mean_and_std_and_the_best_seeds_run():
    def trial(seed: int, ap: float, status: str = "ok") -> Trial:
        return Trial("m", "none", seed, f"runs/m-s{seed}", status=status, metrics={"bbox_AP": ap, "bbox_AP50": 2 * ap},
                     train_s=10.0 + seed, ms_per_image=5.0, epochs=3, parameters={"total": 10, "trainable": 4})

    rows = rank([trial(0, 0.2), trial(1, 0.4), trial(2, 0.3), Trial("n", "none", 0, "runs/n", status="failed",
                                                                      error="RuntimeError: out of memory")], "bbox_AP")
    m, n = rows
    assert m["bbox_AP"] == pytest.approx(0.3) and m["bbox_AP_std"] == pytest.approx(0.1)
    assert m["train_s"] == pytest.approx(11.0) and m["seeds_ok"] == 3 and m["best_run"] == "runs/m-s1"
    assert n["status"] == "failed" and n["rank"] is None and n["error"] == "RuntimeError: out of memory"
    assert "0.3000±0.1000" in format_table(rows, "bbox_AP") and "FAILED: RuntimeError" in format_table(rows, "bbox_AP")


def test_the_verdict_says_whether_autos_pick_won_and_by_how_much():
    rows = [{"candidate": "a", "freeze": "none", "status": "ok", "bbox_AP": 0.5, "auto_pick": False},
            {"candidate": "a", "freeze": "backbone", "status": "ok", "bbox_AP": 0.45, "auto_pick": True},
            {"candidate": "b", "freeze": "backbone", "status": "ok", "bbox_AP": 0.4, "auto_pick": True},
            {"candidate": "b", "freeze": "none", "status": "ok", "bbox_AP": 0.3, "auto_pick": False},
            {"candidate": "c", "freeze": "none", "status": "ok", "bbox_AP": 0.2, "auto_pick": True}]
    assert auto_verdict(rows, "bbox_AP").splitlines() == [
        "auto's pick for a: freeze=backbone, 0.0500 bbox_AP below freeze=none here",
        "auto's pick for b: freeze=backbone, the best of its 2 policies (+0.1000 bbox_AP)"]  # c: nothing to compare


def test_candidates_budgets_and_names():
    assert Candidate.parse("yolo:fall-detection") == Candidate("yolo:fall-detection", "yolo", weights="fall-detection")
    assert Candidate.parse("yolo:yolov8n.yaml").model == "yolov8n.yaml"
    assert Candidate.parse("fasterrcnn_mobilenet_v2_fpn").weights is None
    with pytest.raises(DetftError, match="unknown"):
        Candidate.parse("nosuchnet").check()
    assert parse_budget("20m") == 20 and parse_budget("90s") == 1.5 and parse_budget("1.5h") == 90 and parse_budget(5) == 5
    for bad in ("soon", "0m", "-1"):
        with pytest.raises(DetftError, match="--budget"):
            parse_budget(bad)
    name = trial_name("tiny:../../etc/x.pt", "backbone+neck", 2)
    assert name.startswith("tiny_etc_x_pt-backboneneck-s2-") and name != trial_name("tiny:../../etc/x.pt", "none", 2)


def test_an_unknown_candidate_or_a_controlled_field_fails_before_anything_trains(tmp_path: Path):
    with pytest.raises(DetftError, match="unknown"):
        detft.benchmark(candidates="tiny_fasterrcnn,nosuchnet", epochs=1, out=tmp_path / "b", **SHARED)
    with pytest.raises(DetftError, match="sets arch itself"):
        detft.benchmark(candidates="tiny_fasterrcnn", out=tmp_path / "b", arch="yolo")
    with pytest.raises(DetftError, match="not both"):
        detft.benchmark(candidates="tiny_fasterrcnn", epochs=1, budget="1m", out=tmp_path / "b")
    assert not (tmp_path / "b").exists()

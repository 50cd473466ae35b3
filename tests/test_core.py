"""The core without ultralytics (AGPL-3.0): `pip install detft` reads, converts, trains and evaluates R-CNNs,
predicts, exports and runs the labelling loop without importing it; the YOLO family and --track name the extra.

Each check runs in a fresh interpreter where an import hook refuses every ``ultralytics`` module and records who
asked, so a lazy import deep in a code path shows as well as one at the top of a module."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import run_without_ultralytics

YOLO_ONLY = {"detft.models.yolo_trainers"}  # ultralytics' trainer subclasses: imported only behind the family


def test_every_core_module_imports_without_ultralytics(tmp_path: Path):
    out = run_without_ultralytics(f"""
        import importlib, pathlib, detft
        root = pathlib.Path(detft.__file__).parent
        names = sorted(".".join(p.relative_to(root.parent).with_suffix("").parts).removesuffix(".__init__")
                       for p in root.rglob("*.py") if p.name != "__main__.py")
        core = [n for n in names if n not in {sorted(YOLO_ONLY)!r}]
        for name in core:
            importlib.import_module(name)
        print(json.dumps({{"modules": len(core), "asked": ASKED,
                          "loaded": [m for m in sys.modules if m.startswith(("ultralytics", "lap"))]}}))
    """, tmp_path)
    assert out["modules"] > 100
    assert out["asked"] == [] and out["loaded"] == []


def test_the_core_converts_trains_evaluates_predicts_and_exports_without_ultralytics(tmp_path: Path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    out = run_without_ultralytics("""
        import numpy as np
        import tiny_models  # registers tiny_fasterrcnn
        from helpers import make_data
        import detft
        from detft.errors import DetftError
        from detft.operations.convert import convert

        data = make_data(pathlib.Path("data"), n=6)
        convert(data, pathlib.Path("as_yolo"), to="yolo")
        convert(pathlib.Path("as_yolo"), pathlib.Path("as_voc"), to="voc")
        run = detft.train(data="as_yolo", arch="fasterrcnn", model="tiny_fasterrcnn", weights="none", epochs=1,
                          batch=4, imgsz=96, project="runs", name="core", workers=0, device="cpu")
        model = detft.load(run, device="cpu", conf=0.0)
        stats = model.evaluate("as_voc", split="val", out="eval_voc")
        image = np.zeros((96, 96, 3), np.uint8)
        model.predict(image)
        model.save_labels("data/images/val", "coco", "prelabels")
        onnx = model.export("model.onnx").path
        detft.load(onnx, device="cpu").predict(image)
        core_asked = list(ASKED)

        errors = {}
        try:
            detft.train(data="as_yolo", arch="yolo", epochs=1, imgsz=64, project="runs", name="y", device="cpu")
        except DetftError as e:
            errors["train"] = str(e)
        try:
            from detft.inference.tracking import ByteTrack
            ByteTrack()
        except DetftError as e:
            errors["track"] = str(e)
        print(json.dumps({"asked": core_asked, "stats": sorted(stats.metrics), "evaluated": stats.images, "errors": errors,
                          "exported": pathlib.Path(onnx).is_file()}))
    """, tmp_path)
    assert out["asked"] == [], out["asked"]
    assert out["exported"] and "bbox_AP" in out["stats"] and out["evaluated"] > 0
    assert "the YOLO family needs ultralytics, which is not installed: pip install 'detft[yolo]'" in out["errors"]["train"]
    assert "--track (ultralytics' ByteTrack) needs ultralytics" in out["errors"]["track"]

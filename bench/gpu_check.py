"""The training paths as they run on a GPU, in one command and one table (issue #27), under 8 minutes on one GPU.

    python bench/gpu_check.py [--out gpu_check.json]          # on a machine with CUDA
    python bench/gpu_check.py --device cpu --quick            # the same code paths on the CPU, small (a smoke run)
    python bench/gpu_check.py --only resume                   # one row again

Rows:
- R-CNN with AMP, 2 epochs straight vs 1 epoch + resume: per-epoch losses and the largest weight difference
  (CUDA kernels such as RoIAlign's backward add with atomics, so equality there is to a tolerance, not bits);
- a run started where no GPU is seen (CUDA_VISIBLE_DEVICES=""), resumed where one is: AMP turns on, the
  scaler starts fresh, the run finishes;
- YOLO with every socket refused and AMP at its default: detft's AMP check decides, nothing is downloaded;
- the feature cache on the GPU: fasterrcnn_resnet50_fpn_v2, random init, backbone+FPN frozen, 800 px, img/s
  of epochs 2+ and peak GPU memory with the cache and without (copying maps back may cost more than the trunk);
- ONNX Runtime's CUDA provider on the exported model (or the named error when it falls back);
- a 2-process NCCL fit() through torchrun when two GPUs are present.
Data: detft's synthetic shapes at the row's size (no download). Each row is a subprocess, so a failure is a
row, not the end of the table."""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def detft(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    """``python -m detft ARGS`` in a subprocess; its output, or RuntimeError with the tail of it."""
    proc = subprocess.run([sys.executable, "-m", "detft", *args], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
    if proc.returncode:
        raise RuntimeError(f"detft {' '.join(args[:1])} exited {proc.returncode}: {(proc.stdout + proc.stderr)[-600:]}")
    return proc.stdout


def shapes(folder: Path, n: int, size: int) -> Path:
    from detft.operations.synthetic import generate

    if not (folder / "annotations").is_dir():
        generate(folder, n_train=n, n_val=max(4, n // 4), size=size, seed=0)
    return folder


def rows_of(run: Path) -> list[dict]:
    from detft.engine import checkpoint

    return checkpoint.load(run / "weights" / "last.pt")["rows"]


def rcnn_amp_resume(a: argparse.Namespace, tmp: Path) -> dict:
    """A 2-epoch run straight, and the same run stopped after epoch 1 (as a crash would) and resumed."""
    import torch

    from detft import TrainConfig
    from detft import train as api_train
    from detft.engine import checkpoint
    from detft.engine.trainer import Trainer

    data = shapes(tmp / f"shapes{a.size}", a.images, a.size)
    cfg = TrainConfig(data=str(data), arch="fasterrcnn", model="fasterrcnn_resnet50_fpn_v2", weights="none",
                      freeze="backbone", imgsz=a.size, batch=4, workers=4, epochs=2, device=a.device,
                      project=str(tmp / "runs"), exist_ok=True)
    api_train(cfg.replace(name="straight"))
    part = Trainer(cfg.replace(name="part"))
    part.setup()
    part.epochs = 1
    part.fit()
    api_train(cfg.replace(name="part"), resume=str(tmp / "runs" / "part"))
    x, y = (rows_of(tmp / "runs" / n) for n in ("straight", "part"))
    wa, wb = (checkpoint.load(tmp / "runs" / n / "weights" / "last.pt")["model"] for n in ("straight", "part"))
    diff = max(float((wa[k].float() - wb[k].float()).abs().max()) for k in wa if wa[k].is_floating_point())
    losses = [round(r["loss"], 5) for r in x], [round(r["loss"], 5) for r in y]
    scaler = checkpoint.load(tmp / "runs" / "part" / "weights" / "last.pt")["scaler"]
    return {"result": f"losses {losses[0]} vs resumed {losses[1]}; max |weight diff| {diff:.2e}; "
                      f"scaler {scaler.get('scale', 'off')}",
            "ok": abs(losses[0][-1] - losses[1][-1]) <= 1e-3 * max(1.0, abs(losses[0][-1])) and bool(
                torch.isfinite(torch.tensor(losses[1])).all())}


def cpu_then_gpu(a: argparse.Namespace, tmp: Path) -> dict:
    data = shapes(tmp / "shapes320", a.images, 320)
    detft("train", "--data", str(data), "--arch", "fasterrcnn", "--model", "fasterrcnn_mobilenet_v3_large_320_fpn",
          "--weights", "none", "--imgsz", "320", "--epochs", "1", "--workers", "2", "--project", str(tmp / "runs"),
          "--name", "cpu_start", "--exist-ok", env={"CUDA_VISIBLE_DEVICES": ""})
    out = detft("train", "--resume", str(tmp / "runs" / "cpu_start"), "--epochs", "2")
    line = next((s for s in out.splitlines() if "parameters (freeze=" in s), "")
    fresh = "scaler starts at its initial scale" in out
    return {"result": f"resumed: {line.split('(')[-1].rstrip(')') if line else '?'}; fresh scaler said: {fresh}; "
                      f"epochs {len(rows_of(tmp / 'runs' / 'cpu_start'))}",
            "ok": len(rows_of(tmp / "runs" / "cpu_start")) == 2 and (fresh or a.device == "cpu")}


def yolo_offline_amp(a: argparse.Namespace, tmp: Path) -> dict:
    """In this process, every socket refused: ultralytics' own AMP check would download yolo26n.pt here."""
    attempts: list[str] = []

    def refuse(*args, **kwargs):
        attempts.append(repr(args[:2]))
        raise OSError("network refused by gpu_check")

    socket.socket.connect = refuse  # type: ignore[method-assign]
    socket.create_connection = refuse  # type: ignore[assignment]
    os.chdir(tmp)
    import io
    from contextlib import redirect_stdout

    import detft as api

    data = shapes(tmp / "shapes320", a.images, 320)
    buf = io.StringIO()
    started = time.perf_counter()
    with redirect_stdout(buf):
        api.train(data=str(data), arch="yolo", model="yolov8n.yaml", epochs=1, imgsz=320, batch=8, workers=2,
                  device=a.device, project=str(tmp / "runs"), name="yolo", exist_ok=True)
    amp = next((s for s in buf.getvalue().splitlines() if s.startswith("AMP:")), "AMP: not checked (CPU)")
    stray = list(Path(tmp).rglob("yolo26n.pt"))
    return {"result": f"{amp}; {len(attempts)} connection attempts; stray yolo26n.pt: {len(stray)}; "
                      f"{time.perf_counter() - started:.0f} s", "ok": not attempts and not stray}


def cache_speed(a: argparse.Namespace, tmp: Path) -> dict:
    data = shapes(tmp / f"shapes{a.big}", a.images, a.big)
    results = {}
    for mode in ("off", "ram"):
        out = detft("train", "--data", str(data), "--arch", "fasterrcnn", "--model", "fasterrcnn_resnet50_fpn_v2",
                    "--weights", "none", "--freeze", "backbone+neck", "--cache-features", mode, "--imgsz", str(a.big),
                    "--batch", "4", "--workers", "4", "--epochs", "3", "--augment", "flip", "--device", a.device,
                    "--project", str(tmp / "runs"), "--name", f"cache_{mode}", "--exist-ok")
        rows = rows_of(tmp / "runs" / f"cache_{mode}")
        speed = a.images * len(rows[1:]) / sum(r["time_s"] for r in rows[1:])
        peak = next((s.split()[-2] for s in out.splitlines() if s.startswith("peak GPU memory")), "?")
        results[mode] = (speed, peak, rows[-1]["loss"])
    (s0, m0, l0), (s1, m1, l1) = results["off"], results["ram"]
    # a sanity bound, not equality: the default fp16 store rounds every map, and a random-init ResNet-50 amplifies
    # that over 3 epochs (fp32 equality is the test suite's, tests/test_feature_cache.py)
    return {"result": f"uncached {s0:.1f} img/s ({m0} MiB), cached {s1:.1f} img/s ({m1} MiB): {s1 / s0:.2f}x; "
                      f"last loss {l0:.4f} vs {l1:.4f} (fp16 store)", "ok": abs(l0 - l1) <= 0.1 * abs(l0)}


def onnx_provider(a: argparse.Namespace, tmp: Path) -> dict:
    run = tmp / "runs" / "cpu_start"
    if not run.is_dir():
        return {"result": "skipped: the CPU->GPU row did not leave a run", "ok": None}
    try:
        import onnxruntime as ort
    except ImportError:
        return {"result": "skipped: onnxruntime is not installed here", "ok": None}
    detft("export", "--weights", str(run), "--device", "cpu")
    from detft.errors import DetftError
    from detft.inference.onnx_predictor import open_session

    try:
        session = open_session(run / "weights" / "best.onnx", a.device)
        return {"result": f"{ort.__version__}: {session.get_providers()}", "ok": True}
    except DetftError as e:
        return {"result": f"{ort.__version__}, available {ort.get_available_providers()}: {e}", "ok": False}


def nccl_fit(a: argparse.Namespace, tmp: Path) -> dict:
    import torch

    if a.device == "cpu" or torch.cuda.device_count() < 2:
        return {"result": f"skipped: {torch.cuda.device_count()} GPU(s)", "ok": None}
    data = shapes(tmp / "shapes320", a.images, 320)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "-m", "detft",
                           "train", "--data", str(data), "--arch", "fasterrcnn", "--model",
                           "fasterrcnn_mobilenet_v3_large_320_fpn", "--weights", "none", "--freeze", "backbone+neck",
                           "--imgsz", "320", "--epochs", "2", "--unfreeze-at", "1", "--device", "cuda",
                           "--project", str(tmp / "runs"), "--name", "nccl", "--exist-ok"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    return {"result": f"exit {proc.returncode}; epochs {len(rows_of(tmp / 'runs' / 'nccl')) if not proc.returncode else '-'}"
                      + ("" if not proc.returncode else f": {proc.stderr[-300:]}"), "ok": proc.returncode == 0}


CHECKS = {"R-CNN AMP: 2 epochs vs 1 + resume": rcnn_amp_resume, "started without GPU, resumed on it": cpu_then_gpu,
          "feature cache on the GPU (resnet50-FPN v2)": cache_speed, "ONNX Runtime provider": onnx_provider,
          "2-process NCCL fit": nccl_fit, "YOLO: sockets refused, AMP default": yolo_offline_amp}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--quick", action="store_true", help="small sizes (a CPU smoke run of the same code)")
    p.add_argument("--out", type=Path, help="also write the rows as JSON")
    p.add_argument("--only", help="run the checks whose name contains this text (a rerun of one row)")
    a = p.parse_args()
    a.size, a.big, a.images = (128, 160, 8) if a.quick else (512, 800, 32)
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    print(f"# gpu_check: {gpu}, torch {torch.__version__}, {platform.node()}, {time.strftime('%Y-%m-%d %H:%M')}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, check in CHECKS.items():  # the YOLO row last: it refuses sockets in this process
            if a.only and a.only.lower() not in name.lower():
                continue
            started = time.perf_counter()
            try:
                row = check(a, Path(tmp))
            except Exception as e:  # a failed check is a row of the table
                row = {"result": f"FAILED: {type(e).__name__}: {str(e)[-400:]}", "ok": False}
            row.update(check=name, seconds=round(time.perf_counter() - started, 1))
            rows.append(row)
            print(f"... {name}: {row['result']}", flush=True)
    print("\n| check | ok | seconds | result |\n|---|---|---:|---|")
    for r in rows:
        ok = {True: "yes", False: "**NO**", None: "-"}[r["ok"]]
        print(f"| {r['check']} | {ok} | {r['seconds']} | {r['result']} |")
    if a.out:
        a.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()

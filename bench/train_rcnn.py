"""Training throughput and peak memory: detft frozen vs full fine-tune vs a plain torchvision loop.

    python bench/train_rcnn.py [--data ../shared/datasets/bccd/BCCD] [--steps 20] [--batch 4]

Same model (fasterrcnn_mobilenet_v3_large_320_fpn, random init: no weights download here), same
images, same batch size and image size. The plain loop is written the way torchvision's detection
references write it (PIL decode + to_tensor, SGD, loss sum, backward, step). Each variant runs in
its own subprocess so its peak memory (max RSS on CPU, max allocated on CUDA) is its own."""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

MODEL = "fasterrcnn_mobilenet_v3_large_320_fpn"
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "bccd" / "BCCD"


def peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_detft(data: str, freeze: str, steps: int, warmup: int, batch: int, device: str) -> dict:
    from detft.config import TrainConfig
    from detft.engine.trainer import Trainer, seed_epoch

    cfg = TrainConfig(data=data, model=MODEL, weights="none", freeze=freeze, batch=batch, augment="none", workers=2,
                      device=device, epochs=100, project="/tmp/detft-bench", name=f"b-{freeze}", exist_ok=True)
    trainer = Trainer(cfg)
    trainer.setup()
    trainer.model.train()
    seed_epoch(0, 0)
    it = iter(trainer.loader)
    for _ in range(warmup):
        trainer.step(*next(it))
    sync(trainer.device)
    t = time.perf_counter()
    for _ in range(steps):
        trainer.step(*next(it))
    sync(trainer.device)
    dt = time.perf_counter() - t
    from detft.models.freeze import param_counts

    return {"images_per_s": steps * batch / dt, "peak_mb": peak_mb(trainer.device),
            "trainable": param_counts(trainer.model)[0]}


def run_plain(data: str, steps: int, warmup: int, batch: int, device: str) -> dict:
    """The torchvision-references way, same model and images."""
    from PIL import Image
    from torchvision.models import detection as tvd
    from torchvision.transforms.functional import to_tensor

    from detft.convert import load
    from detft.report import Report

    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device))
    ds = load(Path(data), None, Report())
    images = ds.images_in("train")
    names = sorted({c.id for c in ds.categories})

    class Plain(torch.utils.data.Dataset):
        def __len__(self):
            return len(images)

        def __getitem__(self, i):
            im = images[i]
            img = to_tensor(Image.open(im.path).convert("RGB"))
            boxes = torch.tensor([a.bbox for a in im.annotations], dtype=torch.float32).reshape(-1, 4)
            labels = torch.tensor([names.index(a.category_id) + 1 for a in im.annotations], dtype=torch.int64)
            return img, {"boxes": boxes, "labels": labels}

    torch.manual_seed(0)
    model = tvd.fasterrcnn_mobilenet_v3_large_320_fpn(weights=None, weights_backbone=None, num_classes=len(names) + 1).to(dev)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=1e-4)
    loader = torch.utils.data.DataLoader(Plain(), batch_size=batch, shuffle=True, num_workers=2,
                                         collate_fn=lambda b: tuple(zip(*b)))
    it = iter(loader)
    model.train()

    def step():
        imgs, targets = next(it)
        imgs = [i.to(dev) for i in imgs]
        targets = [{k: v.to(dev) for k, v in t.items()} for t in targets]
        loss = sum(model(imgs, targets).values())
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    sync(dev)
    t = time.perf_counter()
    for _ in range(steps):
        step()
    sync(dev)
    return {"images_per_s": steps * batch / (time.perf_counter() - t), "peak_mb": peak_mb(dev),
            "trainable": sum(p.numel() for p in params)}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", default=str(DEFAULT_DATA))
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--device", default="auto")
    p.add_argument("--variant", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.variant:
        if a.variant == "plain":
            out = run_plain(a.data, a.steps, a.warmup, a.batch, a.device)
        else:
            out = run_detft(a.data, a.variant, a.steps, a.warmup, a.batch, a.device)
        print("RESULT " + json.dumps(out))
        return
    rows = {}
    for variant, label in (("backbone", "detft, frozen backbone"), ("none", "detft, full fine-tune"),
                           ("plain", "plain torchvision loop (full)")):
        proc = subprocess.run([sys.executable, __file__, "--variant", variant, "--data", a.data, "--steps", str(a.steps),
                               "--warmup", str(a.warmup), "--batch", str(a.batch), "--device", a.device],
                              capture_output=True, text=True, check=True)
        line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
        rows[label] = json.loads(line[7:])
    dev = "cuda: " + torch.cuda.get_device_name() if torch.cuda.is_available() and a.device != "cpu" else f"cpu ({os.cpu_count()} cores)"
    print(f"model {MODEL}, batch {a.batch}, {a.steps} timed steps after {a.warmup}, data {a.data}")
    print(f"machine: {platform.machine()}, {dev}, torch {torch.__version__}")
    mem = "peak alloc MiB" if dev.startswith("cuda") else "peak RSS MiB"
    print(f"{'variant':<32}{'images/s':>10}{mem:>16}{'trainable params':>18}")
    print("-" * 76)
    for label, r in rows.items():
        print(f"{label:<32}{r['images_per_s']:>10.2f}{r['peak_mb']:>16.0f}{r['trainable']:>18,}")


if __name__ == "__main__":
    main()

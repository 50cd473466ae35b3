"""What a frozen backbone saves: images/s per epoch, peak memory and val AP of one R-CNN trained several ways.

    python bench/train_rcnn.py [--data ../shared/datasets/bccd/BCCD] [--train 40 --val 20] [--epochs 3]
                               [--imgsz 320] [--model fasterrcnn_mobilenet_v2_fpn] [--device cpu]

Same model, start weights, images (the first --train/--val images of the data's splits), batch, image size,
seed and epochs for every row; each row runs in its own process so its peak memory (max RSS on CPU, max
allocated on CUDA) is its own. Epoch 1 and epochs 2+ are timed apart: the feature cache computes the trunk in
epoch 1 and reuses it after. The reference row is torchvision's detection-references loop (PIL decode +
to_tensor, SGD, loss sum, backward, step) around the same network, every layer training. Val AP (detft's
evaluator) after the last epoch keeps speed from hiding a loss of accuracy. Every detft row keeps its images
decoded after their first read (``--cache-images auto``) except the last, which shows what that saves."""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "bccd" / "BCCD"
# label -> TrainConfig overrides (None: the torchvision reference loop)
VARIANTS: dict[str, dict | None] = {
    "torchvision reference loop (full)": None,
    "detft full fine-tune (backbone lr x0.1)": {"freeze": "none", "cache_features": "off", "box_head": "default"},
    "detft frozen backbone (as before)": {"freeze": "backbone", "cache_features": "off", "box_head": "default"},
    "detft frozen backbone + cache": {"freeze": "backbone", "box_head": "default"},
    "detft frozen backbone+FPN": {"freeze": "backbone+neck", "cache_features": "off", "box_head": "default"},
    "detft frozen backbone+FPN + cache": {"freeze": "backbone+neck", "box_head": "default"},
    "detft defaults (+ light head)": {},  # --freeze auto, --box-head auto on an ImageNet-only start
    "  + 128 RoIs/img": {"roi_batch": 128},
    "  the same, images decoded every epoch": {"roi_batch": 128, "cache_images": "off"},
}


def peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def subset(data: str, n_train: int, n_val: int, out: Path) -> Path:
    """The first images of each split as a COCO dataset (images linked, not copied)."""
    from detft.annotations.report import Report
    from detft.formats import coco
    from detft.operations.convert import load

    ds = load(Path(data), None, Report())
    train, val = ds.images_in("train")[:n_train], ds.images_in("val")[:n_val]
    ds.images = train + val
    coco.write(ds, out, Report())
    return out


def run_detft(data: str, overrides: dict, a: argparse.Namespace) -> dict:
    from detft.config import TrainConfig
    from detft.engine.trainer import Trainer, seed_epoch
    from detft.models.freeze import param_counts

    cfg = TrainConfig(data=data, model=a.model, batch=a.batch, imgsz=a.imgsz, augment="flip", workers=2,
                      device=a.device, epochs=a.epochs, project=tempfile.mkdtemp(), name="b", warmup_iters=10,
                      lr=0.01, **overrides)
    trainer = Trainer(cfg)
    trainer.setup()
    times = []
    for epoch in range(a.epochs):
        seed_epoch(cfg.seed, epoch)
        sync(trainer.device)
        times.append(trainer.train_epoch(epoch)["time_s"])
    metrics = trainer.evaluate()
    n = len(trainer.train_set)
    return {"epoch1": n / times[0], "later": n * (len(times) - 1) / sum(times[1:]), "peak_mb": peak_mb(trainer.device),
            "trainable": param_counts(trainer.model)[0], "ap": metrics["bbox_AP"], "ap50": metrics["bbox_AP50"]}


def run_reference(data: str, a: argparse.Namespace) -> dict:
    """torchvision's references loop around the same network, every layer training."""
    from PIL import Image
    from torchvision.transforms.functional import hflip, to_tensor

    from detft.annotations.report import Report
    from detft.engine.trainer import Trainer
    from detft.models.rcnn import image_sizes
    from detft.models.registry import resolve
    from detft.operations.convert import load

    dev = torch.device(a.device if a.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    ds = load(Path(data), None, Report())
    images = ds.images_in("train")
    ids = sorted(c.id for c in ds.categories)

    class Plain(torch.utils.data.Dataset):
        def __len__(self):
            return len(images)

        def __getitem__(self, i):
            im = images[i]
            img = to_tensor(Image.open(im.path).convert("RGB"))
            boxes = torch.tensor([a.bbox for a in im.annotations], dtype=torch.float32).reshape(-1, 4)
            if torch.rand(1).item() < 0.5:  # the references' RandomHorizontalFlip
                img = hflip(img)
                boxes[:, [0, 2]] = img.shape[-1] - boxes[:, [2, 0]]
            labels = torch.tensor([ids.index(a.category_id) + 1 for a in im.annotations], dtype=torch.int64)
            return img, {"boxes": boxes, "labels": labels}

    torch.manual_seed(0)
    model = resolve(a.model).build(num_classes=len(ids) + 1, weights="DEFAULT", **image_sizes(a.imgsz)).to(dev)
    params = [p for p in model.parameters() if p.requires_grad]
    # the references' recipe: lr 0.02 per 16 images scaled to this batch, linear warm-up over the first epoch
    opt = torch.optim.SGD(params, lr=0.02 * a.batch / 16, momentum=0.9, weight_decay=1e-4)
    loader = torch.utils.data.DataLoader(Plain(), batch_size=a.batch, shuffle=True, num_workers=2,
                                         collate_fn=lambda b: tuple(zip(*b)))
    warmup = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1e-3, total_iters=min(1000, len(loader) - 1))
    times = []
    for epoch in range(a.epochs):
        model.train()
        sync(dev)
        t = time.perf_counter()
        for imgs, targets in loader:
            imgs = [i.to(dev) for i in imgs]
            targets = [{k: v.to(dev) for k, v in t.items()} for t in targets]
            loss = sum(model(imgs, targets).values())
            if not torch.isfinite(loss):
                sys.exit(f"the reference loop diverged (loss {loss.item()}) in epoch {epoch + 1}")
            opt.zero_grad()
            loss.backward()
            opt.step()
            if epoch == 0:
                warmup.step()
        sync(dev)
        times.append(time.perf_counter() - t)
    # scored by the same evaluator as the detft rows
    from detft.config import TrainConfig

    scorer = Trainer(TrainConfig(data=data, model=a.model, imgsz=a.imgsz, device=str(dev), project=tempfile.mkdtemp()))
    scorer.setup()
    scorer.model = model
    metrics = scorer.evaluate()
    n = len(images)
    return {"epoch1": n / times[0], "later": n * (len(times) - 1) / sum(times[1:]), "peak_mb": peak_mb(dev),
            "trainable": sum(p.numel() for p in params), "ap": metrics["bbox_AP"], "ap50": metrics["bbox_AP50"]}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", default=str(DEFAULT_DATA))
    p.add_argument("--model", default="fasterrcnn_mobilenet_v2_fpn")
    p.add_argument("--train", type=int, default=40, help="training images (the first of the train split)")
    p.add_argument("--val", type=int, default=20, help="validation images (the first of the val split)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--imgsz", type=int, default=320)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--device", default="cpu")
    p.add_argument("--only", nargs="*", help="labels (substrings) of the rows to run")
    p.add_argument("--variant", help=argparse.SUPPRESS)
    p.add_argument("--subset", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.variant:
        overrides = VARIANTS[a.variant]
        out = run_reference(a.subset, a) if overrides is None else run_detft(a.subset, overrides, a)
        print("RESULT " + json.dumps(out))
        return
    data = subset(a.data, a.train, a.val, Path(tempfile.mkdtemp()) / "subset")
    rows = {}
    for label in VARIANTS:
        if a.only and not any(s in label for s in a.only):
            continue
        args = [sys.executable, __file__, "--variant", label, "--subset", str(data)] + [
            f"--{k}={getattr(a, k)}" for k in ("model", "epochs", "imgsz", "batch", "device")]
        proc = subprocess.run(args, capture_output=True, text=True)
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if line is None:
            sys.exit(f"{label} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        rows[label] = json.loads(line[7:])
        print(f"  done: {label}", file=sys.stderr)
    dev = "cuda: " + torch.cuda.get_device_name() if a.device.startswith("cuda") else f"cpu ({os.cpu_count()} cores)"
    print(f"model {a.model} (packaged pretrained start), {a.train} train / {a.val} val images of {a.data}, "
          f"{a.imgsz} px, batch {a.batch}, {a.epochs} epochs, --augment flip")
    print(f"machine: {platform.machine()}, {dev}, torch {torch.__version__}")
    mem = "peak alloc MiB" if dev.startswith("cuda") else "peak RSS MiB"
    base = rows.get("detft full fine-tune (backbone lr x0.1)")
    print(f"{'variant':<42}{'img/s ep1':>10}{'img/s ep2+':>11}{'vs full':>8}{mem:>15}{'trainable':>12}{'val AP':>8}{'AP50':>8}")
    print("-" * 114)
    for label, r in rows.items():
        ratio = f"{r['later'] / base['later']:.2f}x" if base else "-"
        print(f"{label:<42}{r['epoch1']:>10.2f}{r['later']:>11.2f}{ratio:>8}{r['peak_mb']:>15.0f}{r['trainable']:>12,}"
              f"{r['ap']:>8.4f}{r['ap50']:>8.4f}")


if __name__ == "__main__":
    main()

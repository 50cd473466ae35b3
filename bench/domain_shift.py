"""The feature shift ``--freeze auto`` reads (detft/models/domain_shift.py) on every dataset of a suite: how far each
lies from the YOLO11n COCO start's own statistics, how steady the number is in the sample size, what it costs, and
how many epochs a time budget fits with the backbone training (the pace probe of detft/models/pace.py), and what auto
chooses from them.

    python bench/domain_shift.py --suite bench/suite.yaml [--also NAME=PATH ...] [--samples 16 32 64] [--threads 1]
                                 [--minutes 5 --imgsz 320 --batch 4]

One row per dataset: training and validation images, objects, the shift (and its shallow / deep halves) at each
sample size, seconds per measurement, the pace (ms per training and per validation image), the epochs the budget
fits by it, and auto's choice at the default sample size. Needs ``pip install 'detft[yolo,yolo-weights]'``."""

from __future__ import annotations

import argparse
import contextlib
import io
from pathlib import Path

START = "yolo11n-coco"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--suite", help="a suite YAML (bench/suite.yaml): datasets: [{name, local}, ...]")
    p.add_argument("--also", nargs="*", default=[], help="more datasets as NAME=PATH (e.g. bccd=../shared/datasets/bccd)")
    p.add_argument("--samples", type=int, nargs="+", default=[16, 32, 64])
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--minutes", type=float, default=5.0, help="the time budget whose epochs are estimated")
    p.add_argument("--imgsz", type=int, default=320, help="training size the pace is measured at")
    p.add_argument("--batch", type=int, default=4)
    args = p.parse_args()
    import torch
    import yaml

    from detft.config import TrainConfig
    from detft.data.loading import load_data
    from detft.models.defaults import DataAmount, Passes, freeze_by_data
    from detft.models.yolo import load_model, yolo_pace, yolo_shift

    if args.threads:
        torch.set_num_threads(args.threads)
    sets = {}
    if args.suite:
        sets.update({d["name"]: d["local"] for d in yaml.safe_load(Path(args.suite).read_text())["datasets"]})
    sets.update(dict(pair.split("=", 1) for pair in args.also))
    if not sets:
        p.error("--suite or --also NAME=PATH")
    model = load_model(START)
    head = f"{'dataset':<18}{'train':>6}{'val':>5}{'objects':>9}"
    head += "".join(f"{f'shift@{n} (sh/dp)':>22}" for n in args.samples)
    print(head + f"{'s@32':>6}{'ms/train':>9}{'ms/val':>7}{'epochs':>7}  auto")
    for name, path in sets.items():
        with contextlib.redirect_stdout(io.StringIO()):  # the reader's notes and the split warnings
            data = load_data(TrainConfig(data=path))
        line = f"{name:<18}{len(data.train):>6}{len(data.val):>5}"
        amount = DataAmount.of(data.train, {c.id: c.name for c in data.dataset.categories})
        line += f"{amount.objects:>9}"
        shifts = {n: yolo_shift(model, data.train, n) for n in args.samples}
        for n in args.samples:
            s = shifts[n]
            line += f"{f'{s.distance:.3f} ({s.shallow:.2f}/{s.deep:.2f})':>22}"
        default = shifts.get(32) or shifts[args.samples[0]]
        pace = yolo_pace(model, data.train, imgsz=args.imgsz, batch=args.batch, device=torch.device("cpu"))
        epochs = pace.epochs_in(args.minutes * 60, len(data.train), len(data.val))
        freeze, _ = freeze_by_data(default.distance, amount, lambda: Passes(epochs, "measured"))
        line += f"{default.seconds:>6.1f}{1000 * pace.train_s:>9.0f}{1000 * pace.val_s:>7.0f}{epochs:>7.1f}"
        print(line + f"  {freeze}", flush=True)


if __name__ == "__main__":
    main()

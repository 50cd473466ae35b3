"""Body of one DDP rank for test_ddp.py: the real Trainer, one optimizer step on its shard."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch


def run(rank: int, world: int, port: int, data: str, out: str) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    import tiny_models  # noqa: F401
    from test_ddp import ddp_config

    from detft.engine.trainer import Trainer, seed_epoch

    os.environ.update(WORLD_SIZE=str(world), RANK=str(rank), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    trainer = Trainer(ddp_config(data, out))
    trainer.setup()
    batch = next(iter(trainer.sampler))
    images, targets = trainer.loader.collate_fn([trainer.train_set[i] for i in batch])
    trainer.model.train()
    seed_epoch(trainer.cfg.seed, 0)
    trainer.step(images, targets)
    torch.save({"batch": batch, "params": {k: v.detach().clone() for k, v in trainer.model.named_parameters()}},
               Path(out) / f"rank{rank}.pt")
    torch.distributed.destroy_process_group()

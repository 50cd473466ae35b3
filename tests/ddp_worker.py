"""Bodies of DDP ranks for test_ddp.py, started by torch.multiprocessing.spawn: the real Trainer on gloo."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch


def _join(rank: int, world: int, port: int) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    import tiny_models  # noqa: F401

    os.environ.update(WORLD_SIZE=str(world), RANK=str(rank), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)


def one_step(rank: int, world: int, port: int, data: str, out: str) -> None:
    """One optimizer step on this rank's first batch; the batch and the parameters after it are saved."""
    _join(rank, world, port)
    from helpers import ddp_config

    from detft.engine.trainer import Trainer, seed_epoch

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


def fit_and_resume(rank: int, world: int, port: int, data: str, out: str, resume_port: int) -> None:
    """A whole fit() with backbone+neck frozen and cached, an unfreeze, validation and checkpoints, then a resume
    (a process group of its own, on another port: re-joining the first one's port races with its teardown);
    what each rank wrote, cached and ended with is saved."""
    _join(rank, world, port)
    from helpers import ddp_config

    from detft.engine import checkpoint
    from detft.engine.feature_cache import FrozenTrunk
    from detft.engine.trainer import Trainer
    from detft.runs import Run

    writes: list[str] = []
    save, save_info = checkpoint.save, Run.save_info
    checkpoint.save = lambda path, payload: (writes.append(path.name), save(path, payload))[1]
    Run.save_info = lambda self, info: (writes.append("run.yaml"), save_info(self, info))[1]
    stored: list[list[int]] = []
    detach = FrozenTrunk.detach
    FrozenTrunk.detach = lambda self: (stored.append(sorted({k[0] for k in self.store.ram}) if self.store else []),
                                       detach(self))[1]
    cfg = ddp_config(data, out, epochs=3, freeze="backbone+neck", unfreeze_at=2, augment="flip",
                     cache_features="ram", cache_precision="fp32", cache_images="auto")
    run = Path(out) / cfg.name

    def differs_from_last_pt(trainer: Trainer) -> list[str]:
        """Parameters of this rank that differ from rank 0's, as rank 0 saved them in last.pt (rank 0's own model
        holds best.pt's weights after the final evaluation)."""
        last = checkpoint.load(run / "weights" / "last.pt")["model"]
        return [k for k, v in trainer.model.named_parameters() if not torch.equal(v.detach(), last[k])]

    first = Trainer(cfg)
    first.setup()
    shard = first.sampler.shard()
    first.fit()
    after_first = differs_from_last_pt(first)
    os.environ["MASTER_PORT"] = str(resume_port)
    resumed = Trainer(cfg.replace(epochs=4), Run(run))
    resumed.setup(checkpoint.load(run / "weights" / "last.pt"))
    resumed.fit()
    torch.save({"differs": [after_first, differs_from_last_pt(resumed)], "writes": writes, "shard": shard,
                "stored": stored, "rows": len(resumed.rows)}, Path(out) / f"rank{rank}.pt")


def rank0_fails(rank: int, world: int, port: int, data: str, out: str) -> None:
    """Rank 0's validation raises: every rank must end, each with rank 0's message."""
    _join(rank, world, port)
    from helpers import ddp_config

    from detft.engine.trainer import Trainer

    trainer = Trainer(ddp_config(data, out, epochs=2, dist_timeout=2.0))
    trainer.setup()
    if rank == 0:
        def evaluate(*args, **kwargs):
            raise RuntimeError("the val images vanished")

        trainer.evaluate = evaluate
    try:
        trainer.fit()
        message = "finished"
    except Exception as e:
        message = f"{type(e).__name__}: {e}"
    (Path(out) / f"rank{rank}.json").write_text(json.dumps(message))

"""Multi-process training on CPU with gloo: ranks see different batches, and one DDP step equals
the single-process computation (gradients of each rank's batch averaged, then one optimizer step)."""

from __future__ import annotations

import socket
from pathlib import Path

import tiny_models  # noqa: F401
import torch
import torch.multiprocessing as mp
from helpers import make_data

from detft.config import TrainConfig
from detft.engine.trainer import Trainer, seed_epoch
from detft.models.freeze import param_counts


def ddp_config(data: str, out: str) -> TrainConfig:
    return TrainConfig(data=data, arch="fasterrcnn", model="tiny_fasterrcnn", weights="none", epochs=1, batch=2,
                       lr=0.01, optimizer="sgd", schedule="constant", warmup_iters=0, augment="flip,color",
                       workers=0, project=out, name="ddp", imgsz=96, freeze="none", clip_grad=10.0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_ranks_match_single_process_math(tmp_path: Path):
    import ddp_worker

    data = make_data(tmp_path / "data", n=8)
    mp.spawn(ddp_worker.run, args=(2, free_port(), str(data), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert set(r0["batch"]).isdisjoint(r1["batch"])  # each rank trains on its own shard
    for k in r0["params"]:  # DDP keeps the replicas identical
        assert torch.equal(r0["params"][k], r1["params"][k]), k

    # the same step done by hand in one process: average the two ranks' gradients, step once
    trainer = Trainer(ddp_config(str(data), str(tmp_path / "single")))
    trainer.setup()
    params = [p for p in trainer.model.parameters() if p.requires_grad]
    grads = []
    for batch in (r0["batch"], r1["batch"]):
        images, targets = trainer.loader.collate_fn([trainer.train_set[i] for i in batch])
        trainer.model.train()
        seed_epoch(trainer.cfg.seed, 0)
        trainer.optimizer.zero_grad(set_to_none=True)
        loss = sum(trainer.model(images, targets).values())
        loss.backward()
        grads.append([p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in params])
    for p, g0, g1 in zip(params, *grads):
        p.grad = (g0 + g1) / 2
    torch.nn.utils.clip_grad_norm_(params, trainer.cfg.clip_grad)
    trainer.optimizer.step()
    single = dict(trainer.model.named_parameters())
    assert param_counts(trainer.model)[0] > 0
    for k, v in r0["params"].items():
        assert torch.allclose(single[k], v, atol=1e-6, rtol=1e-5), k

"""Multi-process training on CPU with gloo: ranks see different batches, one DDP step equals the single-process
computation (gradients of each rank's batch averaged, then one optimizer step), a whole fit with the frozen trunk
cached, an unfreeze, validation and a resume keeps the ranks equal with only rank 0 writing, and an error on rank 0
ends every rank."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import tiny_models  # noqa: F401
import torch
import torch.multiprocessing as mp
from helpers import ddp_config, make_data, widen_images

from detft.engine.trainer import Trainer, seed_epoch
from detft.models.freeze import param_counts


def free_port(*taken: int) -> int:
    """A free local port, none of ``taken`` (two asked for at once must differ)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in taken:
            return port


def test_two_gloo_ranks_match_single_process_math(tmp_path: Path):
    import ddp_worker

    data = make_data(tmp_path / "data", n=8)
    mp.spawn(ddp_worker.one_step, args=(2, free_port(), str(data), str(tmp_path)), nprocs=2, join=True)
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


def test_a_two_rank_fit_with_the_cache_an_unfreeze_and_a_resume_keeps_ranks_equal(tmp_path: Path):
    import ddp_worker

    data = widen_images(make_data(tmp_path / "data", n=8))
    port = free_port()
    mp.spawn(ddp_worker.fit_and_resume, args=(2, port, str(data), str(tmp_path), free_port(port)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert r1["differs"] == [[], []]  # DDP keeps the replicas identical through the unfreeze and the resume
    assert set(r0["shard"]).isdisjoint(r1["shard"]) and len(r0["shard"]) == len(r1["shard"]) == 4
    for r in (r0, r1):  # each rank cached its own shard only, and the cache was dropped at the unfreeze
        assert r["stored"][0] and set(r["stored"][0]) <= set(r["shard"]), r["stored"]
    assert r0["rows"] == 4  # 3 epochs, then one more after the resume
    assert r1["writes"] == []  # only rank 0 writes the run folder
    assert r0["writes"].count("last.pt") == 4 and "best.pt" in r0["writes"] and "run.yaml" in r0["writes"]
    run = tmp_path / "ddp"
    assert (run / "eval.json").is_file() and not list(run.glob(".*cache*"))  # caches gone, report written


def test_an_error_on_rank_0_ends_every_rank_with_its_message(tmp_path: Path):
    import ddp_worker

    data = make_data(tmp_path / "data", n=4)
    mp.spawn(ddp_worker.rank0_fails, args=(2, free_port(), str(data), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0 == "RuntimeError: the val images vanished"
    assert "rank 0 failed" in r1 and "the val images vanished" in r1

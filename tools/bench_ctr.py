"""Epoch time of each CTR backbone on one thread, at the grid's smallest and largest field counts.

    python tools/bench_ctr.py --config recipes/configs/ctr_beauty.yaml --scales 1 7 --out results/bench_ctr_cpu.json

Each backbone trains on the real samples and fields of the run (`--representation`, default MoC: the most
fields, 9 at 1x and 27 at 7x) with the grid's batch size, optimizer and loss; `--steps` steps are timed after
`--warmup` and scaled to one epoch. Variants measured in the same run, alternating so that a load on the
machine falls on all of them (the fastest repeat is kept): fp32, bf16 autocast (only where the CPU has
native bf16: emulated bf16 is several times slower), AutoInt+ at each `--attention-dims` (per head;
speed-ups are over fp32 at the first width listed), and with `--autoint-before` AutoInt+ with the layer it had
before tuning (a residual projection in every layer, attention scaled by 1/sqrt(d), 2 x 32): the obvious
alternative to today's layer.
"""
from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from genrec.config import load_config
from genrec.experiments.ctr.grid import CtrRunConfig, CtrTask, prepare_inputs
from genrec.experiments.harness import hardware
from genrec.files import write_atomic
from genrec.hardware import native_bf16
from genrec.models.ctr.autoint import AutoIntPlus
from genrec.training import make_accelerator


class LayerBefore(torch.nn.Module):
    """AutoInt+'s interacting layer before tuning: q/k/v and a residual projection in every layer, scaled attention."""

    def __init__(self, in_dim: int, heads: int, head_dim: int):
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        self.qkv = torch.nn.Linear(in_dim, 3 * heads * head_dim, bias=False)
        self.residual = torch.nn.Linear(in_dim, heads * head_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, f, _ = x.shape
        q, k, v = self.qkv(x).view(b, f, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        attended = torch.nn.functional.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, f, -1)
        return torch.relu(attended + self.residual(x))


def use_layer_before(model: AutoIntPlus) -> None:
    cfg = model.cfg
    dims = [cfg.embedding_dim] + [cfg.attention_heads * cfg.attention_dim] * cfg.attention_layers
    model.layers = torch.nn.ModuleList(LayerBefore(d, cfg.attention_heads, cfg.attention_dim) for d in dims[:-1])


def time_steps(task: CtrTask, lr: float, batch_size: int, steps: int, warmup: int, bf16: bool) -> float:
    """Seconds per training step (forward, backward, clip, Adam) over random training batches."""
    model = task.model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    generator = torch.Generator().manual_seed(0)
    rows = task.num_train_examples()
    batches = [task.batch(torch.randint(rows, (batch_size,), generator=generator), torch.device("cpu"))
               for _ in range(steps + warmup)]
    start = 0.0
    for i, batch in enumerate(batches):
        if i == warmup:
            start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss, _ = task.loss(model, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return (time.perf_counter() - start) / steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="recipes/configs/ctr_beauty.yaml")
    p.add_argument("--set", nargs="*", default=[], help="config overrides (e.g. output_dir=...)")
    p.add_argument("--backbones", nargs="+", default=["deepfm", "deepim", "autoint+", "dcnv2"])
    p.add_argument("--representation", default="moc")
    p.add_argument("--scales", nargs="+", type=int, default=[1, 7])
    p.add_argument("--attention-dims", nargs="+", type=int, default=[32, 16])
    p.add_argument("--autoint-before", action="store_true", help="also time AutoInt+'s layer before tuning (2 x 32)")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    cfg = load_config(CtrRunConfig, args.config, args.set)
    inputs = prepare_inputs(cfg, make_accelerator(cfg.train), [args.representation])
    precisions = ["fp32"] + (["bf16"] if native_bf16("cpu") else [])
    steps_per_epoch = math.ceil(len(inputs.samples.split("train")) / cfg.train.batch_size)
    dims: dict[str, list] = {b: list(args.attention_dims) if b == "autoint+" else [cfg.model.attention_dim]
                             for b in args.backbones}
    if args.autoint_before and "autoint+" in dims:  # "before" is the reference: speed-ups are over it
        dims["autoint+"].insert(0, "before")
    variants = [(b, s, prec, dim) for s in args.scales for b in args.backbones for prec in precisions for dim in dims[b]]
    best: dict[tuple, float] = {}
    for _ in range(args.repeats):
        for backbone, scale, precision, dim in variants:
            fields = inputs.fields(cfg, args.representation, scale)
            torch.manual_seed(0)
            width = 32 if dim == "before" else dim
            task = CtrTask(inputs.samples, fields, backbone, replace(cfg.model, attention_dim=width))
            if dim == "before":
                use_layer_before(task.model)
            seconds = time_steps(task, cfg.train.lr, cfg.train.batch_size, args.steps, args.warmup, precision == "bf16")
            key = (backbone, scale, precision, dim)
            best[key] = min(best.get(key, math.inf), seconds)
    rows = []
    print(f"{hardware()}; {args.representation} fields, batch {cfg.train.batch_size}, {steps_per_epoch} steps per epoch")
    for (backbone, scale, precision, dim), seconds in best.items():
        fields = len(inputs.fields(cfg, args.representation, scale).names) + 1
        reference = best[(backbone, scale, "fp32", dims[backbone][0])]  # fp32, the first variant (AutoInt+: "before")
        rows.append({"backbone": backbone, "scale": scale, "fields": fields, "precision": precision,
                     "attention_dim": (32 if dim == "before" else dim) if backbone == "autoint+" else None,
                     "autoint_layer": ("before tuning" if dim == "before" else "current") if backbone == "autoint+" else None, "step_ms": 1000 * seconds,
                     "epoch_seconds": seconds * steps_per_epoch, "speedup_over_reference": reference / seconds})
        label = backbone + ("" if backbone != "autoint+" else " (layer before tuning, 32/head)" if dim == "before"
                            else f" (attention {dim}/head)")
        print(f"{scale}x {fields:2d} fields {label:28s} {precision}: {1000 * seconds:6.0f} ms/step, "
              f"{seconds * steps_per_epoch:5.1f} s/epoch ({reference / seconds:.2f}x)")
    if args.out:
        result = {"command": "python tools/bench_ctr.py " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
                  "hardware": hardware(), "threads": args.threads, "representation": args.representation,
                  "batch_size": cfg.train.batch_size, "steps_per_epoch": steps_per_epoch, "timed_steps": args.steps,
                  "rows": rows}
        write_atomic(Path(args.out), json.dumps(result, indent=1))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

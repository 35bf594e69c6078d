"""Constrained beam search speed: genrec's tensor trie vs HF `generate` with a Python `prefix_allowed_tokens_fn`.

Both decode the same trained model on the same test users with the same beam width. Ours (the model's own
`generate`) runs over every test user; the HF baseline (a Python callback per beam per step) runs over
`--hf-users` of them and is also reported per user. HF's `generate` scores codes with the LM head alone, so
the run must be a `model.decoder=tiger` model. Writes results/bench_beam.json (or --out).

    python tools/bench_beam.py --run runs/beauty_seq/seed_42 --beam 20 --topk 10
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from genrec.generation.hf import hf_constrained_generate
from genrec.experiments.harness import hardware
from genrec.experiments.seq import SavedRun


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def batches(inputs: dict[str, Any], size: int, limit: int | None = None):
    """Slices of the encoder inputs (`input_ids` is None for unified runs)."""
    n = len(inputs["attention_mask"]) if limit is None else limit
    for s in range(0, n, size):
        yield {k: v[s:min(s + size, n)] if v is not None else None for k, v in inputs.items()}


def ours(run: SavedRun, beam: int, topk: int, batch: int, device: str, limit: int | None = None):
    split = run.splits.test
    n = len(split.history) if limit is None else limit
    history, users = torch.from_numpy(split.history[:n]).to(device), torch.from_numpy(split.user[:n]).to(device)
    items = []
    with torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16, enabled=device.startswith("cuda")):
        for s in range(0, n, batch):
            items.append(run.model.generate(history[s : s + batch], users[s : s + batch], beam, topk)[0])
    sync(device)
    return torch.cat(items)


def hf_generate(run: SavedRun, inputs: dict[str, Any], beam: int, topk: int, batch: int, device: str, limit: int):
    items = []
    with torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16, enabled=device.startswith("cuda")):
        for part in batches(inputs, batch, limit):
            items.append(hf_constrained_generate(run.model.t5, run.model.codes, beam=beam, topk=topk, **part))
    sync(device)
    return torch.cat(items)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="a finished run folder, runs/<name>/seed_<s>")
    parser.add_argument("--beam", type=int, default=20)
    parser.add_argument("--topk", type=int, default=10)
    parser.add_argument("--batch", type=int, default=2048, help="users per batch for ours")
    parser.add_argument("--hf-batch", type=int, default=64)
    parser.add_argument("--hf-users", type=int, default=1024)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", default="results/bench_beam.json")
    args = parser.parse_args()

    run = SavedRun.load(args.run, args.device)
    if run.model.seq2seq.decoder != "tiger":
        raise SystemExit(f"{args.run}: model.decoder={run.model.seq2seq.decoder}; HF generate scores codes with the LM "
                         "head alone, so the comparison needs a model.decoder=tiger run")
    inputs, _ = run.test_inputs(args.device)
    users = len(inputs["attention_mask"])
    ours(run, args.beam, args.topk, args.batch, args.device, limit=256)  # warm-up
    start = time.perf_counter()
    ours_items = ours(run, args.beam, args.topk, args.batch, args.device)
    ours_s = time.perf_counter() - start
    n_hf = min(args.hf_users, users)
    start = time.perf_counter()
    ours(run, args.beam, args.topk, args.batch, args.device, limit=n_hf)
    ours_subset_s = time.perf_counter() - start
    start = time.perf_counter()
    hf_items = hf_generate(run, inputs, args.beam, args.topk, args.hf_batch, args.device, limit=n_hf)
    hf_s = time.perf_counter() - start
    same_top1 = (hf_items[:, 0] == ours_items[:n_hf, 0].cpu()).float().mean().item()
    overlap = sum(len(set(a) & set(b)) for a, b in zip(hf_items.tolist(), ours_items[:n_hf].cpu().tolist())) / (n_hf * args.topk)
    result = {
        "users": users, "mode": run.cfg.mode, "beam": args.beam, "topk": args.topk, "device": hardware() if args.device != "cpu" else f"CPU ({torch.get_num_threads()} threads)",
        "ours_s": round(ours_s, 3),
        "hf_users": n_hf, "hf_prefix_fn_s_on_hf_users": round(hf_s, 3), "ours_s_on_hf_users": round(ours_subset_s, 3),
        "hf_prefix_fn_s": round(hf_s * users / n_hf, 2),
        "speedup": round((hf_s / n_hf) / (ours_s / users), 1),
        "top1_agreement_with_hf": round(same_top1, 4), "topk_overlap_with_hf": round(overlap, 4),
        "note": "hf_prefix_fn_s is extrapolated linearly from hf_users; both use bf16 autocast on CUDA",
        "command": "python tools/bench_beam.py " + " ".join(sys.argv[1:]),
    }
    print(json.dumps(result, indent=1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

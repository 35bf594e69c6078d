"""Score-precision audit of finished SASRec fits: test metrics with fp32 scores, with the same scores
rounded to bf16, and (for a jointly trained tokenizer) with the item table a bf16 encoder builds.
`tools/rescore_baseline.py` is its command line."""
from __future__ import annotations

import torch

from genrec.experiments.baselines import load_baseline
from genrec.evaluation.ranking import metrics_from_ranks, target_ranks_from_scores
from genrec.quantize import SemanticTokenizer


def _bf16(device: torch.device) -> torch.autocast:
    return torch.autocast(device.type, dtype=torch.bfloat16)


@torch.no_grad()
def code_flips(tokenizer: SemanticTokenizer, item_text: torch.Tensor) -> dict:
    """Items whose code tuple differs between an fp32 and a bf16-autocast encoder."""
    fp32 = tokenizer.quantizer(tokenizer.encode(item_text)).codes
    with _bf16(item_text.device):
        bf16 = tokenizer.quantizer(tokenizer.encode(item_text)).codes
    changed = fp32 != bf16
    return {"items": len(fp32), "changed": changed.any(1).sum().item(), "changed_per_level": changed.sum(0).tolist()}


@torch.no_grad()
def rescore(folder: str, batch_size: int = 1024) -> dict:
    saved = load_baseline(folder)
    model, test = saved.task.model, saved.task.data.splits["test"]
    history, targets = test["history"], test["target"]
    table = model.item_table()
    joint_tokenizer = model.item_embedding is not None and model.item_embedding.tokenizer is not None
    if joint_tokenizer:  # the item table as the training process built it for its own evaluation
        with _bf16(table.device):
            bf16_table = model.item_table().float()
    ranks = {"fp32": [], "bf16": []} | ({"bf16_table": []} if joint_tokenizer else {})
    ties = []
    for rows in torch.arange(len(targets)).split(batch_size):
        scores, target = model(history[rows], table), targets[rows]
        rounded = scores.bfloat16().float()
        ranks["fp32"].append(target_ranks_from_scores(scores, target))
        ranks["bf16"].append(target_ranks_from_scores(rounded, target))
        ties.append((rounded == rounded.gather(1, target.unsqueeze(1))).sum(1) - 1)  # other items tied with the target
        if joint_tokenizer:
            ranks["bf16_table"].append(target_ranks_from_scores(model(history[rows], bf16_table), target))
    out = {name: metrics_from_ranks(torch.cat(r)) for name, r in ranks.items()}
    ties = torch.cat(ties).float()
    row = {"run": str(folder), "model": saved.model_name, "dataset": saved.cfg.data.dataset, "users": len(targets),
           "metrics_fp32": out["fp32"], "metrics_bf16_scores": out["bf16"],
           "bf16_items_tied_with_target": {"mean": ties.mean().item(), "median": ties.median().item()}}
    if joint_tokenizer:
        row["metrics_bf16_item_table"] = out["bf16_table"]
        row["codes_changed_by_bf16_encoder"] = code_flips(model.item_embedding.tokenizer, model.item_embedding.item_text)
    return row



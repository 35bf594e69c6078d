"""The CTR path behind `recipes/train_ctr.py`: samples -> item fields -> backbone grid -> AUC/logloss.

Each grid cell is (backbone, representation, scaling factor, fusion on/off), trained once per seed
by the shared loop with early stopping on validation AUC. Finished fits are saved and skipped on a
re-run, so an interrupted grid resumes where it stopped.
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator

from genrec.config import save_config, to_dict
from genrec.data import item_embeddings
from genrec.data.ctr import CtrSampleConfig, CtrSamples, ctr_samples
from genrec.evaluation.codes import effective_rank, singular_spectrum
from genrec.evaluation.ctr import auc_logloss
from genrec.experiments.ctr.fields import (ItemFields, attribute_fields, representation_columns, representation_fields,
                                           tokenizer_codes)
from genrec.experiments.harness import DataConfig, RunConfig, fit_and_test, holding, load_data, run_record, write_result
from genrec.experiments.tokenizer import TokenizerFitConfig, seeded
from genrec.errors import RunFolderError
from genrec.files import run_lock, write_atomic
from genrec.models.ctr import BACKBONES, CtrModel, CtrModelConfig, build_ctr_model
from genrec.training import SplitTensors, Task, TrainConfig, eval_batches, make_accelerator
from genrec.training.loop import BEST


@dataclass
class CtrGrid:
    backbones: list[str] = field(default_factory=lambda: ["deepfm", "deepim", "autoint+", "dcnv2"])
    representations: list[str] = field(default_factory=lambda: ["id", "rq", "me", "moc"])
    scales: list[int] = field(default_factory=lambda: [1, 2, 3, 7])
    fusion: list[bool] = field(default_factory=lambda: [False, True])
    # collect, train no model: report the cells whose every seed already has a saved fit in
    # runs/<name>/ (a grid run in parts, or one that was stopped), and list the cells that are missing
    only_finished: bool = False
    # several processes fill the grid together (one thread each on a CPU, or on one GPU; tools/run_ctr_grid.sh):
    # each takes the fits no other process holds, so they share the work however many there are and whenever
    # they start, and each reports the cells finished when it is done
    side_by_side: bool = False
    # results JSONs of this grid (results/ctr_<dataset>.json) whose per-seed fits are written back into
    # runs/<name>/ where none is saved: the grid continues from what was committed when its runs folder is lost
    # (a new machine); each fit is still reused only if its fields and settings fingerprints match
    restore_from: list[str] = field(default_factory=list)

    def cells(self) -> list[tuple[str, str, int, bool]]:
        """Every combination, except ME at 1x: one table per code is exactly the RQ-VAE 1x model."""
        return [c for c in itertools.product(self.backbones, self.representations, self.scales, self.fusion)
                if not (c[1] == "me" and c[2] == 1 and "rq" in self.representations)]

    def by_cost(self) -> list[tuple[str, str, int, bool]]:
        """The cells, costliest first (largest scale, AutoInt+ first within a scale), so that processes side by
        side end close together instead of one finishing a 7x AutoInt+ fit alone."""
        return sorted(self.cells(), key=lambda c: (-c[2], c[0] != "autoint+"))


def _ctr_train() -> TrainConfig:
    """FuxiCTR's training (rank_model.py, model_zoo configs): Adam (no weight decay), gradient norm clipped
    at 10, early stopping after 2 epochs without a better validation AUC; the learning rate tuned on Beauty
    (1e-2: FuxiCTR's 1e-3 leaves rare users' rows barely trained in 10 epochs; docs/results/ctr.md). fp32:
    the grid's cells are filled session after session on machines with and without native bf16."""
    return TrainConfig(epochs=10, batch_size=4096, lr=1e-2, weight_decay=0.0, max_grad_norm=10.0, eval_every=1,
                       patience=2, monitor="auc", checkpoint_every=0, resume=False, progress=False,
                       mixed_precision="no")


def _ctr_tokenizer() -> TokenizerFitConfig:
    """Straight-through, not the rotation trick: at 21 residual levels the rotation's norm-ratio scaling
    overflowed (NaN in epoch 4 on Beauty), while the residuals it scales carry almost nothing."""
    tok = TokenizerFitConfig(estimator="ste")
    return replace(tok, train=replace(tok.train, epochs=50))


@dataclass
class BackboneSettings:
    """One backbone's own settings; each one set replaces the shared section's value (`train.lr`,
    `model.embedding_l2`, `model.dropout`) in that backbone's cells, None keeps it."""
    lr: float | None = None
    embedding_l2: float | None = None
    dropout: float | None = None


@dataclass
class TunedBackbones:
    """Chosen on Beauty's validation AUC at 1x, ID and MoC, seed 42 (tools/tune_ctr.py, docs/results/ctr.md)."""
    deepfm: BackboneSettings = field(default_factory=BackboneSettings)
    deepim: BackboneSettings = field(default_factory=BackboneSettings)
    autoint: BackboneSettings = field(default_factory=BackboneSettings)  # AutoInt+
    dcnv2: BackboneSettings = field(default_factory=lambda: BackboneSettings(embedding_l2=1e-3))

    def of(self, backbone: str) -> BackboneSettings:
        return getattr(self, backbone.rstrip("+"))

    @classmethod
    def shared(cls) -> "TunedBackbones":
        """No backbone with settings of its own: every cell takes the shared `train`/`model` sections."""
        return cls(**{f.name: BackboneSettings() for f in dataclasses.fields(cls)})


@dataclass
class CtrRunConfig(RunConfig):
    name: str = "ctr_beauty"
    seeds: list[int] = field(default_factory=lambda: [42, 43, 44])
    tokenizer_seed: int = 42  # one tokenizer per (kind, size), shared by all model seeds
    # where each tokenizer's codes are kept besides runs/<name>/tokenizers (results/ctr_codes/<dataset> in the
    # grids' configs, committed): a grid filled on several machines then trains every cell on the same codes
    codes_dir: str = ""
    attribute_slots: int = 4  # leading S3-Rec attribute ids used as category fields (0 = none)
    base_levels: int = 3  # code fields at scaling factor 1
    eval_batch_size: int = 16384
    spectrum_values: int = 32  # leading normalised singular values kept per fit
    data: DataConfig = field(default_factory=DataConfig)
    samples: CtrSampleConfig = field(default_factory=CtrSampleConfig)
    grid: CtrGrid = field(default_factory=CtrGrid)
    # embedding L2 and the DNN's batch norm tuned with the learning rate (`_ctr_train`); fusion over the
    # representation's own fields (better on validation than over every field) at 1/100 of the learning rate
    # (at the full rate it fits worse and costs .003 AUC; docs/results/ctr.md); a backbone's own values are
    # in `backbone`
    model: CtrModelConfig = field(default_factory=lambda: CtrModelConfig(embedding_l2=3e-3, dnn_batch_norm=True,
                                                                         fusion_fields="representation",
                                                                         fusion_lr_scale=0.01))
    tokenizer: TokenizerFitConfig = field(default_factory=_ctr_tokenizer)
    train: TrainConfig = field(default_factory=_ctr_train)
    backbone: TunedBackbones = field(default_factory=TunedBackbones)

    def for_backbone(self, backbone: str) -> "CtrRunConfig":
        """This config with `backbone.<name>`'s settings in place of the shared ones."""
        own = self.backbone.of(backbone)
        train = replace(self.train, lr=own.lr) if own.lr is not None else self.train
        model = replace(self.model, **{k: v for k, v in (("embedding_l2", own.embedding_l2), ("dropout", own.dropout))
                                       if v is not None})
        return replace(self, train=train, model=model)


class CtrTask(Task):
    """Binary cross-entropy on (user, item fields) rows; evaluation scores every row of a split."""

    def __init__(self, samples: CtrSamples, item_fields: ItemFields, backbone: str, cfg: CtrModelConfig,
                 eval_batch_size: int = 16384):
        self.item_fields = torch.from_numpy(item_fields.values)
        # field 0 is the user; item field c is model field 1 + c
        fused = None if cfg.fusion_fields == "all" else [1 + c for c in representation_columns(item_fields)]
        self.model: CtrModel = build_ctr_model(backbone, [samples.num_users, *item_fields.vocab_sizes], cfg, fused)
        self.eval_batch_size = eval_batch_size
        self.data = SplitTensors({name: {"user": torch.from_numpy(s.users), "item": torch.from_numpy(s.items),
                                          "label": torch.from_numpy(s.labels)}
                                  for name in ("train", "valid", "test") for s in [samples.split(name)]})

    def num_train_examples(self) -> int:
        return self.data.rows("train")

    def lr_scale(self, parameter_name: str) -> float:
        return self.model.cfg.fusion_lr_scale if parameter_name.startswith("fusion.") else 1.0

    def batch(self, indices: torch.Tensor, device: torch.device, split: str = "train") -> dict[str, torch.Tensor]:
        rows = self.data.gather(split, indices, device)
        if self.item_fields.device != device:
            self.item_fields = self.item_fields.to(device)
        fields = torch.cat([rows["user"][:, None], self.item_fields[rows["item"]]], dim=1)
        return {"fields": fields, "label": rows["label"]}

    def loss(self, model, batch):
        log_loss = F.binary_cross_entropy_with_logits(model(batch["fields"]).float(), batch["label"])
        return log_loss + self.model.regularization(), {"logloss": log_loss.detach()}

    @torch.no_grad()
    def evaluate(self, model, split: str, accelerator: Accelerator) -> dict[str, float]:
        model.eval()
        logits, labels = [], []
        for batch in eval_batches(self, split, self.eval_batch_size, accelerator):
            with accelerator.autocast():
                out = model(batch["fields"]).float()
            logits.append(accelerator.gather_for_metrics(out))
            labels.append(accelerator.gather_for_metrics(batch["label"]))
        model.train()
        return auc_logloss(torch.cat(labels).cpu().numpy(), torch.cat(logits).cpu().numpy())


def item_representation(model: CtrModel, item_fields: ItemFields, skip: tuple[str, ...] = ("attr_",)) -> np.ndarray:
    """[items, fields * dim]: an item's learned ID and code embeddings side by side (attributes left out)."""
    columns = [i for i, name in enumerate(item_fields.names) if not name.startswith(skip)]
    with torch.no_grad():
        parts = [model.embedding.field_weights(1 + c)[torch.from_numpy(item_fields.values[:, c])] for c in columns]
    return torch.cat(parts, dim=1).float().cpu().numpy()


def cell_name(backbone: str, representation: str, scale: int, fusion: bool) -> str:
    return f"{backbone}_{representation}_x{scale}_{'fusion' if fusion else 'plain'}"


def _cell_dir(cfg: CtrRunConfig, cell: tuple[str, str, int, bool], seed: int) -> Path:
    return Path(cfg.output_dir) / cfg.name / cell_name(*cell) / f"seed_{seed}"


def fit_settings(cfg: CtrRunConfig, backbone: str, fusion: bool) -> dict[str, Any]:
    """What a fit of this backbone is trained with: the training settings and the model settings it reads
    (`cfg` already resolved for the backbone). A results row reports exactly this."""
    train = {k: v for k, v in to_dict(cfg.train).items() if k not in ("progress", "resume", "checkpoint_every")}
    return {"train": train, "model": BACKBONES[backbone].settings(replace(cfg.model, fusion=fusion))}


def _settings_fingerprint(cfg: CtrRunConfig, backbone: str, fusion: bool) -> str:
    """A saved fit is reused only by a run that would train the same model."""
    return hashlib.sha256(json.dumps(fit_settings(cfg, backbone, fusion), sort_keys=True).encode()).hexdigest()[:16]


def _saved_fit(run_dir: Path, fields: ItemFields, settings: str) -> dict[str, Any] | None:
    """A finished fit, reused only if it saw exactly these fields (same codes) and settings."""
    saved = run_dir / "result.json"
    if saved.exists():
        record = json.loads(saved.read_text())
        if record.get("fields_fingerprint") == fields.fingerprint() and record.get("settings_fingerprint") == settings:
            return record
    return None


def saved_cell(cfg: CtrRunConfig, fields: ItemFields, cell: tuple[str, str, int, bool], seed: int) -> dict[str, Any] | None:
    """The finished fit of a cell and seed under these settings, or None."""
    backbone, fusion = cell[0], cell[3]
    return _saved_fit(_cell_dir(cfg, cell, seed), fields, _settings_fingerprint(cfg.for_backbone(backbone), backbone, fusion))


def fit_cell(cfg: CtrRunConfig, samples: CtrSamples, fields: ItemFields, cell: tuple[str, str, int, bool], seed: int,
             accelerator: Accelerator) -> dict[str, Any]:
    """One cell and seed: trained, or read back from runs/<name>/<cell>/seed_<seed> when a fit with the same
    fields and settings finished there."""
    backbone, representation, scale, fusion = cell
    record = saved_cell(cfg, fields, cell, seed)
    if record is not None:
        return record
    cfg = cfg.for_backbone(backbone)
    run_dir, settings = _cell_dir(cfg, cell, seed), _settings_fingerprint(cfg, backbone, fusion)
    torch.manual_seed(seed)
    task = CtrTask(samples, fields, backbone, replace(cfg.model, fusion=fusion), cfg.eval_batch_size)
    model, fit = fit_and_test(task, cfg.train, seed, run_dir, accelerator, cell_name(*cell))
    rep = item_representation(model.cpu(), fields)
    epochs_run = len(fit["history"])
    record = {"seed": seed, "fields_fingerprint": fields.fingerprint(), "settings_fingerprint": settings,
              "test": fit["test"], "best_epoch": fit["best_epoch"], "best_valid_auc": fit["best_valid_auc"],
              "epochs_run": epochs_run, "epoch_seconds": fit["train_seconds"] / max(1, epochs_run),
              # per epoch: how well the fit fits its training rows against validation (fusion's effect on both)
              "curves": {k: [e.get(k) for e in fit["history"]] for k in ("train_logloss", "valid_auc", "valid_logloss")},
              "train_rows_per_second": fit["train_sequences_per_second"],
              "parameters": sum(p.numel() for p in model.parameters()),
              "effective_rank": effective_rank(rep), "spectrum": singular_spectrum(rep)[: cfg.spectrum_values].tolist()}
    if accelerator.is_main_process:
        write_atomic(run_dir / "result.json", json.dumps(record))
        (run_dir / BEST).unlink(missing_ok=True)  # the grid keeps numbers, not hundreds of checkpoints
    return record


def restore_fits(cfg: CtrRunConfig, results_file: str | Path) -> int:
    """Write each per-seed fit of a collected results file (its rows and its unfinished cells' seeds) back to
    its cell's folder unless a fit is saved there already; returns how many were written. Whether a restored
    fit counts is decided where every saved fit's is, by its fingerprints (`saved_cell`), so fits of other
    codes or settings are never taken."""
    result = json.loads(Path(results_file).read_text())
    if result.get("name") != cfg.name:
        raise ValueError(f"{results_file} holds grid {result.get('name')!r}, not {cfg.name!r}: restore a grid's own results")
    written = 0
    for row in result["rows"] + result.get("unfinished_cells", []):
        cell = (row["backbone"], row["representation"], row["scale"], row["fusion"])
        for fit in row["per_seed"]:
            saved = _cell_dir(cfg, cell, fit["seed"]) / "result.json"
            if not saved.exists():
                write_atomic(saved, json.dumps(fit))
                written += 1
    return written


def _summarize_cell(cell: tuple[str, str, int, bool], fields: ItemFields, per_seed: list[dict[str, Any]],
                    settings: dict[str, Any]) -> dict[str, Any]:
    backbone, representation, scale, fusion = cell
    row: dict[str, Any] = {"backbone": backbone, "representation": representation, "scale": scale, "fusion": fusion,
                           "fields": len(fields.names) + 1}
    for metric in ("auc", "logloss"):
        values = [r["test"][metric] for r in per_seed]
        row[metric], row[f"{metric}_std"] = float(np.mean(values)), float(np.std(values))
    for key in ("epoch_seconds", "train_rows_per_second", "effective_rank", "best_valid_auc"):
        row[key] = float(np.mean([r[key] for r in per_seed]))
    row["parameters"] = per_seed[0]["parameters"]
    row["settings"] = settings
    row["per_seed"] = per_seed
    return row


def merge_ctr_results(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Combine CTR grid files of one dataset (e.g. parts of the grid run side by side). A cell that
    appears twice keeps its row from the later file; rows keep the first file's order, new ones follow."""
    if len({json.dumps(r["samples"], sort_keys=True) for r in results}) > 1:
        raise ValueError("CTR results to merge were built from different samples; check data and samples.* settings")
    rows: dict[tuple, dict[str, Any]] = {}
    for res in results:
        for row in res["rows"]:
            rows[(row["backbone"], row["representation"], row["scale"], row["fusion"])] = row
    merged = dict(results[0])
    grid = {key: sorted({v for r in results for v in r["config"]["grid"][key]})
            for key in ("backbones", "representations", "scales", "fusion")}  # the union, for tools/analyze_ctr.py
    merged.update(rows=list(rows.values()), commands=[r["command"] for r in results],
                  wall_seconds=sum(r["wall_seconds"] for r in results),
                  config={**results[0]["config"], "grid": grid})
    # a cell some part misses stays missing unless another part finished it; its saved seeds travel with it
    finished = {cell_name(*key) for key in rows}
    missing = list(dict.fromkeys(c for r in results for c in r.get("missing_cells", []) if c not in finished))
    unfinished = [u for r in results for u in r.get("unfinished_cells", [])
                  if cell_name(u["backbone"], u["representation"], u["scale"], u["fusion"]) not in finished]
    for key in ("missing_cells", "unfinished_cells"):
        merged.pop(key, None)
    if missing:
        merged.update(missing_cells=missing, unfinished_cells=unfinished)
    return merged


def run_ctr(cfg: CtrRunConfig, command: str | None = None) -> dict[str, Any]:
    start = time.perf_counter()
    accelerator = make_accelerator(cfg.train)
    if cfg.grid.side_by_side:  # processes side by side in the same folder, each holding only the fit it trains
        if accelerator.num_processes > 1:
            raise ValueError("grid.side_by_side runs one process per fit: launch each with --num_processes 1")
        return _run_ctr(cfg, command, accelerator, start)
    with holding(accelerator, Path(cfg.output_dir) / cfg.name):
        return _run_ctr(cfg, command, accelerator, start)


@dataclass
class CtrInputs:
    """What every cell of a run shares: the samples, the attribute fields and the tokenizers' codes."""
    samples: CtrSamples
    num_items: int
    attributes: ItemFields
    codes: Any  # CodeSource or None when only ID representations are trained

    def fields(self, cfg: CtrRunConfig, representation: str, scale: int) -> ItemFields:
        return self.attributes + representation_fields(representation, scale, self.num_items, cfg.base_levels,
                                                       cfg.tokenizer.codebook_size, self.codes)


def prepare_inputs(cfg: CtrRunConfig, accelerator: Accelerator, representations: list[str]) -> CtrInputs:
    """Samples, attribute fields and (when a representation needs them) codes, each cached on disk; the
    tokenizers are cached under runs/<name>/tokenizers, one per (kind, size), shared by every model seed, and
    their codes also kept in `codes_dir` when one is set."""
    data, _ = load_data(cfg.data)
    samples = ctr_samples(data, cfg.samples)
    codes = None
    if any(r != "id" for r in representations):
        embeddings = item_embeddings(data.catalog, progress=accelerator.is_main_process)
        tokenizers = Path(cfg.output_dir) / cfg.name / "tokenizers"
        tok = seeded(cfg.tokenizer, cfg.tokenizer_seed)
        codes = tokenizer_codes(embeddings, tok, tokenizers, cfg.codes_dir or None)
    return CtrInputs(samples, data.num_items, attribute_fields(data.catalog, cfg.attribute_slots), codes)


def fit_unless_held(cfg: CtrRunConfig, samples: CtrSamples, fields: ItemFields, cell: tuple[str, str, int, bool],
                    seed: int, accelerator: Accelerator) -> dict[str, Any] | None:
    """`fit_cell` for processes side by side: the saved fit, or this process trains it holding a lock in its
    folder, or None when another live process holds it (a lock left by a dead one is taken over)."""
    record = saved_cell(cfg, fields, cell, seed)
    if record is not None:
        return record
    try:
        with run_lock(_cell_dir(cfg, cell, seed)):
            return fit_cell(cfg, samples, fields, cell, seed, accelerator)  # reads it back if finished meanwhile
    except RunFolderError:
        return None


def fill_side_by_side(cfg: CtrRunConfig, inputs: CtrInputs, accelerator: Accelerator) -> None:
    """Train, costliest first, every fit of the grid that is neither saved nor held by another process."""
    for cell in cfg.grid.by_cost():
        fields = inputs.fields(cfg, cell[1], cell[2])
        for seed in cfg.seeds:
            fit_unless_held(cfg, inputs.samples, fields, cell, seed, accelerator)


def _run_ctr(cfg: CtrRunConfig, command: str | None, accelerator: Accelerator, start: float) -> dict[str, Any]:
    inputs = prepare_inputs(cfg, accelerator, cfg.grid.representations)
    samples = inputs.samples
    log = (lambda m: print(f"[genrec] {m}", flush=True)) if accelerator.is_main_process else (lambda m: None)
    log("CTR samples: " + ", ".join(f"{s} {len(samples.split(s))} rows" for s in ("train", "valid", "test"))
        + f" ({cfg.samples.negatives} negative(s) per positive)")
    for results_file in cfg.grid.restore_from:
        if accelerator.is_main_process:
            written = restore_fits(cfg, results_file)
            log(f"restored {written} fit(s) from {results_file} (reused where their fields and settings match)")
        accelerator.wait_for_everyone()
    if cfg.grid.side_by_side and not cfg.grid.only_finished:
        fill_side_by_side(cfg, inputs, accelerator)
        log("no fit left that another process does not hold; the cells finished so far:")
        cfg = replace(cfg, grid=replace(cfg.grid, only_finished=True))
    rows, missing, unfinished = [], [], []
    for cell in cfg.grid.cells():
        backbone, representation, scale, fusion = cell
        fields = inputs.fields(cfg, representation, scale)
        saved = [saved_cell(cfg, fields, cell, seed) for seed in cfg.seeds] if cfg.grid.only_finished else []
        if any(fit is None for fit in saved):
            missing.append(cell_name(*cell))
            if any(saved):  # kept for `grid.restore_from`: no finished fit is lost with the runs folder
                unfinished.append({**dict(zip(("backbone", "representation", "scale", "fusion"), cell)),
                                   "per_seed": [fit for fit in saved if fit is not None]})
            continue
        per_seed = [fit_cell(cfg, samples, fields, cell, seed, accelerator) for seed in cfg.seeds]
        rows.append(_summarize_cell(cell, fields, per_seed, fit_settings(cfg.for_backbone(backbone), backbone, fusion)))
        r = rows[-1]
        log(f"{cell_name(*cell)}: test auc={r['auc']:.4f}±{r['auc_std']:.4f} logloss={r['logloss']:.4f} "
            f"({r['epoch_seconds']:.1f} s/epoch, {len(per_seed)} seed(s))")
    result = {
        **run_record(cfg, command, accelerator, start),
        "protocol": (f"per-user time split (last interaction test, second-to-last valid, rest train); "
                     f"{cfg.samples.negatives} uniform negative(s) per positive from items the user never touched "
                     f"(sample seed {cfg.samples.sample_seed}); AUC and logloss over all test rows"),
        "samples": {s: {"rows": len(samples.split(s)), "positives": int(samples.split(s).labels.sum())}
                    for s in ("train", "valid", "test")},
        "rows": rows,
    }
    if missing:
        result["missing_cells"] = missing
        result["unfinished_cells"] = unfinished
        log(f"{len(missing)} cell(s) have no finished fit for every seed and are left out: {', '.join(missing)}")
    if accelerator.is_main_process:
        save_config(cfg, Path(cfg.output_dir) / cfg.name / "run_config.yaml")
        write_result(result, cfg.results_dir, [])
    return result

"""The one training loop (accelerate): every recipe hands it a `Task`.

It owns optimisation, mixed precision, progress, validation-based early stopping, the best
checkpoint, and resumable state (`<output_dir>/last`, `genrec.training.checkpoint`: safetensors and JSON).
"""
from __future__ import annotations

import atexit
import hashlib
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch
from accelerate import Accelerator
from accelerate.data_loader import prepare_data_loader
from accelerate.utils import DistributedDataParallelKwargs, broadcast, set_seed
from torch import nn
from torch.utils.data import DataLoader

from genrec.config import check
from genrec.console import interactive, quiet_repeated_warnings
from genrec.errors import RunFolderError
from genrec.training.checkpoint import (DONE, load_checkpoint, load_weights, read_json, read_tensors, save_checkpoint,
                                        save_weights)
from genrec.files import save_atomic, staging, swap_in
from genrec.hardware import use_bf16

BEST = "best_model.safetensors"  # the best validation epoch's weights
# settings a resumed run must share with the run it continues (the others, e.g. epochs or patience, may change)
FIXED_ON_RESUME = ("batch_size", "lr", "weight_decay", "warmup_steps", "max_grad_norm", "mixed_precision", "seed")


@dataclass
class TrainConfig:
    epochs: int = 20
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 0
    max_grad_norm: float = 1.0
    eval_every: int = 1
    patience: int = 5  # evaluations without improvement before stopping; 0 = never stop early
    monitor: str = "ndcg@10"
    mixed_precision: str = "auto"  # auto (bf16 where the hardware has it natively: CUDA, AMX, AVX-512-bf16) | no | bf16 | fp16
    # torch.compile the task's loss (shapes dynamic: every batch holds a different number of targets); on the 2-core
    # CPU its warm-up costs about what its faster steps save in a 20-minute budget (docs/results/budget.md)
    compile: bool = False
    progress: bool = True
    resume: bool = True
    checkpoint_every: int = 1  # epochs between resumable `last/` states; 0 = never
    # budget of training time (training steps only; validation is not counted, so models that are slow to
    # evaluate get the same training time): stops after the step that crosses it (that epoch is validated and
    # checkpointed as usual), and the cosine schedule ends
    # there (its progress is the larger of steps/total steps and time/budget), so a cut run still anneals its LR
    max_minutes: float = 0.0
    seed: int = 42

    def validate(self) -> None:
        check(self.epochs >= 1 and self.batch_size >= 1 and self.eval_every >= 1,
              f"epochs, batch_size and eval_every must be at least 1 (got {self.epochs}, {self.batch_size}, {self.eval_every})")
        check(self.lr > 0, f"lr must be positive, got {self.lr}")
        check(self.patience >= 0 and self.checkpoint_every >= 0 and self.max_minutes >= 0,
              "patience, checkpoint_every and max_minutes must not be negative")
        check(self.mixed_precision in ("auto", "no", "bf16", "fp16"),
              f"mixed_precision must be auto, no, bf16 or fp16, got {self.mixed_precision!r}")


class Task:
    """What the loop trains. Subclasses give `model` and the four methods; the hooks are optional.

    `batch` turns a tensor of example indices into what `loss` takes; `evaluate` returns metrics
    (the loop monitors `TrainConfig.monitor` among them on the "valid" split)."""

    model: nn.Module
    find_unused_parameters: bool = False  # True when some parameters get no gradient in some epochs (DDP)

    def num_train_examples(self) -> int:
        raise NotImplementedError

    def batch(self, indices: torch.Tensor, device: torch.device) -> Any:
        raise NotImplementedError

    def loss(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def evaluate(self, model: nn.Module, split: str, accelerator: Accelerator) -> dict[str, float]:
        raise NotImplementedError

    def on_epoch_start(self, model: nn.Module, epoch: int, accelerator: Accelerator) -> None:
        """Before each epoch, also the first one after a resume."""

    def on_epoch_end(self, model: nn.Module, epoch: int, accelerator: Accelerator) -> dict[str, float]:
        """After each epoch's training steps, before validation; returns values to log."""
        return {}

    def before_test(self, model: nn.Module, accelerator: Accelerator) -> None:
        """After training, before the test split is scored: settings chosen on validation after training, and the
        cold-start protocol's new items, arrive here."""

    def lr_scale(self, parameter_name: str) -> float:
        """A part's learning rate as a fraction of `TrainConfig.lr` (the joint model's tokenizer)."""
        return 1.0

    def targets_in(self, indices: torch.Tensor) -> int:
        """Training targets in a batch of example indices (one per example unless an example holds several),
        for the throughput figure."""
        return len(indices)


class SplitTensors:
    """Each split's example tensors (equal length), moved to the training device on first use, so a
    batch is a gather on the device rather than a host-to-device copy per step."""

    def __init__(self, splits: dict[str, dict[str, torch.Tensor]]):
        self.splits = splits

    def rows(self, split: str) -> int:
        return len(next(iter(self.splits[split].values())))

    def gather(self, split: str, indices: torch.Tensor, device: torch.device) -> dict[str, torch.Tensor]:
        tensors = self.splits[split]
        if next(iter(tensors.values())).device != device:
            tensors = self.splits[split] = {k: v.to(device) for k, v in tensors.items()}
        indices = indices.to(device)
        return {k: v[indices] for k, v in tensors.items()}

    def select(self, split: str, rows: torch.Tensor) -> None:
        """Keep only these rows of a split (e.g. a fixed sample of validation users)."""
        self.splits[split] = {k: v[rows] for k, v in self.splits[split].items()}


class _LoopState:
    """Counters that must survive a resume; registered with accelerate's checkpointing. `elapsed` is
    the wall time of earlier segments of a resumed run, so a time budget spans them all; `seen` and
    `train_seconds` (training steps only, no validation) make the throughput figure span them too."""

    def __init__(self) -> None:
        self.epoch, self.best, self.best_epoch, self.bad_evals, self.history = 0, -math.inf, -1, 0, []
        self.elapsed, self.seen, self.train_seconds = 0.0, 0, 0.0
        self._segment_start = time.perf_counter()
        self._epoch_start: float | None = None  # set while an epoch's training steps run

    def seconds(self) -> float:
        """Wall time of the whole run so far, resumed segments included."""
        return self.elapsed + time.perf_counter() - self._segment_start

    def training_seconds(self) -> float:
        """Time spent in training steps so far, the current epoch included (what `max_minutes` budgets)."""
        running = time.perf_counter() - self._epoch_start if self._epoch_start is not None else 0.0
        return self.train_seconds + running

    def state_dict(self) -> dict[str, Any]:
        state = {k: v for k, v in vars(self).items() if not k.startswith("_")}
        state["elapsed"] = self.seconds()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        vars(self).update(state)
        self._segment_start = time.perf_counter()


def release_process_group() -> None:
    """Destroy the process group before the interpreter exits. Left to interpreter teardown, gloo's
    worker threads can be destroyed while joinable, which aborts the process (SIGABRT) after it finished."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def make_accelerator(cfg: TrainConfig, output_dir: str | Path | None = None, precision: str | None = None,
                     find_unused_parameters: bool = False) -> Accelerator:
    """`precision` overrides cfg.mixed_precision: every Accelerator of one process must agree on it.
    `find_unused_parameters` is for models that freeze a part per epoch (DDP otherwise waits for its gradients)."""
    quiet_repeated_warnings()
    precision = precision or cfg.mixed_precision
    if precision in ("auto", "bf16"):  # auto: bf16 where the hardware has it natively; forced: warned where emulated
        device = "cuda" if torch.cuda.is_available() else "cpu"
        precision = "bf16" if use_bf16(precision, device, "train.mixed_precision") else "no"
    handlers = [DistributedDataParallelKwargs(find_unused_parameters=True)] if find_unused_parameters else []
    from accelerate.state import AcceleratorState

    if AcceleratorState._shared_state and AcceleratorState().mixed_precision != precision:
        # accelerate keeps one precision per process; a later fit with another (a tokenizer in fp32, then a model in
        # bf16) starts a fresh state, keeping the process group
        AcceleratorState._reset_state()
    # without a GPU, accelerate only forms a gloo process group when told `cpu=True`; otherwise every
    # process of `torchrun --nproc_per_node 2` would train alone on all the data
    accelerator = Accelerator(mixed_precision=precision, project_dir=str(output_dir) if output_dir else None,
                              cpu=not torch.cuda.is_available(), kwargs_handlers=handlers)
    if accelerator.num_processes > 1:
        atexit.unregister(release_process_group)  # once per process, however many fits it runs
        atexit.register(release_process_group)
    if accelerator.device.type == "cpu" and os.environ.get("GENREC_NUM_THREADS"):
        torch.set_num_threads(int(os.environ["GENREC_NUM_THREADS"]))  # e.g. 1 per job when jobs share a machine
    elif accelerator.device.type == "cpu" and "OMP_NUM_THREADS" in os.environ:
        # `accelerate launch` pins CPU runs to one thread per process; share the cores instead
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // accelerator.num_processes))
    return accelerator


class _IndexDataset(torch.utils.data.Dataset):
    """Example indices 0..n-1. `__getitems__` turns a whole sampled batch into one tensor, so the
    loader does no per-example Python work; the task gathers its tensors with it."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i

    def __getitems__(self, indices: list[int]) -> torch.Tensor:
        return torch.tensor(indices, dtype=torch.long)


def _as_batch(batch: torch.Tensor) -> torch.Tensor:
    return batch


def index_loader(n: int, batch_size: int, shuffle: bool, seed: int) -> DataLoader:
    """Batches of example indices; the task turns them into tensors in one vectorised gather."""
    return DataLoader(_IndexDataset(n), batch_size=batch_size, shuffle=shuffle, collate_fn=_as_batch,
                      generator=torch.Generator().manual_seed(seed) if shuffle else None)


def eval_batches(task: Task, split: str, batch_size: int, accelerator: Accelerator) -> Iterator[Any]:
    """A split's batches (`task.batch(indices, device, split)`), sharded across processes; gather results
    with `accelerator.gather_for_metrics`. The loader is not registered, so it adds nothing to checkpoints."""
    loader = prepare_data_loader(index_loader(task.data.rows(split), batch_size, False, 0),
                                 accelerator.device, accelerator.num_processes, accelerator.process_index)
    for indices in loader:
        yield task.batch(indices, accelerator.device, split)


def model_signature(model: nn.Module) -> str:
    """Parameter and buffer names with their shapes: equal for the same architecture and size."""
    layout = sorted((name, tuple(t.shape)) for name, t in model.state_dict().items())
    return hashlib.sha256(repr(layout).encode()).hexdigest()[:16]


def lr_factor(step: int, total_steps: int, warmup_steps: int, budget_used: float = 0.0) -> float:
    """Linear warm-up, then cosine to zero. Progress is the larger of the step fraction and the share of
    the wall-clock budget used, so a run cut by `max_minutes` has annealed by the time it stops."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = max((step - warmup_steps) / max(1, total_steps - warmup_steps), budget_used)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


class Trainer:
    """Each Trainer owns a fresh Accelerator, so the objects one fit registers for checkpointing
    (model, optimizer, loop state) never leak into another fit's saved or resumed state."""

    def __init__(self, cfg: TrainConfig, output_dir: str | Path, precision: str | None = None):
        self.cfg = cfg
        self.output_dir = Path(output_dir)
        self.precision = precision

    def log(self, message: str) -> None:
        if self.accelerator.is_main_process:
            print(f"[genrec] {message}", flush=True)

    def _optimizer(self, model: nn.Module, task: Task) -> torch.optim.Optimizer:
        """AdamW without decay on biases and norms; `task.lr_scale` gives parts their own learning rate."""
        groups: dict[tuple[bool, float], list[nn.Parameter]] = {}
        for name, p in model.named_parameters():
            if p.requires_grad:
                decays = p.ndim >= 2 and "norm" not in name.lower()
                groups.setdefault((decays, task.lr_scale(name)), []).append(p)
        groups = [{"params": params, "weight_decay": self.cfg.weight_decay if decays else 0.0, "lr": self.cfg.lr * scale}
                  for (decays, scale), params in groups.items()]
        fused = torch.cuda.is_available() and self.accelerator.device.type == "cuda"
        return torch.optim.AdamW(groups, lr=self.cfg.lr, fused=fused or None)

    def _resume(self, last_dir: Path, signature: str, model, optimizer, scheduler, shuffler: torch.Generator,
                state: _LoopState) -> None:
        """Load `last/`, refusing one saved for another model (another mode or size under the same run name),
        one saved with settings this run cannot honour, and one in the old pickled format."""
        done = read_json(last_dir / DONE)
        if done.get("model") != signature:
            raise RunFolderError(f"{last_dir} holds the resumable state of a different model (another mode or config "
                                 f"trained under this run name); use a new `name`, or delete {last_dir} to start this "
                                 "run over")
        if not (last_dir / "loop.json").exists():
            raise RunFolderError(f"{last_dir} was saved by an older genrec (pickled loop state, which is never loaded); "
                                 f"delete {last_dir} to start this run over")
        changed = {k: (v, getattr(self.cfg, k)) for k, v in done.get("train", {}).items() if getattr(self.cfg, k) != v}
        if changed:
            listed = ", ".join(f"train.{k}: saved {old!r}, requested {new!r}" for k, (old, new) in changed.items())
            raise RunFolderError(f"{last_dir} was trained with other settings than this run asks for ({listed}); "
                                 "set them back to continue it, or train.resume=false to start it over")
        acc = self.accelerator
        if (last_dir.parent / BEST).exists():
            read_tensors(last_dir.parent / BEST)  # a damaged best file is named now, not after more training
        loop = load_checkpoint(last_dir, model=acc.unwrap_model(model), optimizer=optimizer, scheduler=scheduler,
                               shuffler=shuffler, rank=acc.process_index)
        state.load_state_dict(loop)

    def _stop_reason(self, state: _LoopState) -> str | None:
        if self.cfg.patience and state.bad_evals >= self.cfg.patience:
            return f"early stop: no {self.cfg.monitor} gain for {self.cfg.patience} evaluations"
        if self.cfg.max_minutes and state.training_seconds() > 60 * self.cfg.max_minutes:
            return f"time budget of {self.cfg.max_minutes} min reached in epoch {state.epoch}"
        return None

    def _out_of_time(self, state: _LoopState) -> bool:
        """Past the training-time budget? With several processes the main process's clock decides for all,
        so every process stops after the same step."""
        if not self.cfg.max_minutes:
            return False
        over = state.training_seconds() > 60 * self.cfg.max_minutes
        if self.accelerator.num_processes > 1:
            over = bool(broadcast(torch.tensor([float(over)], device=self.accelerator.device)).item())
        return over

    def _train_epoch(self, task: Task, model: nn.Module, optimizer, scheduler, loader, step_fn,
                     state: _LoopState) -> dict[str, Any]:
        """One pass over the training examples; returns the epoch's mean loss and loss parts."""
        from tqdm.auto import tqdm

        cfg, acc = self.cfg, self.accelerator
        model.train()
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(state.epoch)
        task.on_epoch_start(acc.unwrap_model(model), state.epoch, acc)
        bar = tqdm(loader, desc=f"epoch {state.epoch + 1}/{cfg.epochs}", leave=False,
                   disable=not (cfg.progress and acc.is_main_process and interactive()))
        running, batches = torch.zeros((), device=acc.device), 0
        parts: dict[str, torch.Tensor] = {}  # the task's per-batch logs (loss parts), summed on the device
        epoch_start = state._epoch_start = time.perf_counter()
        for indices in bar:
            batch = task.batch(indices, acc.device)
            with acc.autocast():
                loss, logs = step_fn(model, batch)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite training loss at epoch {state.epoch + 1}: {logs}")
            acc.backward(loss)
            if cfg.max_grad_norm:
                acc.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            running += loss.detach().float()  # summed on the device: no host sync per step
            for key, value in logs.items():
                parts[key] = parts.get(key, 0.0) + torch.as_tensor(value, device=acc.device).detach().float()
            batches += 1
            state.seen += task.targets_in(indices) * acc.num_processes
            if cfg.progress and batches % 50 == 0:
                bar.set_postfix(loss=f"{running.item() / batches:.4f}")
            if self._out_of_time(state):  # the learning rate is zero from here: the rest of the epoch is wasted
                break
        state.train_seconds += time.perf_counter() - epoch_start
        state._epoch_start = None
        state.epoch += 1
        record: dict[str, Any] = {"epoch": state.epoch, "train_seconds": state.train_seconds,
                                  "train_loss": running.item() / max(1, batches)}
        if batches < len(loader):
            record["steps"] = f"{batches}/{len(loader)}"  # cut by the time budget
        record.update({f"train_{key}": value.item() / max(1, batches) for key, value in parts.items()})
        return record

    def _validate(self, task: Task, model: nn.Module, state: _LoopState, best_path: Path) -> dict[str, float]:
        """Validation metrics; the best model so far is saved to `best_path`."""
        acc = self.accelerator
        metrics = task.evaluate(acc.unwrap_model(model), "valid", acc)
        score = metrics[self.cfg.monitor]
        if not math.isfinite(score):
            raise FloatingPointError(f"validation {self.cfg.monitor} is {score}")
        if score > state.best:
            state.best, state.best_epoch, state.bad_evals = score, state.epoch, 0
            if acc.is_main_process:
                save_atomic(lambda f: save_weights(acc.unwrap_model(model), f), best_path)
        else:
            state.bad_evals += 1
        return metrics

    def _checkpoint(self, state: _LoopState, last_dir: Path, signature: str, model, optimizer, scheduler,
                    shuffler: torch.Generator) -> None:
        """Save the resumable state into a staging folder and swap it in whole: a kill mid-save keeps the
        previous checkpoint."""
        acc = self.accelerator
        acc.wait_for_everyone()
        staged = last_dir.with_name(f".{last_dir.name}.staging")
        if acc.is_main_process:
            staging(last_dir)
        acc.wait_for_everyone()
        done = {"epoch": state.epoch, "model": signature, "train": {k: getattr(self.cfg, k) for k in FIXED_ON_RESUME}}
        save_checkpoint(staged, model=acc.unwrap_model(model) if acc.is_main_process else None, optimizer=optimizer,
                        scheduler=scheduler, loop_state=state.state_dict(), shuffler=shuffler, rank=acc.process_index,
                        done=done)
        acc.wait_for_everyone()
        if acc.is_main_process:
            swap_in(staged, last_dir)

    def fit(self, task: Task) -> dict[str, Any]:
        self.accelerator = make_accelerator(self.cfg, self.output_dir, self.precision, task.find_unused_parameters)
        cfg, acc = self.cfg, self.accelerator
        set_seed(cfg.seed)
        model = task.model
        optimizer = self._optimizer(model, task)
        loader = index_loader(task.num_train_examples(), cfg.batch_size, shuffle=True, seed=cfg.seed)
        shuffler = loader.generator  # the data order's generator: saved with every checkpoint
        total_steps = max(1, cfg.epochs * math.ceil(len(loader) / max(1, acc.num_processes)))
        state = _LoopState()
        start = time.perf_counter()

        def schedule(step: int) -> float:
            budget_used = state.training_seconds() / (60 * cfg.max_minutes) if cfg.max_minutes else 0.0
            return lr_factor(step, total_steps, cfg.warmup_steps, budget_used)

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        model, optimizer, loader, scheduler = acc.prepare(model, optimizer, loader, scheduler)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        last_dir, best_path = self.output_dir / "last", self.output_dir / BEST
        signature = model_signature(acc.unwrap_model(model))
        if cfg.resume and (last_dir / DONE).exists():
            self._resume(last_dir, signature, model, optimizer, scheduler, shuffler, state)
            self.log(f"resumed from {last_dir} after epoch {state.epoch} (best {cfg.monitor}={state.best:.4f})")
        step_fn = torch.compile(task.loss, dynamic=True) if cfg.compile else task.loss

        while state.epoch < cfg.epochs:
            stop = self._stop_reason(state)
            if stop:  # checked before an epoch, so a resumed run that had stopped stays stopped
                self.log(stop)
                break
            record = self._train_epoch(task, model, optimizer, scheduler, loader, step_fn, state)
            record.update(task.on_epoch_end(acc.unwrap_model(model), state.epoch, acc))
            if state.epoch % cfg.eval_every == 0 or state.epoch == cfg.epochs:
                metrics = self._validate(task, model, state, best_path)
                record.update({f"valid_{k}": v for k, v in metrics.items()})
                self.log(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items())
                         + f" ({state.seen / max(state.train_seconds, 1e-9):.0f} train targets/s)")
            state.history.append(record)
            if cfg.checkpoint_every and state.epoch % cfg.checkpoint_every == 0:
                self._checkpoint(state, last_dir, signature, model, optimizer, scheduler, shuffler)
        acc.wait_for_everyone()
        unwrapped = acc.unwrap_model(model)
        if best_path.exists():
            load_weights(unwrapped, best_path)
        return {
            "best_epoch": state.best_epoch,
            f"best_valid_{cfg.monitor}": state.best,
            "history": state.history,
            "fit_seconds": time.perf_counter() - start,
            "train_seconds": state.train_seconds,
            "train_sequences_per_second": state.seen / max(state.train_seconds, 1e-9),
            "model": unwrapped,
        }

"""The loop's resumable state as safetensors and JSON: nothing read back from a run folder is a pickle.

`last/` holds what the next epoch depends on, so a resumed run continues exactly as an uninterrupted one:
the model (`model.safetensors`), the optimizer's tensors and settings, the LR schedule's counters, the loop
counters (`loop.json`), and every random generator: torch's global one (dropout), numpy's and Python's,
and the data shuffler's (`rng_<rank>.safetensors` / `.json`, one per process). `done.json` is written
last; a checkpoint is staged and swapped in whole (`genrec.files.swap_in`). A damaged file is named in a
clear error with what to do, instead of a raw parser error.
"""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import nn

from genrec.errors import RunFolderError

DONE = "done.json"


def damaged(path: Path, err: Exception) -> RunFolderError:
    return RunFolderError(f"{path} is damaged or incomplete ({type(err).__name__}: {err}); delete {path.parent} to "
                          "start this run over (finished epochs are lost), or train.resume=false")


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise damaged(path, err) from err


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (OSError, SafetensorError) as err:
        raise damaged(path, err) from err


def save_weights(model: nn.Module, path: Path) -> None:
    """Model weights as safetensors (tied weights stored once)."""
    save_model(model, str(path))


def load_weights(model: nn.Module, path: Path) -> None:
    try:
        missing, unexpected = load_model(model, str(path), strict=False, device="cpu")
    except (OSError, SafetensorError) as err:
        raise damaged(path, err) from err
    shared = {name for names in _tied(model) for name in names}
    missing = [name for name in missing if name not in shared]
    if missing or unexpected:
        raise RunFolderError(f"{path} holds another model's weights (missing {missing[:3]}, unexpected "
                             f"{unexpected[:3]}); use a new `name`, or delete {path.parent} to start over")


def _tied(model: nn.Module) -> list[list[str]]:
    by_storage: dict[int, list[str]] = {}
    for name, tensor in model.state_dict(keep_vars=True).items():
        by_storage.setdefault(tensor.data_ptr(), []).append(name)
    return [names for names in by_storage.values() if len(names) > 1]


def _optimizer_parts(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{index}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _optimizer_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in [*tensors.items(), *meta["scalars"].items()]:
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(folder: Path, *, model: nn.Module | None, optimizer, scheduler, loop_state: dict[str, Any],
                    shuffler: torch.Generator, rank: int, done: dict[str, Any] | None) -> None:
    """Write one process's part of a checkpoint into `folder` (the staging folder). The main process
    (`model` given) writes the shared parts; every process writes its own random generators."""
    numpy_state = np.random.get_state()
    save_file({"torch": torch.get_rng_state(), "shuffler": shuffler.get_state(),
               **({f"cuda{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())} if torch.cuda.is_available() else {})},
              str(folder / f"rng_{rank}.safetensors"))
    (folder / f"rng_{rank}.json").write_text(json.dumps({
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
        "numpy": [numpy_state[0], numpy_state[1].tolist(), *numpy_state[2:]]}))
    if model is None:
        return
    save_weights(model, folder / "model.safetensors")
    tensors, meta = _optimizer_parts(optimizer)
    save_file(tensors, str(folder / "optimizer.safetensors"))
    (folder / "optimizer.json").write_text(json.dumps(meta))
    (folder / "scheduler.json").write_text(json.dumps({k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"}))
    (folder / "loop.json").write_text(json.dumps(loop_state))
    (folder / DONE).write_text(json.dumps(done))


def load_checkpoint(folder: Path, *, model: nn.Module, optimizer, scheduler, shuffler: torch.Generator,
                    rank: int) -> dict[str, Any]:
    """Restore everything `save_checkpoint` wrote; returns the loop state."""
    load_weights(model, folder / "model.safetensors")
    meta, tensors = read_json(folder / "optimizer.json"), read_tensors(folder / "optimizer.safetensors")
    try:
        optimizer.load_state_dict(_optimizer_state(tensors, meta))
    except (ValueError, KeyError, RuntimeError) as err:
        raise RunFolderError(f"{folder / 'optimizer.json'} was saved for other optimizer groups (a changed setting "
                             "that splits the parameters differently); use a new `name`, or train.resume=false") from err
    scheduler.load_state_dict({**scheduler.state_dict(), **read_json(folder / "scheduler.json")})
    rng = read_tensors(folder / f"rng_{rank}.safetensors")
    torch.set_rng_state(rng["torch"])
    shuffler.set_state(rng["shuffler"])
    if torch.cuda.is_available():
        torch.cuda.set_rng_state_all([rng[k] for k in sorted(k for k in rng if k.startswith("cuda"))])
    states = read_json(folder / f"rng_{rank}.json")
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, *rest = states["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))
    return read_json(folder / "loop.json")

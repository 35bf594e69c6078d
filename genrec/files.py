"""Files genrec writes are whole or absent (written under a temporary name, then renamed, so a kill
mid-save never leaves half a file), and a run folder has one writer at a time (a lock file)."""
from __future__ import annotations

import json
import os
import shutil
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from genrec.errors import RunFolderError

LOCK_NAME = ".genrec.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def save_folder(folder: str | Path, fill) -> Path:
    """`fill(staged_folder)`, then swap the complete folder in for `folder`."""
    staged = staging(folder)
    fill(staged)
    swap_in(staged, folder)
    return Path(folder)


@contextmanager
def run_lock(folder: str | Path) -> Iterator[Path]:
    """Hold `folder` for this process. A second run on the same folder stops at once, naming the holder;
    a lock left by a process that is gone (on this host) is stale and taken over."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / LOCK_NAME
    me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                holder = json.loads(lock.read_text())
            except (OSError, ValueError):
                holder = {}
            same_host = holder.get("host") == me["host"]
            if same_host and isinstance(holder.get("pid"), int) and not _alive(holder["pid"]):
                lock.unlink(missing_ok=True)  # stale: its process is gone
                continue
            raise RunFolderError(
                f"{folder} is in use by process {holder.get('pid', '?')} on {holder.get('host', '?')} "
                f"(since {holder.get('since', '?')}); wait for it, use another `name`, or, if that process is "
                f"gone, delete {lock}") from None
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        break
    try:
        yield folder
    finally:
        lock.unlink(missing_ok=True)


def write_atomic(path: str | Path, text: str) -> Path:
    """Write a text file whole or not at all."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def staging(folder: str | Path) -> Path:
    """An empty sibling of `folder` to save into (the same name for every process of a run)."""
    folder = Path(folder)
    tmp = folder.with_name(f".{folder.name}.staging")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def swap_in(staged: Path, folder: str | Path) -> None:
    """Make a complete `staged` folder the new `folder`; the old one is removed only afterwards, so a kill
    at any point leaves one whole version (a leftover `.<name>.old` is the previous one)."""
    folder = Path(folder)
    old = folder.with_name(f".{folder.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        os.replace(folder, old)
    os.replace(staged, folder)
    shutil.rmtree(old, ignore_errors=True)


def save_atomic(save, path: str | Path) -> Path:
    """`save(tmp_path)` then rename onto `path` (e.g. `lambda f: torch.save(state, f)`)."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")  # the suffix kept: np.save wants .npy
    save(tmp)
    os.replace(tmp, path)
    return path

"""Input problems are collected with their location, then either raised or (explicitly) dropped and counted."""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Literal

from genrec.errors import GenrecError

logger = logging.getLogger(__name__)

OnError = Literal["raise", "drop"]


class DataValidationError(GenrecError, ValueError):
    """Raised for bad input; the message names the file, line and offending id."""


@dataclass(frozen=True)
class Problem:
    kind: str
    file: str
    line: int | None
    detail: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.kind}: {self.detail}"


class ProblemLog:
    """Collects problems while a file is read. `finish()` raises or reports what was dropped."""

    max_listed = 10

    def __init__(self, on_error: OnError = "raise") -> None:
        if on_error not in ("raise", "drop"):
            raise ValueError(f"on_error must be 'raise' or 'drop', got {on_error!r}")
        self.on_error = on_error
        self.problems: list[Problem] = []

    def add(self, kind: str, file: str | Path, line: int | None, detail: str) -> None:
        self.problems.append(Problem(kind, str(file), line, detail))

    def counts(self) -> dict[str, int]:
        return dict(Counter(p.kind for p in self.problems))

    def summary(self) -> str:
        listed = "\n".join(f"  {p}" for p in self.problems[: self.max_listed])
        more = len(self.problems) - self.max_listed
        tail = f"\n  ... and {more} more" if more > 0 else ""
        return f"{len(self.problems)} problem(s) {self.counts()}:\n{listed}{tail}"

    def finish(self, what: str) -> dict[str, int]:
        if not self.problems:
            return {}
        if self.on_error == "raise":
            raise DataValidationError(
                f"invalid {what}: {self.summary()}\n"
                "Fix the input, or pass on_error='drop' (CLI: data.on_error=drop) to drop these rows with a report."
            )
        message = f"dropped rows from {what}: {self.summary()}"
        logger.warning(message)
        print(f"[genrec] WARNING: {message}")
        return self.counts()


def read_lines(path: str | Path, log: ProblemLog) -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, text) for non-blank lines; undecodable lines become problems."""
    path = Path(path)
    raw = _read_bytes(path)
    for number, chunk in enumerate(raw.split(b"\n"), start=1):
        try:
            text = chunk.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError as err:
            log.add("bad_encoding", path, number, f"not UTF-8 at byte {err.start} of the line ({chunk[err.start:err.start + 4]!r})")
            continue
        if text.strip():
            yield number, text


def read_text(path: str | Path) -> str:
    path = Path(path)
    raw = _read_bytes(path)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DataValidationError(f"{path}:{line}: bad_encoding: file is not UTF-8 (byte offset {err.start})") from None


def _read_bytes(path: Path) -> bytes:
    if not path.exists():
        raise FileNotFoundError(f"data file not found: {path}")
    if path.suffix == ".gz":
        import gzip

        return gzip.decompress(path.read_bytes())
    return path.read_bytes()

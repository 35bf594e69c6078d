"""Input problems are collected with their location, then either raised or (explicitly) dropped and counted."""
from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Literal

import numpy as np

from genrec.errors import GenrecError, MissingFileError

OnError = Literal["raise", "drop"]


class DataValidationError(GenrecError, ValueError):
    """Raised for bad input; the message names the file, line and offending id."""


@dataclass(frozen=True)
class Problem:
    kind: str
    file: str
    line: int | None
    detail: str
    unit: str = "line"  # text files: `file:line`; tables: `file: row N` (a quoted field may span lines)

    def __str__(self) -> str:
        where = self.file if self.line is None else (
            f"{self.file}:{self.line}" if self.unit == "line" else f"{self.file}: row {self.line}")
        return f"{where}: {self.kind}: {self.detail}"


class ProblemLog:
    """Collects problems while a file is read. `finish()` raises or reports what was dropped. Every problem is
    counted; the first `max_listed` are kept with their location for the message."""

    max_listed = 10

    def __init__(self, on_error: OnError = "raise") -> None:
        if on_error not in ("raise", "drop"):
            raise ValueError(f"on_error must be 'raise' or 'drop', got {on_error!r}")
        self.on_error = on_error
        self.problems: list[Problem] = []
        self._counts: Counter[str] = Counter()
        self.blank_lines: list[int] = []  # skipped, and said so: a blank line holds no row to lose

    def add(self, kind: str, file: str | Path, line: int | None, detail: str) -> None:
        self._counts[kind] += 1
        if len(self.problems) < self.max_listed:
            self.problems.append(Problem(kind, str(file), line, detail))

    def add_rows(self, kind: str, file: str, rows: np.ndarray, detail: Callable[[int], str]) -> None:
        """Problems found column-wise: `rows` are 0-based row positions, reported as 1-based `row N`;
        `detail(row)` is called only for the rows the message lists."""
        if not len(rows):
            return
        self._counts[kind] += len(rows)
        for row in rows[: max(0, self.max_listed - len(self.problems))]:
            self.problems.append(Problem(kind, file, int(row) + 1, detail(int(row)), unit="row"))

    def counts(self) -> dict[str, int]:
        return dict(self._counts)

    def summary(self) -> str:
        listed = "\n".join(f"  {p}" for p in self.problems)
        more = sum(self._counts.values()) - len(self.problems)
        tail = f"\n  ... and {more} more" if more > 0 else ""
        return f"{sum(self._counts.values())} problem(s) {self.counts()}:\n{listed}{tail}"

    def finish(self, what: str) -> dict[str, int]:
        if self.blank_lines:
            shown = ", ".join(map(str, self.blank_lines[:5])) + (" ..." if len(self.blank_lines) > 5 else "")
            print(f"[genrec] note: skipped {len(self.blank_lines)} blank line(s) in {what} (line {shown})", file=sys.stderr)
        if not self._counts:
            return {}
        if self.on_error == "raise":
            raise DataValidationError(
                f"invalid {what}: {self.summary()}\n"
                "Fix the input, or pass on_error='drop' (CLI: data.on_error=drop) to drop these rows with a report."
            )
        print(f"[genrec] WARNING: dropped rows from {what}: {self.summary()}", file=sys.stderr, flush=True)
        return self.counts()


def read_lines(path: str | Path, log: ProblemLog) -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, text) for non-blank lines; undecodable lines become problems."""
    path = Path(path)
    chunks = _read_bytes(path).split(b"\n")
    if chunks and not chunks[-1].strip():
        chunks.pop()  # the newline that ends the last line
    for number, chunk in enumerate(chunks, start=1):
        try:
            text = chunk.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError as err:
            log.add("bad_encoding", path, number, f"not UTF-8 at byte {err.start} of the line ({chunk[err.start:err.start + 4]!r})")
            continue
        if text.strip():
            yield number, text
        else:
            log.blank_lines.append(number)


def read_text(path: str | Path) -> str:
    path = Path(path)
    raw = _read_bytes(path)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DataValidationError(f"{path}:{line}: bad_encoding: file is not UTF-8 (byte offset {err.start})") from None


def _read_bytes(path: Path) -> bytes:
    """The file's bytes (gunzipped for .gz), without a UTF-8 byte-order mark (editors on Windows add one,
    and it would otherwise become part of the first user id)."""
    if not path.exists():
        raise MissingFileError(f"data file not found: {path}")
    raw = path.read_bytes()
    if path.suffix == ".gz":
        import gzip

        raw = gzip.decompress(raw)
    return raw.removeprefix(b"\xef\xbb\xbf")

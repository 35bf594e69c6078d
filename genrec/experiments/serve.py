"""Batch recommendations: a JSONL file of requests in, a JSONL file of recommendations out (`recipes/recommend.py
--input/--output`).

One request per line: `{"history": [item ids, oldest first]}` or `{"user": "a dataset user id"}` (that user's whole
history, from the run's dataset), with optional `"exclude": [item ids]`, `"only": [item ids]` and `"id"` (echoed back).
Requests are searched `batch_size` at a time, the rules inside the search (`GenerativeRecommender.recommend_many`).
A bad line (not JSON, an unknown item or user, an unknown key) gets one line on stderr naming its number, and the
others go on, unless `strict`.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, TextIO

from genrec.console import interactive
from genrec.errors import GenrecError
from genrec.models.recommender import GenerativeRecommender

KEYS = {"history", "user", "exclude", "only", "id"}


@dataclass
class Request:
    line: int
    history: list[str]
    user: str | None = None  # the dataset user whose history this is (the model's user token, if it has them)
    exclude: list[str] = field(default_factory=list)
    only: list[str] | None = None
    echo: dict[str, Any] = field(default_factory=dict)  # what the output line repeats of the request


class BadLine(GenrecError):
    pass


def parse(line: int, text: str, model: GenerativeRecommender, histories: dict[str, list[str]] | None) -> Request:
    """One input line as a request whose ids the model knows, or BadLine saying why not."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        raise BadLine(f"not JSON ({err.msg} at column {err.colno})") from None
    if not isinstance(obj, dict):
        raise BadLine("a request is a JSON object")
    unknown = sorted(set(obj) - KEYS)
    if unknown:
        raise BadLine(f"unknown key(s) {unknown}; a request has {sorted(KEYS)}")
    if ("history" in obj) == ("user" in obj):
        raise BadLine('give either "history" (item ids) or "user" (a dataset user id)')
    for key in ("history", "exclude", "only"):
        if key in obj and not (isinstance(obj[key], list) and all(isinstance(i, (str, int)) for i in obj[key])):
            raise BadLine(f'"{key}" must be a list of item ids')
    user = None
    if "user" in obj:
        user = str(obj["user"])
        if histories is None:
            raise BadLine('"user" needs a run folder (--run runs/<name>/seed_<s>) whose dataset holds the histories')
        if user not in histories:
            raise BadLine(f"user {user!r} is not in the run's dataset")
        history = histories[user]
    else:
        history = [str(i) for i in obj["history"]]
    if not history:
        raise BadLine("the history is empty")
    exclude = [str(i) for i in obj.get("exclude", [])]
    only = None if obj.get("only") is None else [str(i) for i in obj["only"]]
    for item in history + exclude + (only or []):
        model.item_index(item)  # UnknownIdError names it
    echo = {key: obj[key] for key in ("id", "user") if key in obj}
    return Request(line, history, user if model.user_ids else None, exclude, only, echo)


def read_requests(lines: TextIO, model: GenerativeRecommender, histories: dict[str, list[str]] | None,
                  errors: list[str], source: str, strict: bool = False) -> Iterator[Request]:
    """The good requests of a JSONL stream; each bad line's error goes to `errors` (and stderr), or, when `strict`,
    stops the run."""
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            yield parse(number, text, model, histories)
        except GenrecError as err:  # BadLine, or an id the model does not know
            message = f"{source} line {number}: {err}"
            if strict:
                raise GenrecError(message) from None
            errors.append(message)
            print(f"genrec: skipped {message}", file=sys.stderr)


def batches(requests: Iterator[Request], size: int) -> Iterator[list[Request]]:
    batch: list[Request] = []
    for request in requests:
        batch.append(request)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def serve(model: GenerativeRecommender, source: Path, output: Path, k: int = 10, beam: int = 20, batch_size: int = 256,
          exclude_history: bool = False, strict: bool = False,
          histories: dict[str, list[str]] | None = None) -> dict[str, int]:
    """Write one output line per good request, in input order: `{"line", ["id"], ["user"], "items": [{item_id, title,
    score}], "complete"}` (`complete` false when fewer than k items were allowed). Written to a temporary file and
    moved into place at the end, so a failed run leaves no half file. Returns counts of served and skipped lines."""
    from tqdm.auto import tqdm

    if k < 1:
        raise GenrecError(f"k must be at least 1, got {k}")
    errors: list[str] = []
    served = 0
    partial = output.with_name(output.name + ".partial")
    with open(source, encoding="utf-8") as lines, open(partial, "w", encoding="utf-8") as out, \
            tqdm(desc="recommend", unit=" users", disable=not interactive()) as bar:
        for batch in batches(read_requests(lines, model, histories, errors, source.name, strict), batch_size):
            found = {}
            # a model with user tokens reads them for a whole search: dataset users and bare histories search apart
            for part in ([r for r in batch if r.user is not None], [r for r in batch if r.user is None]):
                if part:
                    lists = model.recommend_many([r.history for r in part], k, beam, [r.user for r in part],
                                                 exclude=[r.exclude for r in part], only=[r.only for r in part],
                                                 exclude_history=exclude_history)
                    found.update({r.line: items for r, items in zip(part, lists)})
            for request in batch:
                items = found[request.line]
                out.write(json.dumps({"line": request.line, **request.echo, "items": items,
                                      "complete": len(items) == k}) + "\n")
            served += len(batch)
            bar.update(len(batch))
    partial.replace(output)
    return {"served": served, "skipped": len(errors)}

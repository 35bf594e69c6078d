"""What a run prints: progress bars only on a terminal, and each known, harmless warning once.

A log file (stdout/stderr redirected) gets one line per epoch: tqdm redraws and warnings repeated
every epoch would bury it."""
from __future__ import annotations

import logging
import sys


def interactive() -> bool:
    """Progress bars draw on a terminal only; redirected output gets the per-epoch lines alone."""
    return sys.stderr.isatty()


class _Once(logging.Filter):
    """Lets a message starting with one of `prefixes` through once per process."""

    def __init__(self, prefixes: tuple[str, ...]):
        super().__init__()
        self.prefixes, self.seen = prefixes, set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        prefix = next((p for p in self.prefixes if p in message), None)
        if prefix is None:
            return True
        if prefix in self.seen:
            return False
        self.seen.add(prefix)
        return True


_installed = False


def quiet_repeated_warnings() -> None:
    """accelerate warns at every checkpoint that the T5's tied embeddings are saved once ("Removed shared
    tensor"), which is expected; say it once. transformers' weight-loading bar is dropped off a terminal."""
    global _installed
    if _installed:
        return
    _installed = True
    logging.getLogger("accelerate.utils.other").addFilter(_Once(("Removed shared tensor",)))
    if not interactive():
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()

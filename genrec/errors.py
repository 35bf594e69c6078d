"""Errors that are the user's to fix (bad data, a bad setting, a busy or damaged run folder, an unknown
item at recommend time). Recipes print their message as one line and exit with status 2; anything else
is a bug and keeps its traceback. `GENREC_TRACEBACK=1` shows the traceback for these too."""
from __future__ import annotations

import os
import sys
from typing import Callable


class GenrecError(Exception):
    """A problem with the user's input or files; the message says what is wrong, where, and what to do."""


class RunFolderError(GenrecError, RuntimeError):
    """A run folder that is in use by another process, damaged, or holds a different run."""


class MissingFileError(GenrecError, FileNotFoundError):
    """A path that should hold a saved run, model or table does not."""


def cli(main: Callable[[], None]) -> None:
    """Run a recipe's `main`, turning a GenrecError into one clear line on stderr and exit status 2."""
    try:
        main()
    except GenrecError as err:
        if os.environ.get("GENREC_TRACEBACK"):
            raise
        print(f"genrec: error: {err}", file=sys.stderr)
        sys.exit(2)

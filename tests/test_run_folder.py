"""Run folders: one writer at a time, stale locks taken over, and files that are whole or absent."""
import json
import os
import socket
import subprocess
import sys

import pytest

from genrec.errors import RunFolderError
from genrec.files import LOCK_NAME, run_lock, save_atomic, staging, swap_in, write_atomic


def test_a_second_writer_is_refused_naming_the_first(tmp_path):
    with run_lock(tmp_path / "run"):
        holder = json.loads((tmp_path / "run" / LOCK_NAME).read_text())
        assert holder["pid"] == os.getpid()
        with pytest.raises(RunFolderError, match=rf"in use by process {os.getpid()} on {socket.gethostname()}"):
            with run_lock(tmp_path / "run"):
                pass
    assert not (tmp_path / "run" / LOCK_NAME).exists()  # released on exit
    with run_lock(tmp_path / "run"):  # and free again
        pass


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "since": "then"}))
    with run_lock(tmp_path):
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()


def test_atomic_writes_leave_the_old_version_until_the_new_one_is_whole(tmp_path):
    write_atomic(tmp_path / "r.json", '{"a": 1}')
    with pytest.raises(RuntimeError):
        save_atomic(lambda f: (f.write_text("half"), (_ for _ in ()).throw(RuntimeError("killed"))), tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text()) == {"a": 1}
    (tmp_path / "last").mkdir()
    (tmp_path / "last" / "epoch").write_text("1")
    staged = staging(tmp_path / "last")
    (staged / "epoch").write_text("2")
    swap_in(staged, tmp_path / "last")
    assert (tmp_path / "last" / "epoch").read_text() == "2" and not staged.exists()

"""The folder lock under contention: many processes started together on a folder with a stale lock, many times.

At most one process may hold the lock at any moment. Each holder proves it by creating a marker file with
O_EXCL while it holds the lock: a second concurrent holder would find the marker there. The old lock (judge
the file's pid dead, delete it, create a new one) let two processes in at once in 19 of 300 such trials.
"""
import json
import multiprocessing as mp
import os
import socket
import time
from pathlib import Path

import pytest

from cldiff.utils import FolderLocked, folder_lock

PROCESSES, TRIALS = 6, 200


def _stale(folder: Path) -> None:
    # a lock file left behind by a process that died (its pid does not exist)
    (folder / ".lock").write_text(json.dumps({"pid": 2 ** 22 + 4321, "host": socket.gethostname(), "since": 0}))


def _contender(root: str, barrier, results) -> None:
    for trial in range(TRIALS):
        folder = Path(root) / f"t{trial}"
        barrier.wait()                              # every contender tries at the same instant
        try:
            with folder_lock(folder, "contender"):
                try: fd = os.open(folder / "inside", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                except FileExistsError: results.put((trial, "overlap")); continue
                time.sleep(0.001)
                os.close(fd); os.unlink(folder / "inside")
                results.put((trial, "held"))
        except FolderLocked: results.put((trial, "refused"))
        except Exception as e: results.put((trial, f"error {type(e).__name__}: {e}"))
        finally: barrier.wait()                     # the trial is over for everyone


@pytest.mark.skipif(not hasattr(os, "fork"), reason="starts its contenders by fork")
def test_one_holder_at_a_time(tmp_path):
    ctx = mp.get_context("fork")
    barrier, results = ctx.Barrier(PROCESSES + 1, timeout=30), ctx.Queue()
    procs = [ctx.Process(target=_contender, args=(str(tmp_path), barrier, results)) for _ in range(PROCESSES)]
    for p in procs: p.start()
    try:
        for trial in range(TRIALS):
            folder = tmp_path / f"t{trial}"; folder.mkdir()
            if trial % 2 == 0: _stale(folder)      # half the trials race to take over a stale lock
            barrier.wait(); barrier.wait()
            assert not (folder / ".lock").exists(), f"trial {trial}: the lock was not released"
    finally:
        for p in procs: p.join(30)
    outcomes = [results.get(timeout=5) for _ in range(PROCESSES * TRIALS)]
    by_trial = {t: [o for u, o in outcomes if u == t] for t in range(TRIALS)}
    overlaps = [t for t, got in by_trial.items() if "overlap" in got]
    assert not overlaps, f"two processes held the lock at once in {len(overlaps)} of {TRIALS} trials"
    assert not [o for _, o in outcomes if o.startswith("error")], outcomes
    assert all("held" in got for got in by_trial.values())
    assert sum(o == "refused" for _, o in outcomes) > TRIALS    # real contention happened


def test_lock_released_when_holder_is_killed(tmp_path):
    # a holder killed with SIGKILL leaves .lock behind, yet never blocks the next process
    ctx = mp.get_context("fork")
    ready = ctx.Event()
    def hold():
        with folder_lock(tmp_path, "cldiff run"):
            ready.set(); time.sleep(60)
    p = ctx.Process(target=hold); p.start()
    assert ready.wait(10)
    with pytest.raises(FolderLocked, match="in use by cldiff run"):
        with folder_lock(tmp_path, "cldiff evaluate"): pass
    p.kill(); p.join()
    assert (tmp_path / ".lock").exists()
    with folder_lock(tmp_path, "cldiff evaluate"): pass

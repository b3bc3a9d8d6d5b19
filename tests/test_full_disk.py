"""A real full disk and a real read-only file system under `cldiff run`: one-line errors, nothing finished lost.

The run folder lives on a small tmpfs mounted for the test (root only; skipped elsewhere): 4 MB holds task 0
of a `--preset test` run (about 2.6 MB) but not task 1. Then the same tmpfs is grown and the run resumed,
then made read-only.
"""
import os
import subprocess
import sys

import pytest

from cldiff.store import finished_tasks, load_checkpoint

RUN = [sys.executable, "-c", "import sys; from cldiff.cli import main; sys.exit(main(sys.argv[1:]))"]


def cldiff(*args, cwd=None):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([*RUN, *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd, timeout=600)


@pytest.fixture
def small_disk(tmp_path):
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if os.geteuid() != 0: pytest.skip("mounting a tmpfs needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0: pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try: yield mnt
    finally: subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def one_line_error(result):
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = [l for l in result.stderr.splitlines() if l.startswith("cldiff ")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_full_disk_then_read_only(small_disk, tmp_path):
    run_dir = small_disk / "run"
    args = ["run", "--preset", "test", "--strategy", "gd", "--tasks", "2", "--out", run_dir, "--no-progress"]

    # the disk fills while task 1 is saved: one line that says why, task 0 intact, no half-written folder left
    line = one_line_error(cldiff(*args))
    assert "No space left on device" in line and "nothing finished was lost" in line, line
    assert finished_tasks(run_dir) == 1
    load_checkpoint(run_dir, 0)                       # verified against its stored hash, finite
    assert not [p.name for p in run_dir.iterdir() if ".tmp-" in p.name]

    # more space: the same command finishes the run from task 1
    subprocess.run(["mount", "-o", "remount,size=32m", str(small_disk)], check=True)
    r = cldiff(*args)
    assert r.returncode == 0, r.stderr
    assert finished_tasks(run_dir) == 2

    # a read-only file system: a new run and a resumed one are refused before anything is attempted ...
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    line = one_line_error(cldiff("run", "--preset", "test", "--tasks", "2", "--out", small_disk / "other", "--no-progress"))
    assert "read-only" in line, line
    line = one_line_error(cldiff(*args))
    assert "read-only" in line, line
    # ... while reading a finished run still works
    r = cldiff("report", run_dir, "--out", tmp_path / "report")
    assert r.returncode == 0, r.stderr
    r = cldiff("sample", run_dir, "--steps", "2", "--n", "4", "--out", tmp_path / "grid.png")
    assert r.returncode == 0, r.stderr
    assert finished_tasks(run_dir) == 2

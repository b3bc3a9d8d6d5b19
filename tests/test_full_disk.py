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


def _fill(mnt, leave: int = 0) -> None:
    "Fill the file system at `mnt` so that about `leave` bytes stay free (0: completely full)."
    st = os.statvfs(mnt)
    free = st.f_bavail * st.f_frsize
    with open(mnt / "filler", "wb", buffering=0) as f:
        try:
            f.write(bytes(max(0, free - leave)))
            while leave == 0: f.write(bytes(4096))
        except OSError: pass


def _inproc(capsys, *args):
    from cldiff.cli import main
    capsys.readouterr()
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, err


def _one_line(rc, err):
    assert rc == 2 and "Traceback" not in err, err
    lines = [l for l in err.splitlines() if l.startswith("cldiff ")]
    assert len(lines) == 1, err
    return lines[0]


def test_full_disk_at_the_lock_the_samples_and_the_report(small_disk, tmp_path, capsys):
    import torch
    from cldiff.schedules import paper_schedule
    from cldiff.store import save_model, save_task, task_dir
    from cldiff.unet import make_unet
    from cldiff.utils import CldiffError
    run_dir = tmp_path / "run"                                  # a finished 1-task run on a roomy disk (2.6 MB)
    rc, err = _inproc(capsys, "run", "--preset", "test", "--tasks", "1", "--out", run_dir, "--no-progress")
    assert rc == 0, err

    # task folder: room for the model and the grid, not for samples.pt (torch reports that as a RuntimeError)
    model = make_unet("tiny", seed=0)
    probe = save_model(model, small_disk / "probe", paper_schedule())
    model_bytes = sum(p.stat().st_size for p in probe.rglob("*") if p.is_file())
    subprocess.run(["rm", "-rf", str(probe)], check=True)
    _fill(small_disk, leave=model_bytes + 256 * 1024)
    with pytest.raises(CldiffError, match="nothing finished was lost") as e:
        save_task(small_disk / "r", 0, model, paper_schedule(), torch.zeros(4096, 1, 16, 16), {"entry": {"task": 0}})
    assert isinstance(e.value.__cause__.__cause__, RuntimeError)   # it was torch.save of samples.pt that failed
    assert not task_dir(small_disk / "r", 0).exists() and not [p for p in (small_disk / "r").iterdir()]
    (small_disk / "filler").unlink()

    # a completely full disk: `report --out` there, and the lock of a run there
    subprocess.run(["cp", "-a", str(run_dir), str(small_disk / "run")], check=True)
    _fill(small_disk)
    line = _one_line(*_inproc(capsys, "report", small_disk / "run", "--out", small_disk / "report"))
    assert "No space left on device" in line, line
    line = _one_line(*_inproc(capsys, "run", "--preset", "test", "--tasks", "1", "--out", small_disk / "run", "--no-progress"))
    assert "No space left on device" in line and ".lock" in line, line
    assert not (small_disk / "run" / ".lock").exists()          # no empty lock left behind


def test_read_only_run_and_model(small_disk, tmp_path, capsys):
    from cldiff.store import save_model
    from cldiff.unet import make_unet
    from cldiff.utils import CldiffError
    rc, err = _inproc(capsys, "run", "--preset", "test", "--tasks", "1", "--out", small_disk / "run", "--no-progress")
    assert rc == 0, err
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    # evaluate writes into the run: refused at the lock, with what to do (not EROFS's traceback)
    line = _one_line(*_inproc(capsys, "evaluate", small_disk / "run", "--eval-samples", "4"))
    assert "cannot lock" in line and "read-only" in line.lower() and "copy it to a writable place" in line, line
    # save_model onto a read-only place: the file system's reason, not the clean-up's failure to delete
    with pytest.raises(CldiffError, match="Read-only file system"):
        save_model(make_unet("tiny", seed=0), small_disk / "model")

"""`cldiff compare --jobs 2` on real data at test size: runs side by side in child processes, skipped when finished,
a failing run that does not stop the others and is named at the end, and an interrupt that leaves every run resumable."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from cldiff.runner import resume_config
from cldiff.store import finished_tasks

ENTRY = [sys.executable, "-m", "cldiff.cli"]
TINY = ["--preset", "test", "--tasks", "2", "--no-progress"]


def _compare(out, *args, timeout=600):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([*ENTRY, "compare", *TINY, "--out", str(out), *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def _state_times(out):
    return {p: p.stat().st_mtime_ns for p in out.glob("*/task_*/state.json")}


def test_compare_jobs_runs_side_by_side_skips_finished_and_survives_a_failure(tmp_path):
    out = tmp_path / "cmp"
    (out / "gr_s1").mkdir(parents=True)
    (out / "gr_s1" / "notes.txt").write_text("not a run")    # a folder no run may write into: that run fails
    r = _compare(out, "--strategies", "finetune", "gd", "gr", "--seeds", "1", "--jobs", "2")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "3 runs: 0 already finished, 3 to train, up to 2 at a time" in r.stdout, r.stdout
    assert finished_tasks(out / "finetune_s1") == 2 and finished_tasks(out / "gd_s1") == 2   # the failure stopped neither
    assert "1 of 3 runs failed" in r.stderr and "gr_s1: exit 2:" in r.stderr, r.stderr
    assert "is not empty and is not a cldiff run folder" in r.stderr and str(out / "gr_s1.log") in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    table = (out / "report" / "report.md").read_text()
    assert "| finetune | 1 | 2 |" in table and "| gd | 1 | 2 |" in table and "| gr |" not in table
    log = (out / "gd_s1.log").read_text()
    assert "done: 2 tasks" in log and "OMP" not in log and "(1 CPU threads)" in log, log    # OMP_NUM_THREADS=1 split: 1 each
    assert not list(out.glob("*/.lock"))

    # the folder made usable again: the rerun trains only gr_s1, skipping the finished runs without starting them
    (out / "gr_s1" / "notes.txt").unlink()
    before = _state_times(out)
    r = _compare(out, "--strategies", "finetune", "gd", "gr", "--seeds", "1", "--jobs", "2")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "3 runs: 2 already finished, 1 to train" in r.stdout and "started gr_s1" in r.stdout, r.stdout
    assert "started finetune_s1" not in r.stdout and "started gd_s1" not in r.stdout
    assert finished_tasks(out / "gr_s1") == 2
    assert {p: t for p, t in _state_times(out).items() if p in before} == before   # nothing retrained
    assert "| gr | 1 | 2 |" in (out / "report" / "report.md").read_text()

    # everything finished: no process is started, only the report is written again
    start = time.perf_counter()
    r = _compare(out, "--strategies", "finetune", "gd", "gr", "--seeds", "1", "--jobs", "2")
    assert r.returncode == 0 and "3 runs: 3 already finished, 0 to train" in r.stdout and "started" not in r.stdout, r.stdout
    print(f"third call, all finished: {time.perf_counter() - start:.1f} s")
    r = _compare(out, "--strategies", "finetune", "--seeds", "1", "--jobs", "0")
    assert r.returncode == 2 and "--jobs must be at least 1" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_sigterm_stops_every_child_and_the_runs_resume(tmp_path):
    "SIGTERM to `compare --jobs 2` while both runs train: every child ends, no lock is left, and the rerun resumes both."
    out = tmp_path / "cmp"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = subprocess.Popen([*ENTRY, "compare", *TINY, "--out", str(out), "--strategies", "finetune", "gd", "--seeds", "1",
                          "--jobs", "2", "--iters-per-task", "100000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=env)
    deadline = time.monotonic() + 300
    locks = [out / "finetune_s1" / ".lock", out / "gd_s1" / ".lock"]
    while not all(lk.exists() for lk in locks) and p.poll() is None and time.monotonic() < deadline: time.sleep(0.2)
    assert p.poll() is None and all(lk.exists() for lk in locks), "both runs should be training"
    pids = [json.loads(lk.read_text())["pid"] for lk in locks]
    time.sleep(1.0)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=180)
    assert p.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err and "stopped by SIGTERM" in err and len(err.strip().splitlines()) == 1, err
    for name in ("finetune_s1", "gd_s1"):
        assert "stopped by SIGTERM" in (out / f"{name}.log").read_text()   # each child ended through its own handler
        assert not (out / name / ".lock").exists() and not [q for q in (out / name).iterdir() if ".tmp-" in q.name]
        assert resume_config(out / name).iters_per_task == 100000    # the folder resumes with its own settings
    for pid in pids:                       # the children are gone, not left running in their own sessions
        with pytest.raises(ProcessLookupError): os.kill(pid, 0)

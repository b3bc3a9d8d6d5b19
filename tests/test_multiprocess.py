"""One run on two processes through Hugging Face Accelerate, on the CPU (gloo), at test size on real data: it exits 0,
writes one consistent folder once (only the main process writes), every entry records 2 processes, and the folder
continues with one process."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

pytest.importorskip("accelerate", reason="one run on several processes needs accelerate (pip install 'cldiff[multi]')")

from cldiff.store import finished_tasks, load_checkpoint

# `--multi_gpu` is accelerate's torchrun launcher; on a machine without a GPU the processes run on the CPU (gloo)
# (accelerate's `--cpu` alone starts one process, it takes an MPI launcher for more)
LAUNCH = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
          "--mixed_precision", "no", "--dynamo_backend", "no"]
RUN = ["-m", "cldiff.cli", "run", "--preset", "test", "--tasks", "2", "--strategy", "gd", "--no-progress"]


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("CUDA_VISIBLE_DEVICES", None)
    return env


def test_two_processes_write_one_folder_that_one_process_continues(tmp_path):
    out = tmp_path / "run"
    r = subprocess.run([*LAUNCH, *RUN, "--out", str(out)], capture_output=True, text=True, env=_env(), timeout=900,
                       cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert r.stdout.count("done: 2 tasks") == 1, r.stdout        # one process reports, the one that wrote
    assert finished_tasks(out) == 2
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "metrics.json", "task_0", "task_1"]   # no lock, no temporaries
    metrics = json.loads((out / "metrics.json").read_text())
    assert [t["task"] for t in metrics["tasks"]] == [0, 1]
    assert [t["processes"] for t in metrics["tasks"]] == [2, 2]
    assert all(t["iters"] == 3 for t in metrics["tasks"])        # the test preset's 3 iterations, not 3 per process
    config = json.loads((out / "config.json").read_text())
    assert config["batch_size"] == 8                             # the global batch is recorded, not a process's share
    for k in range(2): load_checkpoint(out, k, "cpu")             # verified against the recorded hash, finite

    # the folder written by 2 processes continues with 1: task 1 trained again by a plain `cldiff run --out`
    shutil.rmtree(out / "task_1")
    r = subprocess.run([sys.executable, "-m", "cldiff.cli", "run", "--out", str(out), "--no-progress"], capture_output=True,
                       text=True, env=_env(), timeout=600)
    assert r.returncode == 0, r.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert [t["processes"] for t in metrics["tasks"]] == [2, 1]


def _rank_pid(rank: int, marker: str):
    "The pid of the launched process with RANK=`rank` whose command line holds `marker` (Linux: read from /proc)."
    for d in os.listdir("/proc"):
        if not d.isdigit(): continue
        try:
            cmd = open(f"/proc/{d}/cmdline", "rb").read().split(b"\0")
            env = open(f"/proc/{d}/environ", "rb").read().split(b"\0")
        except OSError: continue
        if marker.encode() in cmd and f"RANK={rank}".encode() in env and b"cldiff.cli" in cmd: return int(d)
    return None


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="finds the second process through /proc (Linux)")
def test_a_failing_process_ends_the_run_and_loses_no_finished_task(tmp_path):
    "The second process killed during task 1: the launcher ends the run (exit != 0), task 0 is kept, no lock is left."
    out = tmp_path / "run"
    p = subprocess.Popen([*LAUNCH, *RUN[:5], "--tasks", "5", "--strategy", "finetune", "--iters-per-task", "30",
                          "--no-progress", "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         env=_env(), cwd=tmp_path)
    deadline = time.monotonic() + 600
    while finished_tasks(out) == 0 and p.poll() is None and time.monotonic() < deadline: time.sleep(0.2)
    pid = _rank_pid(1, str(out))
    assert p.poll() is None and pid is not None, "the run should be in task 1 with both processes"
    os.kill(pid, signal.SIGTERM)
    log, _ = p.communicate(timeout=300)
    assert p.returncode != 0, log[-2000:]
    assert "cldiff run: stopped by SIGTERM; finished tasks are kept" in log, log[-3000:]   # the process's one line
    assert 1 <= finished_tasks(out) < 5 and not (out / ".lock").exists()
    assert not [q.name for q in out.iterdir() if ".tmp-" in q.name]
    load_checkpoint(out, 0, "cpu")                               # the finished task is intact
    metrics = json.loads((out / "metrics.json").read_text())
    assert [t["processes"] for t in metrics["tasks"]] == [2] * finished_tasks(out)

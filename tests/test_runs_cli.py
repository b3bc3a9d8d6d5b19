"""The runner and the command line on real data at test size: the frozen teacher, the run's device on resume, and
signals that end a run with one line and release its lock.

Each test here reproduces a defect of issue 22 and fails if it comes back (the teacher test was checked by
replacing `frozen_copy(model)` with `model` in `runner.run`: it fails then).
"""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import cldiff.runner as runner
from cldiff.data import fashion_mnist_tasks
from cldiff.distillation import GenerativeDistillation, teacher_targets
from cldiff.registry import STRATEGIES, register_strategy
from cldiff.runner import run, run_config
from cldiff.store import finished_tasks, load_checkpoint

ENTRY = [sys.executable, "-c", "import sys; from cldiff.cli import main; sys.exit(main(sys.argv[1:]))"]


@pytest.fixture(scope="module")
def stream():
    return fashion_mnist_tasks(n_tasks=2, image_size=16)   # the test preset's image size, two tasks


@pytest.fixture
def teacher_probe():
    "GD that, at every replay batch, compares the teacher with the run's saved checkpoint of the previous task."
    seen = []

    @register_strategy
    class TeacherProbe(GenerativeDistillation):
        "GD that checks its teacher against the previous task's checkpoint."
        name = "teacher_probe"
        run_dir = None
        _checkpoints = {}

        def previous(self, k):
            if k not in self._checkpoints: self._checkpoints[k] = load_checkpoint(self.run_dir, k - 1, "cpu")[0]
            return self._checkpoints[k]

        def make_replay(self, teacher, total, per_batch, schedule, like, generator=None):
            batches = super().make_replay(teacher, total, per_batch, schedule, like, generator)
            k = self.current_task
            saved = self.previous(k)
            weights = max((p - q).abs().max().item() for p, q in zip(teacher.state_dict().values(), saved.state_dict().values()))
            # the distillation targets of this batch, made again by the saved previous model
            targets = max((b.target - teacher_targets(saved, b.x_t, b.t)).abs().max().item() for b in batches)
            seen.append({"task": k, "weights": weights, "targets": targets,
                         "trainable": any(p.requires_grad for p in teacher.parameters())})
            return batches

        def replay_batch(self, current, teacher, schedule, task_index, generator=None):
            self.current_task = task_index
            return super().replay_batch(current, teacher, schedule, task_index, generator)

    try: yield TeacherProbe, seen
    finally: del STRATEGIES["teacher_probe"]


@pytest.mark.parametrize("ema_decay", [0.0, 0.5])
def test_teacher_is_the_frozen_previous_model(tmp_path, stream, teacher_probe, ema_decay):
    "At every replay batch of task 1 the teacher equals the saved model of task 0, and so do the GD targets it gives."
    probe, seen = teacher_probe
    probe.run_dir, probe._checkpoints = tmp_path / "run", {}
    config = run_config("test", "teacher_probe", n_tasks=2, iters_per_task=4, ema_decay=ema_decay)
    run(config, tmp_path / "run", stream=stream, progress=False, device="cpu", precision="fp32")
    assert finished_tasks(tmp_path / "run") == 2
    assert [s["task"] for s in seen] == [1] * 4          # one replay batch per iteration of the second task
    assert all(s["weights"] == 0 for s in seen), seen     # a live student would move after the first step
    assert all(s["targets"] == 0 for s in seen), seen
    assert not any(s["trainable"] for s in seen), seen


def test_resume_loads_onto_the_runs_device(tmp_path, stream, monkeypatch):
    "On resume the last checkpoint is loaded straight onto the run's device, not onto the default one first."
    config = run_config("test", "gd", n_tasks=2)
    killed = type("Killed", (Exception,), {})
    def stop_in_task_1(k, i, parts):
        if k == 1: raise killed()
    with pytest.raises(killed): run(config, tmp_path / "run", stream=stream, progress=False, device="cpu", on_step=stop_in_task_1)
    devices = []
    real = runner.load_checkpoint
    monkeypatch.setattr(runner, "load_checkpoint", lambda out, k, device=None: devices.append(device) or real(out, k, device))
    run(config, tmp_path / "run", stream=stream, progress=False, device="cpu")
    assert finished_tasks(tmp_path / "run") == 2
    assert devices and all(torch.device(d) == torch.device("cpu") for d in devices), devices


def _start(args, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    # started as from a shell: Ctrl-C at its default, whatever this test process (a pytest worker) has done with it;
    # an ignored SIGINT is inherited, and Python then never raises KeyboardInterrupt
    return subprocess.Popen([*ENTRY, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=tmp_path, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def test_signals_end_a_run_with_one_line_and_release_the_lock(tmp_path):
    "SIGTERM and SIGHUP (two runs at once, to share the start-up time): one line, exit 128 + signal, no lock left."
    sigs = (signal.SIGTERM, signal.SIGHUP)
    outs = {sig: tmp_path / sig.name for sig in sigs}
    procs = {sig: _start(["run", "--preset", "test", "--strategy", "gd", "--tasks", "2", "--iters-per-task", "100000",
                          "--out", outs[sig], "--no-progress"], tmp_path) for sig in sigs}
    deadline = time.monotonic() + 300
    for sig, p in procs.items():
        while not (outs[sig] / ".lock").exists() and p.poll() is None and time.monotonic() < deadline: time.sleep(0.2)
    time.sleep(1.0)                                       # inside the training of task 0
    for sig, p in procs.items(): p.send_signal(sig)
    for sig, p in procs.items():
        _, err = p.communicate(timeout=120)
        assert p.returncode == 128 + sig, err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        assert f"stopped by {sig.name}" in err, err
        assert not (outs[sig] / ".lock").exists()
        assert not [q.name for q in outs[sig].iterdir() if ".tmp-" in q.name]


def test_ctrl_c_while_starting_is_one_line(tmp_path):
    "Ctrl-C while the library (torch, diffusers) is still loading: one line and exit status 130, no traceback."
    p = _start(["run", "--preset", "test", "--out", tmp_path / "run", "--no-progress"], tmp_path)
    # a signal that arrives between fork and exec would be taken by the parent's inherited handler and lost with the
    # exec: wait until the child is Python running cldiff, then give it half a second of loading
    cmdline, deadline = Path(f"/proc/{p.pid}/cmdline"), time.monotonic() + 60
    while cmdline.exists() and b"cldiff.cli" not in cmdline.read_bytes() and time.monotonic() < deadline: time.sleep(0.01)
    time.sleep(0.5)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and "interrupted" in err, err


def test_fp16_trains_with_a_loss_scaler_and_resumes_in_fp32(tmp_path, stream):
    "`--precision fp16` (for GPUs without fast bf16, a T4) on the CPU: float16 autocast, a scaled loss, finite losses; a speed setting, so the run resumes in fp32."
    cfg = run_config("test", "gd", n_tasks=2)
    first = run(cfg, tmp_path / "gd", stream=stream.subset(64), progress=False, precision="fp16")
    assert [t["precision"] for t in first["tasks"]] == ["fp16", "fp16"]
    assert all(torch.isfinite(torch.tensor(t["loss_curve"])).all() for t in first["tasks"])
    (tmp_path / "gd" / "task_1").rename(tmp_path / "task_1_fp16")       # train the last task again, in fp32
    again = run(cfg, tmp_path / "gd", stream=stream.subset(64), progress=False, precision="fp32")
    assert [t["precision"] for t in again["tasks"]] == ["fp16", "fp32"]

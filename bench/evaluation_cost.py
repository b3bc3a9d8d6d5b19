"""Time the evaluation after one task on a finished run's checkpoint (a benchmark, not a test).

Prints the wall time of: generating N samples with the run's evaluation DDIM steps plus FID/KID/KLD on the classifier's
features (the paper uses N = 10,000), optionally the Inception FID on a subset, and one task of the
replay-trained classifier (the paper: 20 epochs with fresh replay; CPUs: fewer epochs, a replay pool).

    python bench/evaluation_cost.py runs/gd --task 4 --samples 10000 --solver-epochs 1 --solver-pool 1000
"""
import argparse
import time
from pathlib import Path

import torch

from cldiff.metrics import generation_metrics, load_metrics_classifier
from cldiff.runner import RunConfig, load_stream
from cldiff.store import load_checkpoint, load_metrics
from cldiff.solver import Solver, diffusion_replay, train_solver_task
from cldiff.utils import resolve_device


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("--task", type=int, default=4)
    p.add_argument("--samples", type=int, default=10000)
    p.add_argument("--solver-epochs", type=int, default=1)
    p.add_argument("--solver-pool", type=int, default=1000)
    p.add_argument("--device", default=None)
    a = p.parse_args(argv)
    device = resolve_device(a.device)
    cfg = RunConfig.from_dict(load_metrics(a.run_dir)["config"])
    stream = load_stream(cfg)
    model, schedule = load_checkpoint(a.run_dir, a.task, device)
    classifier = load_metrics_classifier(device=device, progress=False, dataset=cfg.dataset)
    print(f"device {device} ({torch.get_num_threads()} threads), run {a.run_dir} ({cfg.strategy}, {cfg.unet}), task {a.task}")
    start = time.perf_counter()
    m = generation_metrics(model, stream, a.task, classifier, n_samples=a.samples, steps=cfg.evaluation.sample_steps, schedule=schedule)
    print(f"{a.samples} samples ({cfg.evaluation.sample_steps} DDIM steps) + FID/KID/KLD: {time.perf_counter() - start:.1f} s "
          f"(FID {m['fid']:.2f}, KID {m['kid']:.4f}, KLD {m['kld']:.3f})")
    if a.solver_epochs and a.task > 0:
        start = time.perf_counter()
        replay = diffusion_replay(*load_checkpoint(a.run_dir, a.task - 1, device), steps=10, pool=a.solver_pool)
        channels = stream[0].train_images.shape[1]
        solver = Solver(in_channels=channels)
        previous = Solver(in_channels=channels).eval()
        t = stream[a.task]
        train_solver_task(solver, t.train_images, t.train_labels, a.task, replay, previous, epochs=a.solver_epochs, device=device)
        pool = f"a pool of {a.solver_pool}" if a.solver_pool else "fresh replay per minibatch"
        print(f"replay classifier, one task ({a.solver_epochs} epoch(s), {pool}): {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()

"""Per-iteration cost of strategies against GD, alternated in one process (a benchmark, not a test).

On a shared machine the load drifts during a run of `strategy_cost.py`, which times each strategy once in turn.
This times each of `--strategies` (GD first) for `--iters` iterations at task index 1, round after round, and
reports the median of the rounds and its ratio to GD's beside the ratio of forward passes
(`Strategy.forward_passes`). It also times what cbgd adds outside the iterations: its labeller's training after
task 0 (task 0's real images only).

    OMP_NUM_THREADS=1 python bench/strategy_cost_ab.py --strategies gd cbgd nigd --rounds 3
"""
import argparse
import statistics
import time

import torch

from cldiff.data import fashion_mnist_tasks, random_batches
from cldiff.registry import make_strategy
from cldiff.replay import continual_loss, frozen_copy
from cldiff.runner import RUN_PRESETS  # noqa: F401  (importing the runner registers every built-in strategy)
from cldiff.schedules import paper_schedule
from cldiff.train import make_optimizer, noise_images, optimizer_step
from cldiff.unet import make_unet


def seconds_per_iter(strategy, teacher, stream, schedule, batch, iters, unet, size):
    student = make_unet(unet, seed=0, sample_size=size)
    opt = make_optimizer(student)
    images, _ = strategy.training_data(stream, 1)
    g = torch.Generator().manual_seed(0)
    batches = random_batches(len(images), batch, g)
    for i in range(iters + 2):
        if i == 2: start = time.perf_counter()      # two warm-up iterations
        current = noise_images(images[next(batches)], schedule, g)
        replay = strategy.replay_batch(current, teacher, schedule, 1, g)
        loss, _ = continual_loss(student, current, replay, 1, 1.0)
        optimizer_step(student, opt, loss)
    return (time.perf_counter() - start) / iters


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="tiny", choices=list(RUN_PRESETS))
    p.add_argument("--strategies", nargs="+", default=["gd", "cbgd", "nigd"])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--iters", type=int, default=20)
    a = p.parse_args(argv)
    preset = RUN_PRESETS[a.preset]
    names = ["gd", *[n for n in a.strategies if n != "gd"]]
    stream, schedule = fashion_mnist_tasks(image_size=preset["image_size"]), paper_schedule()
    teacher = frozen_copy(make_unet(preset["unet"], seed=0, sample_size=preset["image_size"]))
    strategies, end_task_s = {n: make_strategy(n) for n in names}, {}
    for n, s in strategies.items():
        start = time.perf_counter(); s.end_task(stream, 0); end_task_s[n] = time.perf_counter() - start
    print(f"{torch.get_num_threads()} thread(s), preset {a.preset}, batch {preset['batch_size']} + {preset['batch_size']} "
          f"replay, {a.iters} timed iterations, {a.rounds} rounds")
    if "cbgd" in strategies:
        print(f"cbgd's labeller trained after task 0 ({strategies['cbgd'].labeller_epochs:g} epochs of task 0's "
              f"{len(stream[0].train_images):,} real images): {end_task_s['cbgd']:.1f} s")
    times = {n: [] for n in names}
    for _ in range(a.rounds):
        for n, s in strategies.items():
            times[n].append(seconds_per_iter(s, teacher, stream, schedule, preset["batch_size"], a.iters, preset["unet"],
                                             preset["image_size"]))
    median = {n: statistics.median(v) for n, v in times.items()}
    gd_passes = strategies["gd"].forward_passes(schedule)
    for n, s in strategies.items():
        passes = s.forward_passes(schedule)
        print(f"{n:8} s/iter {', '.join(f'{v:.3f}' for v in times[n])} -> median {median[n]:.3f}; "
              f"x GD {median[n] / median['gd']:.3f}; passes {passes:.2f}B (x GD {passes / gd_passes:.3f})")


if __name__ == "__main__":
    main()

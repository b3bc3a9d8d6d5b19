"""Per-iteration cost of each continual strategy relative to fine-tuning, measured in one process.

Times `--iters` training iterations of every strategy at task index 1 (so replay is active) with the same
student, teacher, data and batch size, after a warm-up, and prints seconds per iteration, the ratio to
fine-tuning, and the share spent building the replay batch. The paper's design predicts, counting a
backward pass as two forwards with 2 teacher DDIM steps: fine-tuning 3B, GR 8B, GD 9B forward passes per
iteration, so GR ~2.7x, GD ~3.0x fine-tuning and GD/GR ~1.125. NIGD distils on the teacher's trajectory points
(B teacher passes whatever its steps: 7B, ~0.78x GD); SGGD generates only for the slots above its SNR threshold
(about 8.3B at the default threshold, ~0.93x GD); class-balanced GD generates twice the replay and keeps half
(11B, ~1.22x GD, and a small classifier's passes). Each strategy's count is its `forward_passes()`.

It also measures one way to make replay cheaper without changing what is learned: running the student
once on the concatenated current + replay batch (what cldiff does) versus two separate passes.

    python bench/strategy_cost.py --preset micro --batch-size 32 --iters 20
"""
import argparse
import time

import torch
import torch.nn.functional as F

from cldiff.data import fashion_mnist_tasks, random_batches
from cldiff.registry import make_strategy
from cldiff.replay import continual_loss, frozen_copy, generate_replay, task_weights
from cldiff.runner import RUN_PRESETS
from cldiff.schedules import paper_schedule
from cldiff.utils import resolve_device
from cldiff.train import make_optimizer, noise_images, optimizer_step, predict_noise
from cldiff.unet import make_unet


def _sync(device):
    if device.type == "cuda": torch.cuda.synchronize()


def separate_passes_loss(student, current, replay, k, lam):
    "The same loss as continual_loss, with the student run twice (once per half) instead of once on both."
    l_cur = F.mse_loss(predict_noise(student, current.x_t, current.t), current.noise)
    l_rep = F.mse_loss(predict_noise(student, replay.x_t, replay.t), replay.target)
    w_cur, w_rep = task_weights(k)
    return w_cur * l_cur + w_rep * lam * l_rep, {}


def time_strategy(name, student, teacher, stream, schedule, batch_size, iters, device, loss_fn=continual_loss):
    strategy = make_strategy(name)
    strategy.end_task(stream, 0)          # what task 1 needs of task 0 (ER's buffer, cbgd's labeller)
    images, _ = strategy.training_data(stream, 1)
    g = torch.Generator().manual_seed(0)
    batches = random_batches(len(images), batch_size, g)
    opt = make_optimizer(student)
    replay_s = 0.0
    for i in range(iters + 2):
        if i == 2: _sync(device); start = time.perf_counter(); replay_s = 0.0   # two warm-up iterations
        current = noise_images(images[next(batches)].to(device), schedule, g)
        r0 = time.perf_counter()
        replay = strategy.replay_batch(current, teacher, schedule, 1, g)
        _sync(device); replay_s += time.perf_counter() - r0
        loss, _ = loss_fn(student, current, replay, 1, 1.0) if replay is not None else continual_loss(student, current, None, 1)
        optimizer_step(student, opt, loss)
    _sync(device)
    return (time.perf_counter() - start) / iters, replay_s / iters, strategy.forward_passes(schedule)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="micro", choices=list(RUN_PRESETS))
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--device", default=None)
    p.add_argument("--strategies", nargs="+", default=["finetune", "joint", "er", "lwf", "gaussian", "gr", "gd", "nigd", "sggd", "cbgd"])
    a = p.parse_args(argv)
    preset = RUN_PRESETS[a.preset]
    device = resolve_device(a.device)
    batch = a.batch_size or preset["batch_size"]
    stream = fashion_mnist_tasks(image_size=preset["image_size"])
    schedule = paper_schedule()
    base = make_unet(preset["unet"], seed=0, sample_size=preset["image_size"]).to(device)
    teacher = frozen_copy(base)
    print(f"device {device} ({torch.get_num_threads()} threads), preset {a.preset}, batch {batch} + {batch} replay, {a.iters} timed iterations")
    rows = {}
    for name in a.strategies:
        student = make_unet(preset["unet"], seed=0, sample_size=preset["image_size"]).to(device)
        rows[name] = time_strategy(name, student, teacher, stream, schedule, batch, a.iters, device)
    ft = rows.get("finetune", (None,))[0]
    print(f"{'strategy':10} {'s/iter':>8} {'x finetune':>10} {'replay share':>12} {'passes':>7}")
    for name, (s, r, passes) in rows.items():
        print(f"{name:10} {s:8.3f} {s / ft if ft else float('nan'):10.2f} {r / s:12.0%} {passes:6.2f}B")
    if "gr" in rows and "gd" in rows: print(f"GD / GR = {rows['gd'][0] / rows['gr'][0]:.3f} (paper's count: 1.125)")
    for name in ("nigd", "sggd", "cbgd"):
        if name in rows and "gd" in rows:
            print(f"{name} / GD = {rows[name][0] / rows['gd'][0]:.3f} (forward-pass count: {rows[name][2] / rows['gd'][2]:.3f})")
    student = make_unet(preset["unet"], seed=0, sample_size=preset["image_size"]).to(device)
    sep, *_ = time_strategy("gd", student, teacher, stream, schedule, batch, a.iters, device, separate_passes_loss)
    print(f"GD with the student run separately on the two halves: {sep:.3f} s/iter "
          f"(one concatenated pass: {rows.get('gd', (float('nan'),))[0]:.3f})")
    # Replay samples are independent draws used once each, so generating those of m iterations in one call
    # changes nothing that is learned; it only changes the batch the teacher runs at.
    like = stream[0].train_images[:1].to(device)
    for m in (1, 8):
        g = torch.Generator().manual_seed(0)
        generate_replay(teacher, batch * m, schedule, 2, like, g); _sync(device)
        start = time.perf_counter()
        for _ in range(max(1, 8 // m)): generate_replay(teacher, batch * m, schedule, 2, like, g)
        _sync(device)
        per_iter = (time.perf_counter() - start) / (max(1, 8 // m) * m)
        print(f"teacher 2-step replay generated {m} iteration(s) at a time: {per_iter:.3f} s per iteration's replay batch")


if __name__ == "__main__":
    main()

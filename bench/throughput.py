"""Throughput of the UNet presets on whatever device is present (a benchmark, not a test).

Prints, for each preset: parameter count, training-step time and images/s, and DDIM sampling images/s
at 2, 10 and 50 steps. Timings are wall-clock after one warm-up, synchronised on GPUs.

    python bench/throughput.py                       # all presets, default batch sizes
    python bench/throughput.py --presets micro colab --train-batch 128 --device cuda
"""
import argparse
import time

import torch

from cldiff.schedules import paper_schedule
from cldiff.utils import resolve_device
from cldiff.train import diffusion_loss, make_optimizer, optimizer_step
from cldiff.sample import ddim_denoise
from cldiff.unet import UNET_PRESETS, count_parameters, make_unet


def _sync(device):
    if device.type == "cuda": torch.cuda.synchronize()
    elif device.type == "mps": torch.mps.synchronize()


def timed(fn, device, repeats):
    fn(); _sync(device)  # warm-up: allocator, cudnn autotuning
    start = time.perf_counter()
    for _ in range(repeats): fn()
    _sync(device)
    return (time.perf_counter() - start) / repeats


def bench_preset(name, device, train_batch, sample_batch, repeats, steps_list):
    schedule = paper_schedule()
    model = make_unet(name, seed=0).to(device)
    size = model.config.sample_size
    opt = make_optimizer(model)
    ch = model.config.in_channels   # 1 for the Fashion-MNIST presets, 3 for cifar10
    x0 = torch.rand(train_batch, ch, size, size, device=device) * 2 - 1

    def train_step():
        model.train()
        optimizer_step(model, opt, diffusion_loss(model, x0, schedule))

    step_s = timed(train_step, device, repeats)
    row = dict(preset=name, params_m=count_parameters(model) / 1e6, train_batch=train_batch,
               train_step_s=step_s, train_img_s=train_batch / step_s)
    model.eval()
    x_T = torch.randn(sample_batch, ch, size, size, device=device)
    for k in steps_list:
        s = timed(lambda: ddim_denoise(model, x_T, schedule, steps=k), device, max(1, repeats // 2))
        row[f"sample{k}_img_s"] = sample_batch / s
    return row


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="+", default=list(UNET_PRESETS), choices=list(UNET_PRESETS))
    p.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best available)")
    p.add_argument("--train-batch", type=int, default=None, help="default 128 on a GPU, 64 on the CPU")
    p.add_argument("--sample-batch", type=int, default=None, help="default 256 on a GPU, 64 on the CPU")
    p.add_argument("--repeats", type=int, default=None, help="timed repetitions (default 20 on a GPU, 3 on the CPU)")
    p.add_argument("--steps", type=int, nargs="+", default=[2, 10, 50])
    a = p.parse_args(argv)
    device = resolve_device(a.device)
    gpu = device.type != "cpu"
    train_batch = a.train_batch or (128 if gpu else 64)
    sample_batch = a.sample_batch or (256 if gpu else 64)
    repeats = a.repeats or (20 if gpu else 3)
    what = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{device.type}, {torch.get_num_threads()} threads"
    print(f"device: {what}; torch {torch.__version__}")
    head = f"{'preset':8} {'params':>8} {'batch':>5} {'s/step':>8} {'train img/s':>11} " + " ".join(f"{'DDIM' + str(k) + ' img/s':>13}" for k in a.steps)
    print(head); print("-" * len(head))
    for name in a.presets:
        # the paper's 42.9 M model on a CPU: a smaller sampling batch keeps the run to minutes
        sb = sample_batch if gpu or name != "paper" else min(sample_batch, 16)
        r = bench_preset(name, device, train_batch, sb, repeats, a.steps)
        print(f"{name:8} {r['params_m']:7.2f}M {train_batch:5d} {r['train_step_s']:8.3f} {r['train_img_s']:11.1f} "
              + " ".join(f"{r[f'sample{k}_img_s']:13.1f}" for k in a.steps), flush=True)


if __name__ == "__main__":
    main()

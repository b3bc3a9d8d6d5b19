"""Training and sampling speed of every preset and strategy, with each speed lever on or off (a benchmark, not a test).

For each preset, strategy and variant it times the runner's own `train_task` at task 1 (so replay is
active) after a warm-up call, and prints and writes to JSON: seconds and iterations per second, images
per second, the ratio to fine-tuning of the same variant, the replay share, peak device memory, and the
achieved FLOP/s against the matrix-multiply peak measured on the same device in the same process.
FLOPs are counted with torch's FlopCounterMode on one forward pass and scaled: a training image costs a
forward and a backward (3 forwards), a teacher sample `teacher_steps` forwards, a GD target one more.

Variants (comma-separated `key=value`, any of precision=fp32|bf16|auto, chunk=N, compile=0|1):

    python bench/speed.py --device cuda --presets paper colab --strategies finetune gr gd \
        --variants "precision=fp32,chunk=1" "precision=bf16,chunk=8" "precision=bf16,chunk=8,compile=1"
    python bench/speed.py --device cpu --presets micro --iters 10

The same script runs against an older checkout of cldiff (PYTHONPATH=old/), where the levers did not
exist yet; variants are then ignored and reported as `baseline`. Sampling speed is DDIM with 10 steps.
"""
import argparse
import dataclasses
import inspect
import json
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

import cldiff
from cldiff.data import fashion_mnist_tasks
from cldiff.registry import make_strategy
from cldiff.replay import frozen_copy
from cldiff.runner import run_config, train_task
from cldiff.sample import ddim_denoise
from cldiff.schedules import paper_schedule
from cldiff.unet import make_unet
from cldiff.utils import resolve_device

LEVERS = "precision" in inspect.signature(train_task).parameters   # False on cldiff before the speed levers


def sync(device):
    if device.type == "cuda": torch.cuda.synchronize(device)


def forward_flops(unet: str, size: int) -> float:
    "FLOPs of one forward pass of one image (counted on the CPU, at batch 2 to be safe from batch-1 shortcuts)."
    model = make_unet(unet, seed=0, sample_size=size).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.randn(2, model.config.in_channels, size, size), torch.tensor([500, 500]))
    return counter.get_total_flops() / 2


def matmul_peak(device, dtype, n=None, repeats=None) -> float:
    "Dense matrix-multiply FLOP/s measured on `device` (the yardstick for achieved FLOP/s)."
    n = n or (8192 if device.type == "cuda" else 1024)
    repeats = repeats or (20 if device.type == "cuda" else 3)
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    a @ b; sync(device)
    start = time.perf_counter()
    for _ in range(repeats): a @ b
    sync(device)
    return 2 * n ** 3 * repeats / (time.perf_counter() - start)


def parse_variant(text: str) -> dict:
    v = dict(precision="fp32", chunk=1, compile=0)
    for part in filter(None, text.split(",")):
        key, _, value = part.partition("=")
        if key not in v: raise SystemExit(f"unknown variant key {key!r} in {text!r}; use precision, chunk, compile")
        v[key] = value if key == "precision" else int(value)
    return v


def time_variant(preset, strategy_name, variant, stream, device, iters, warmup):
    "Seconds per iteration of `train_task` at task 1 and its statistics, after a warm-up call."
    options = {"replay_chunk": variant["chunk"]} if LEVERS and strategy_name in ("gr", "gd") else {}
    config = run_config(preset, strategy_name, iters_per_task=iters, **options)
    schedule = paper_schedule()
    model = make_unet(config.unet, seed=0, sample_size=config.image_size).to(device)
    strategy = make_strategy(strategy_name, seed=0, **config.strategy_options)
    strategy.end_task(stream, 0)
    teacher = frozen_copy(model) if strategy.uses_teacher else None
    kwargs = dict(precision=variant["precision"], compile=bool(variant["compile"])) if LEVERS else {}
    warm = dataclasses.replace(config, iters_per_task=warmup)
    t0 = time.perf_counter()
    train_task(model, teacher, strategy, stream, 1, schedule, warm, progress=False, **kwargs)   # allocator, cuDNN, compile
    warmup_s = time.perf_counter() - t0
    strategy.end_task(stream, 0)   # drop replay made ahead during the warm-up, so the timed run makes its own
    if device.type == "cuda": torch.cuda.reset_peak_memory_stats(device)
    stats = train_task(model, teacher, strategy, stream, 1, schedule, config, progress=False, **kwargs)
    peak = torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == "cuda" else None
    n_replay = config.batch_size if strategy.uses_teacher or strategy_name == "er" else 0
    return config, stats, peak, n_replay, warmup_s


def time_sampling(config, device, precision, batch, steps=10):
    model = make_unet(config.unet, seed=0, sample_size=config.image_size).to(device).eval()
    x_T = torch.randn(batch, model.config.in_channels, config.image_size, config.image_size, device=device)
    enabled = precision == "bf16"
    def go():
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled):
            ddim_denoise(model, x_T, paper_schedule(), steps=steps)
    go(); sync(device)
    start = time.perf_counter(); go(); sync(device)
    return batch / (time.perf_counter() - start)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default=None)
    p.add_argument("--presets", nargs="+", default=["micro"])
    p.add_argument("--strategies", nargs="+", default=["finetune", "gr", "gd"])
    p.add_argument("--variants", nargs="+", default=["precision=fp32,chunk=1", "precision=auto,chunk=8"])
    p.add_argument("--iters", type=int, default=None, help="timed iterations (default 40 on a GPU, 8 on a CPU)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up iterations (default 10 on a GPU, 2 on a CPU)")
    p.add_argument("--sample-batch", type=int, default=None, help="default 512 on a GPU, 64 on a CPU")
    p.add_argument("--label", default=None, help="name of this code version in the output (default: baseline or levers)")
    p.add_argument("--json", type=Path, default=None, help="also write the rows here")
    a = p.parse_args(argv)
    device = resolve_device(a.device)
    gpu = device.type == "cuda"
    iters, warmup = a.iters or (40 if gpu else 8), a.warmup or (10 if gpu else 2)
    variants = [parse_variant(v) for v in a.variants] if LEVERS else [dict(precision="fp32", chunk=1, compile=0)]
    chunk = max(v["chunk"] for v in variants)
    iters = -(-iters // chunk) * chunk   # whole chunks, so every variant pays for all the replay it uses
    label = a.label or ("levers" if LEVERS else "baseline")
    what = torch.cuda.get_device_name(device) if gpu else f"cpu, {torch.get_num_threads()} threads"
    peaks = {"fp32": matmul_peak(device, torch.float32), "bf16": matmul_peak(device, torch.bfloat16)}
    print(f"device: {what}; torch {torch.__version__}; cldiff {cldiff.__version__} ({label}); "
          f"matmul peak fp32 {peaks['fp32'] / 1e12:.1f} TFLOP/s (TF32 {'on' if torch.backends.cuda.matmul.allow_tf32 else 'off'}), "
          f"bf16 {peaks['bf16'] / 1e12:.1f} TFLOP/s", flush=True)
    rows = []
    for preset in a.presets:
        base = run_config(preset, "finetune")
        stream = fashion_mnist_tasks(n_tasks=base.n_tasks, seed=base.seed, image_size=base.image_size)
        fwd = forward_flops(base.unet, base.image_size)
        print(f"\npreset {preset}: {base.unet} UNet at {base.image_size}px, {fwd / 1e9:.2f} GFLOP per image forward, "
              f"batch {base.batch_size} (+ {base.batch_size} replay), {iters} timed iterations")
        head = (f"{'variant':42} {'strategy':8} {'s/iter':>7} {'it/s':>6} {'img/s':>7} {'x ft':>5} {'replay':>6} "
                f"{'TFLOP/s':>7} {'of peak':>7} {'GiB':>5} {'warm s':>6}")
        print(head); print("-" * len(head), flush=True)
        for v in variants:
            vname = f"{label}:" + ",".join(f"{k}={v[k]}" for k in ("precision", "chunk", "compile"))
            ft_s = None
            for name in a.strategies:
                try:
                    config, stats, peak, n_rep, warm_s = time_variant(preset, name, v, stream, device, iters, warmup)
                except Exception as e:   # a lever that fails on this machine is reported, and the others still run
                    print(f"{vname:42} {name:8} failed: {type(e).__name__}: {str(e).splitlines()[0][:120]}", flush=True)
                    rows.append(dict(preset=preset, variant=vname, strategy=name, error=f"{type(e).__name__}: {e}"[:500]))
                    continue
                s = stats["seconds_per_iter"]
                if name == "finetune": ft_s = s
                steps = getattr(make_strategy(name), "teacher_steps", 0)
                teacher_fwd = n_rep * (steps + (1 if name in ("gd",) else 0)) if name in ("gr", "gd") else 0
                teacher_fwd += n_rep if name in ("lwf", "gaussian") else 0
                flops = fwd * (3 * (config.batch_size + n_rep) + teacher_fwd)
                precision = stats.get("precision", "fp32")
                row = dict(preset=preset, variant=vname, strategy=name, device=what, seconds_per_iter=s, iters_per_s=1 / s,
                           images_per_s=(config.batch_size + n_rep) / s, x_finetune=s / ft_s if ft_s else None,
                           replay_share=stats["replay_seconds_per_iter"] / s, tflops=flops / s / 1e12,
                           of_peak=flops / s / peaks["bf16" if precision == "bf16" else "fp32"], peak_gib=peak,
                           warmup_seconds=warm_s, precision=precision, loss_end=stats["loss_end"])
                rows.append(row)
                print(f"{vname:42} {name:8} {s:7.4f} {1 / s:6.1f} {row['images_per_s']:7.0f} "
                      f"{row['x_finetune'] or float('nan'):5.2f} {row['replay_share']:6.0%} {row['tflops']:7.2f} "
                      f"{row['of_peak']:7.1%} {peak if peak is not None else float('nan'):5.2f} {warm_s:6.1f}", flush=True)
        for precision in sorted({v["precision"] for v in variants}):
            if precision == "auto" or (precision == "bf16" and not LEVERS): continue
            batch = a.sample_batch or (512 if gpu else 64)
            ips = time_sampling(base, device, precision, batch)
            rows.append(dict(preset=preset, variant=f"{label}:sampling", precision=precision, device=what, sample_batch=batch,
                             ddim10_images_per_s=ips))
            print(f"sampling, DDIM 10 steps, batch {batch}, {precision}: {ips:.0f} images/s", flush=True)
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(dict(device=what, torch=torch.__version__, label=label,
                                          matmul_peak_tflops={k: v / 1e12 for k, v in peaks.items()}, rows=rows), indent=1))


if __name__ == "__main__":
    main()

"""Does bf16 autocast pay on this CPU? fp32 against bf16 on the `tiny` preset's GD training step (a benchmark, not a test).

`--precision auto` picks bf16 on a CPU only for flags measured faster (cldiff.utils.CPU_BF16_MEASURED_FASTER: none yet). This
times the runner's own `train_task` at task 1 (replay and distillation active) on one thread, alternating
fp32 and bf16 rounds (so a busy neighbour slows both alike), and prints the CPU's bf16-related flags, the
median seconds per iteration of each precision, and their ratio:

    OMP_NUM_THREADS=1 CLDIFF_DATA=... python bench/cpu_bf16.py --iters 4 --repeats 5 [--json out.json]
"""
import argparse
import dataclasses
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from cldiff.data import fashion_mnist_tasks
from cldiff.registry import make_strategy
from cldiff.replay import frozen_copy
from cldiff.runner import run_config, train_task
from cldiff.schedules import paper_schedule
from cldiff.unet import make_unet
from cldiff.utils import _cpu_flags, fast_bf16, resolve_precision


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="tiny")
    p.add_argument("--strategy", default="gd")
    p.add_argument("--iters", type=int, default=4, help="iterations per timed round")
    p.add_argument("--repeats", type=int, default=5, help="rounds per precision, interleaved")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    flags = sorted(f for f in _cpu_flags() if "bf16" in f or f.startswith(("amx", "avx512f", "avx2")))
    cpu = platform.processor() or "cpu"
    try: cpu = next(l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("model name"))
    except (OSError, StopIteration): pass
    print(f"cpu: {cpu}; flags: {' '.join(flags) or 'none'}; torch {torch.__version__}; {a.threads} thread(s); "
          f"fast_bf16: {fast_bf16('cpu')} -> auto = {resolve_precision('auto', 'cpu')}", flush=True)
    config = run_config(a.preset, a.strategy, iters_per_task=a.iters)
    stream = fashion_mnist_tasks(n_tasks=config.n_tasks, seed=config.seed, image_size=config.image_size)
    schedule = paper_schedule()
    setups = {}
    for precision in ("fp32", "bf16"):
        model = make_unet(config.unet, seed=0, sample_size=config.image_size)
        strategy = make_strategy(a.strategy, seed=0, **config.strategy_options)
        strategy.end_task(stream, 0)
        teacher = frozen_copy(model) if strategy.uses_teacher else None
        train_task(model, teacher, strategy, stream, 1, schedule, dataclasses.replace(config, iters_per_task=1),
                   progress=False, precision=precision)                 # warm-up
        setups[precision] = (model, teacher, strategy)
    times = {"fp32": [], "bf16": []}
    for r in range(a.repeats):
        for precision in (("fp32", "bf16") if r % 2 == 0 else ("bf16", "fp32")):
            model, teacher, strategy = setups[precision]
            start = time.perf_counter()
            train_task(model, teacher, strategy, stream, 1, schedule, config, progress=False, precision=precision)
            times[precision].append((time.perf_counter() - start) / a.iters)
        print(f"round {r + 1}: fp32 {times['fp32'][-1]:.3f} s/it, bf16 {times['bf16'][-1]:.3f} s/it", flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"median s/iteration ({a.preset} {a.strategy}, {a.iters} iterations x {a.repeats} rounds): "
          f"fp32 {med['fp32']:.3f}, bf16 {med['bf16']:.3f}; bf16 / fp32 = {med['bf16'] / med['fp32']:.2f}")
    if a.json:
        a.json.write_text(json.dumps({"cpu": cpu, "flags": flags, "torch": torch.__version__, "threads": a.threads,
                                      "preset": a.preset, "strategy": a.strategy, "iters": a.iters, "times": times,
                                      "median": med, "ratio_bf16_fp32": med["bf16"] / med["fp32"]}, indent=2))


if __name__ == "__main__":
    main()

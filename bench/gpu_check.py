"""End-to-end device check: every code path of cldiff on one device, in minutes, failing loudly on any error or NaN.

Runs, for 2 tasks with a few iterations each on real Fashion-MNIST (a slice of every task):
every registered strategy through the runner; for GD also the classifier trained with replay and the
FID/KID/KLD evaluation (plus the Inception FID when `cldiff[inception]` is installed); then the
`cldiff sample`, `cldiff evaluate` and `cldiff report` commands and the viz data functions, all on the
device asked for. After each run it checks that the run's models and every network an evaluator built
live on that device, and that no loss, metric or sample is NaN.

    python bench/gpu_check.py --device cuda --out gpu_check      # on a GPU
    python bench/gpu_check.py --device cpu --out /tmp/check      # what CI runs

Prints one line per check with its time and writes `gpu_check.json` into --out.

On a CPU every `.to(device)` is a no-op, so this script cannot see a forgotten one there;
`tests/test_device_mixups.py` can: it runs the same device code on a stand-in device that fails on a mix-up.
"""
import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

from cldiff.utils import module_device, resolve_device
from cldiff.data import fashion_mnist_tasks
from cldiff.registry import STRATEGIES
from cldiff.runner import run, run_config
from cldiff.evaluation import build_evaluators
from cldiff.report import evaluate_run
from cldiff.store import load_checkpoint
from cldiff.cli import main as cli
from cldiff.viz import run_trajectories


def _finite_numbers(obj, path="") -> list[str]:
    "Paths of every NaN or infinite number in a nested JSON-like object."
    if isinstance(obj, float): return [] if math.isfinite(obj) else [path]
    if isinstance(obj, dict): return [p for k, v in obj.items() for p in _finite_numbers(v, f"{path}.{k}")]
    if isinstance(obj, list): return [p for i, v in enumerate(obj) for p in _finite_numbers(v, f"{path}[{i}]")]
    return []


def _same_device(a: torch.device, b: torch.device) -> bool:
    return a.type == b.type and (a.index or 0) == (b.index or 0)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default=None, help="cuda, cpu or mps (default: the best available)")
    p.add_argument("--out", type=Path, default=Path("gpu_check"), help="folder for the runs and gpu_check.json")
    p.add_argument("--iters", type=int, default=3, help="training iterations per task (default 3)")
    p.add_argument("--images", type=int, default=512, help="training images per task (default 512)")
    p.add_argument("--inception", choices=("auto", "on", "off"), default="auto",
                   help="Inception FID in the GD evaluation: auto = on a GPU when cldiff[inception] is installed (slow on a CPU)")
    p.add_argument("--compile", action="store_true", help="also a GD run with the training step compiled (a minute or two more)")
    a = p.parse_args(argv)
    device = resolve_device(a.device)
    use_inception = a.inception == "on" or (a.inception == "auto" and device.type == "cuda" and _inception_installed())
    a.out.mkdir(parents=True, exist_ok=True)
    stream = fashion_mnist_tasks(image_size=16).subset(a.images, 256)
    stream.tasks = stream.tasks[:2]
    results, failures = {"device": str(device), "torch": torch.__version__,
                         "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None, "checks": {}}, []

    def check(name, fn):
        start = time.perf_counter()
        try:
            detail = fn() or {}
            bad = _finite_numbers(detail)
            if bad: raise AssertionError(f"non-finite values at {', '.join(bad[:5])}")
            status = "ok"
        except Exception as e:   # report every failing path, then fail at the end
            detail, status = {"error": f"{type(e).__name__}: {e}"}, "FAILED"
            failures.append(name)
        seconds = time.perf_counter() - start
        results["checks"][name] = {"status": status, "seconds": round(seconds, 2), **detail}
        print(f"{status:6} {name:32} {seconds:7.1f} s  {detail.get('error', '')}", flush=True)
        (a.out / "gpu_check.json").write_text(json.dumps(results, indent=2))   # after every check: a timeout loses nothing

    def strategy_run(name, evaluate=False, precision="auto", compile=False, folder=None):
        def go():
            cfg = run_config("test", name, n_tasks=2, iters_per_task=a.iters,
                             **(dict(eval_samples=64, solver_epochs=1, solver_pool=32,
                                     inception_fid=use_inception) if evaluate else {}))
            evaluators = build_evaluators(cfg)
            out = a.out / (folder or name)
            m = run(cfg, out, device=device, progress=False, evaluators=evaluators, stream=stream, precision=precision, compile=compile)
            assert len(m["tasks"]) == 2, f"{len(m['tasks'])} tasks finished"
            for t in m["tasks"]:
                assert t["samples_nan"] == 0, f"task {t['task']}: {t['samples_nan']} NaN sample values"
                assert "error" not in t.get("generation", {}), t["generation"].get("error")
            model, _ = load_checkpoint(out, 1, device)
            assert _same_device(module_device(model), device), f"checkpoint loaded on {module_device(model)}"
            for ev_name, ev in evaluators.items():   # every network an evaluator built follows the run's device
                for attr in ("evaluator", "inception"):
                    net = getattr(ev, attr, None)
                    if net is not None:
                        assert _same_device(next(net.parameters()).device, device), f"{ev_name}.{attr} on {next(net.parameters()).device}"
            last = m["tasks"][-1]
            return {"loss_end": last["loss_end"], "seconds_per_iter": last["seconds_per_iter"], "precision": last["precision"],
                    **({"fid": last["generation"]["fid"], "kld": last["generation"]["kld"],
                        "fid_inception": last["generation"].get("fid_inception"),
                        "solver_accuracy": last["solver"]["seen_accuracy"]} if evaluate else {})}
        return go

    for name in sorted(STRATEGIES):
        check(f"run {name}" + (" + evaluation" if name == "gd" else ""), strategy_run(name, evaluate=name == "gd"))
    check("run gd in fp32 (the reference path)", strategy_run("gd", precision="fp32", folder="gd_fp32"))
    dev = ["--device", str(device)]
    check("cldiff sample", lambda: _cli_ok(["sample", str(a.out / "gd"), "--steps", "10", "--n", "16", "--out", str(a.out / "grid.png"), *dev]))
    def evaluate():   # what `cldiff evaluate` calls, on the same small stream (the command itself is tested in 09_cli)
        cfg = run_config("test", "gr", n_tasks=2, eval_samples=64, solver_epochs=1, solver_pool=32)
        m = evaluate_run(a.out / "gr", build_evaluators(cfg), device, stream=stream)
        return {"fid": m["tasks"][-1]["generation"]["fid"], "solver_accuracy": m["tasks"][-1]["solver"]["seen_accuracy"]}
    check("evaluate a finished run", evaluate)
    check("cldiff report", lambda: _cli_ok(["report", *(str(a.out / s) for s in ("finetune", "gr", "gd")), "--out", str(a.out / "report")]))
    def trajectories():
        trajs = run_trajectories([a.out / "gr", a.out / "gd"], n=4, steps=10, device=device)
        for run_name, per_task in trajs.items():
            for k, tr in per_task.items():
                assert torch.isfinite(tr.x_t).all() and torch.isfinite(tr.x0_pred).all(), f"{run_name} task {k}: NaN in trajectory"
        return {"runs": len(trajs)}
    check("viz trajectories", trajectories)
    if a.compile: check("run gd, compiled training step", strategy_run("gd", compile=True, folder="gd_compiled"))
    (a.out / "gpu_check.json").write_text(json.dumps(results, indent=2))
    n = len(results["checks"])
    print(f"{n - len(failures)} passed, {len(failures)} failed (device {device}); details in {a.out / 'gpu_check.json'}")
    return 1 if failures else 0


def _inception_installed() -> bool:
    from cldiff.metrics import InceptionUnavailable, inception_weights
    import importlib.util
    if importlib.util.find_spec("torch_fidelity") is None: return False
    try: inception_weights()
    except InceptionUnavailable: return False
    return True


def _cli_ok(argv) -> dict:
    code = cli(argv)
    assert code == 0, f"cldiff {' '.join(argv[:2])} exited with {code}"
    return {}


if __name__ == "__main__":
    sys.exit(main())

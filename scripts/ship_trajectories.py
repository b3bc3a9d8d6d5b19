"""Regenerate cldiff/assets/trajectories_tiny.pt, the trajectories the tutorial and docs show, from run folders.

    python scripts/ship_trajectories.py results/tiny/runs/finetune_s42 results/tiny/runs/gr_s42 ...

Each run is keyed by its strategy; every finished task is sampled from the same noise (8 images, 10 DDIM steps).
"""
import argparse
import json
from pathlib import Path

from cldiff.viz import SHIPPED_TRAJECTORIES, run_trajectories, save_trajectories

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("runs", nargs="+", type=Path, help="run folders written by `cldiff run` or `cldiff compare`")
p.add_argument("--out", type=Path, default=SHIPPED_TRAJECTORIES)
p.add_argument("--n", type=int, default=8)
p.add_argument("--steps", type=int, default=10)
a = p.parse_args()
trajectories = {}
for run_dir, trajs in zip(a.runs, run_trajectories(a.runs, n=a.n, steps=a.steps).values()):
    trajectories[json.loads((run_dir / "config.json").read_text())["strategy"]] = trajs
path = save_trajectories(trajectories, a.out)
print(f"{', '.join(trajectories)}: {path} ({path.stat().st_size / 1e3:.0f} kB)")

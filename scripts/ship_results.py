"""Regenerate the shipped reproduction: cldiff/assets/results_tiny.json (what `shipped_runs()` reads) and the
report in results/tiny/ (table, figures, sample grids), from the finished run folders of `cldiff compare`.

    python scripts/ship_results.py runs/tiny --command "cldiff compare --preset tiny ..."
"""
import argparse
from pathlib import Path

from cldiff.report import SHIPPED_RESULTS, pack_runs, write_report
from cldiff.store import finished_tasks

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("compare_dir", type=Path, help="the --out folder of `cldiff compare` (one folder per strategy and seed)")
p.add_argument("--command", required=True, help="the command that made the runs, shown beside the results")
p.add_argument("--report", type=Path, default=Path("results/tiny"))
p.add_argument("--out", type=Path, default=SHIPPED_RESULTS)
a = p.parse_args()
order = {"joint": 0, "gd": 1, "finetune": 2, "gr": 3}   # as the paper's table: upper bound, the method, lower bounds
runs = sorted((d for d in a.compare_dir.iterdir() if (d / "config.json").is_file() and finished_tasks(d) == 5),
              key=lambda d: (order.get(d.name.rsplit("_s", 1)[0], 9), d.name))
print(f"{len(runs)} finished runs: {', '.join(d.name for d in runs)}")
print(pack_runs(runs, a.out, a.command), f"({a.out.stat().st_size / 1e3:.0f} kB)")
print(write_report(runs, a.report))

"""Ship the beyond-GD study: cldiff/assets/results_beyond.json (what `15_beyond_gd` reads) and results/beyond/
(README.md with the table beside the shipped joint, GD, fine-tuning and GR runs, and the report's figures).

    python scripts/ship_beyond.py runs/beyond --command "the commands that made the runs" \
        --cost bench/results/cpu_2026-12-01/strategy_cost_tiny.txt

Each variant's run folders are named VARIANT_sSEED (nigd_s42, sggd_s69, gd-ema_s1714, ...); the variant is the
name before `_s`. Only runs with all 5 tasks finished are shipped.
"""
import argparse
from pathlib import Path

from cldiff.report import ASSETS, forward_passes, load_runs, mean_se, metric_value, pack_runs, shipped_runs, write_report
from cldiff.store import finished_tasks

SHIPPED_BEYOND = ASSETS / "results_beyond.json"
BASELINES = ("joint", "gd", "finetune", "gr")


def variant(run: dict) -> str:
    return Path(run["dir"]).name.rsplit("_s", 1)[0]


def last_task_share(entry: dict) -> float | None:
    "The share of generated samples that the evaluator assigns to the last task's classes."
    hist = metric_value(entry, "generation.histogram")
    return None if hist is None else sum(hist[c] for c in entry["classes"])


def fmt(values, digits=4):
    values = [v for v in values if v is not None]
    if not values: return "–"
    m, se = mean_se(values)
    return f"{m:.{digits}g}" + (f" ± {se:.2g}" if se is not None else "")


def table(groups: dict[str, list[dict]]) -> str:
    keys = [("FID", "generation.fid"), ("KLD", "generation.kld"), ("denoising MSE", "denoising_mse.seen_mean")]
    joint = {k: mean_se([metric_value(r["tasks"][-1], k) for r in groups["joint"]])[0] for _, k in keys}
    ft = {k: mean_se([metric_value(r["tasks"][-1], k) for r in groups["finetune"]])[0] for _, k in keys}
    lines = ["| run | seeds | " + " | ".join(n for n, _ in keys) + " | FID position (joint 0, fine-tuning 1) | "
             "last task's share of samples | forward passes / iteration | s / iteration (own run) |",
             "|---|---|" + "---|" * (len(keys) + 4)]
    for name, rs in groups.items():
        last = [r["tasks"][-1] for r in rs]
        fid = mean_se([metric_value(e, "generation.fid") for e in last])[0]
        pos = (fid - joint["generation.fid"]) / (ft["generation.fid"] - joint["generation.fid"])
        spi = [sum(t["seconds_per_iter"] for t in r["tasks"][1:]) / len(r["tasks"][1:]) for r in rs]
        lines.append(f"| {name} | {len(rs)} | " + " | ".join(fmt([metric_value(e, k) for e in last]) for _, k in keys)
                     + f" | {pos:.2f} | {fmt([last_task_share(e) for e in last], 2)} | {forward_passes(rs[0]):.2f}B | "
                     + fmt(spi, 3) + " |")
    return "\n".join(lines)


def paired_table(groups: dict[str, list[dict]]) -> str:
    "Each variant divided by GD's run of the same seed, averaged over the seeds it has run (below 1: better than GD)."
    keys = [("FID", "generation.fid"), ("KLD", "generation.kld"), ("denoising MSE", "denoising_mse.seen_mean")]
    gd = {r["config"]["seed"]: r["tasks"][-1] for r in groups["gd"]}
    lines = ["| run / gd, same seed | seeds | " + " | ".join(n for n, _ in keys) + " |", "|---|---|" + "---|" * len(keys)]
    for name, rs in groups.items():
        if name in BASELINES: continue
        cells = [fmt([metric_value(r["tasks"][-1], k) / metric_value(gd[r["config"]["seed"]], k) for r in rs], 3) for _, k in keys]
        lines.append(f"| {name} | {', '.join(str(r['config']['seed']) for r in rs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("study_dir", type=Path, help="folder of the variant runs (VARIANT_sSEED)")
    p.add_argument("--command", required=True, help="the command that made the runs")
    p.add_argument("--cost", type=Path, default=None, help="output of bench/strategy_cost.py to include verbatim")
    p.add_argument("--report", type=Path, default=Path("results/beyond"))
    p.add_argument("--out", type=Path, default=SHIPPED_BEYOND)
    a = p.parse_args(argv)
    dirs = sorted(d for d in a.study_dir.iterdir() if (d / "config.json").is_file() and finished_tasks(d) == 5)
    print(f"{len(dirs)} finished variant runs: {', '.join(d.name for d in dirs)}")
    pack_runs(dirs, a.out, a.command)
    variants = load_runs(dirs)
    for r in variants: r["strategy"] = variant(r)      # the report groups by this name
    groups = {}
    for r in [*[r for r in shipped_runs() if r["strategy"] in BASELINES], *variants]:
        groups.setdefault(r["strategy"], []).append(r)
    order = [*BASELINES, *sorted(set(groups) - set(BASELINES))]
    groups = {k: groups[k] for k in order if k in groups}
    a.report.mkdir(parents=True, exist_ok=True)
    write_report(dirs, a.report / "report")
    (a.report / "table.md").write_text(table(groups) + "\n\n" + paired_table(groups) + "\n")
    if a.cost: (a.report / "strategy_cost.txt").write_text(a.cost.read_text())
    print(table(groups)); print(); print(paired_table(groups))


if __name__ == "__main__":
    main()

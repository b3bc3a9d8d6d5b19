#!/usr/bin/env bash
# Everything one short GPU session measures, in order of priority, inside a fixed time budget.
#
#   bash bench/gpu_suite.sh RESULTS SECONDS [OLD_CLDIFF]     # e.g. bash bench/gpu_suite.sh gpu_results 560 old/
#
# 1. bench/gpu_check.py --device cuda --compile: every code path on the GPU, failing on any error or NaN.
# 2. bench/speed.py: paper and colab presets, fine-tuning / GR / GD, with the speed levers off and on; with
#    OLD_CLDIFF (a folder holding an older `cldiff/` package) the same measurement of that older code first.
# 3. The colab preset for real (5 tasks, its own evaluation): joint, GD, fine-tuning and GR at seeds 42, 69 and
#    1714 as concurrent processes on the one GPU (the tutorial's comparison at GPU scale, shipped as
#    results/colab/), and GD at seed 42 in fp32, which beside the bf16 run of the same seed measures what bf16
#    changes (the other seeds give the spread to compare it with). RUN_SPECS="strategy seed precision;..."
#    replaces the list (fewer seeds when the measured time says so). The runs live in runs/gpu/ and are resumable:
#    calling the suite again continues them. Whatever is unfinished at the deadline is stopped; finished
#    tasks are kept and reported.
# Logs, JSON and the runs' metrics, grids and report go to RESULTS/ (a few MB).
# A dry run on a CPU (what was run before taking it to a GPU):
#   DEVICE=cpu SPEED_PRESETS=micro RUN_PRESET=test PHASES=speed,runs bash bench/gpu_suite.sh /tmp/suite 120
set -u
trap 'signal_runs CONT 2>/dev/null' EXIT
dev=${DEVICE:-cuda}; speed_presets=${SPEED_PRESETS:-paper colab}; run_preset=${RUN_PRESET:-colab}
results=${1:?usage: gpu_suite.sh RESULTS SECONDS [OLD_CLDIFF]}; budget=${2:?seconds}; old=${3:-}
mkdir -p "$results" runs/gpu
start=$(date +%s)
left() { echo $(( budget - ($(date +%s) - start) )); }
log() { echo "[$(( $(date +%s) - start ))s] $*" | tee -a "$results/suite.log"; }
[[ $dev == cuda ]] && nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv > "$results/nvidia-smi.csv" 2>&1

phase=${PHASES:-check,speed,runs}
# The runs start first and share the GPU with the device check; during the speed measurements they are
# paused (SIGSTOP), so the timings see an idle GPU; at the deadline they are stopped and finished tasks kept.
groups=()
if [[ $phase == *runs* ]]; then
  log "$run_preset runs start"
  default_specs="joint 42 auto;gd 42 auto;finetune 42 auto;gr 42 auto;joint 69 auto;gd 69 auto;finetune 69 auto;gr 69 auto"
  default_specs+=";joint 1714 auto;gd 1714 auto;finetune 1714 auto;gr 1714 auto;gd 42 fp32"
  IFS=';' read -r -a specs <<< "${RUN_SPECS:-$default_specs}"
  for spec in "${specs[@]}"; do
    set -- $spec
    name="$1_s$2_$3"
    setsid cldiff run --preset "$run_preset" --strategy "$1" --seed "$2" --precision "$3" --device "$dev" \
      --out "runs/gpu/$run_preset/$name" --no-progress >> "$results/run_$name.log" 2>&1 &
    groups+=($!)
  done
  sleep 2   # let each run start its own process group before anything signals it
fi
signal_runs() { for g in "${groups[@]}"; do kill "-$1" -- "-$g" 2>/dev/null; done; }
runs_alive() { for g in "${groups[@]}"; do kill -0 -- "-$g" 2>/dev/null && return 0; done; return 1; }
if [[ $phase == *check* && ! -f "$results/gpu_check.json" ]]; then
  log "gpu_check"
  timeout 150 python3 bench/gpu_check.py --device "$dev" --compile --out runs/gpu/check > "$results/gpu_check.log" 2>&1
  log "gpu_check exit $?"; cp runs/gpu/check/gpu_check.json "$results/" 2>/dev/null; true
fi
if [[ $phase == *speed* && ! -f "$results/speed_compiled.log" ]]; then
  signal_runs STOP; log "runs paused"
  if [[ -n $old ]]; then
    log "speed, older code"
    PYTHONPATH="$old${PYTHONPATH:+:$PYTHONPATH}" timeout 80 python3 bench/speed.py --device "$dev" --presets $speed_presets \
      --json "$results/speed_baseline.json" > "$results/speed_baseline.log" 2>&1; log "exit $?"
  fi
  log "speed, levers"
  timeout 150 python3 bench/speed.py --device "$dev" --presets $speed_presets --variants "precision=fp32,chunk=1" \
    "precision=fp32,chunk=8" "precision=bf16,chunk=8" --json "$results/speed_levers.json" > "$results/speed_levers.log" 2>&1
  log "exit $?"
  log "speed, compiled"
  timeout 120 python3 bench/speed.py --device "$dev" --presets ${speed_presets%% *} --strategies finetune gd \
    --variants "precision=bf16,chunk=8,compile=1" --json "$results/speed_compiled.json" > "$results/speed_compiled.log" 2>&1
  log "exit $?"
  signal_runs CONT; log "runs resumed"
fi
if [[ $phase == *runs* ]]; then
  while (( $(left) > 25 )) && runs_alive; do sleep 2; done
  signal_runs TERM; sleep 3; signal_runs KILL; wait
  log "runs stopped"
  python3 - "$results" "runs/gpu/$run_preset" <<'PY'
import json, sys
from pathlib import Path
from cldiff.store import finished_tasks, load_metrics
res = Path(sys.argv[1]); rows = {}
for d in sorted(Path(sys.argv[2]).glob("*")):
    if finished_tasks(d) == 0: continue
    m = load_metrics(d); rows[d.name] = m
    for t in m["tasks"]:
        g = t.get("generation", {}); s = t.get("solver", {})
        print(f"{d.name:20} task {t['task']}: {t['seconds_per_iter'] * 1000:6.1f} ms/iter ({t.get('precision')}), "
              f"loss {t['loss_end']:.4f}, FID {g.get('fid', float('nan')):7.2f}, KLD {g.get('kld', float('nan')):.3f}, "
              f"solver {s.get('seen_accuracy', float('nan')):.3f}, diag {t['denoising_mse']['seen_mean']:.4f}")
(res / "run_metrics.json").write_text(json.dumps(rows))
PY
  # denoising trajectories of every finished task, as uint8 (small enough to ship with the tutorial)
  python3 - "$results" "runs/gpu/$run_preset" "$dev" <<'PY'
import sys, torch
from pathlib import Path
from cldiff.viz import run_trajectories
runs = [d for d in sorted(Path(sys.argv[2]).glob("*_s42_auto")) if (d / "task_0").is_dir()]
u8 = lambda x: ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu()
trajs = run_trajectories(runs, n=8, steps=10, seed=0, device=sys.argv[3])
torch.save({run: {k: {"timesteps": tr.timesteps, "x_t": u8(tr.x_t), "x0_pred": u8(tr.x0_pred)} for k, tr in per.items()}
            for run, per in trajs.items()}, Path(sys.argv[1]) / "trajectories_u8.pt")
print({run: sorted(per) for run, per in trajs.items()})
PY
  cldiff report runs/gpu/$run_preset/*_auto --out "$results/report" > "$results/report.log" 2>&1
fi
log "done"

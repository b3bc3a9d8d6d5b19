"""The device check of bench/gpu_check.py, run on the CPU: every strategy, evaluation, sample, report and the viz data path."""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_gpu_check_passes_on_cpu(tmp_path):
    out = subprocess.run([sys.executable, str(REPO / "bench" / "gpu_check.py"), "--device", "cpu", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "0 failed (device cpu)" in out.stdout

"""The lessons run as they would from their Colab badges, in a simulated Colab, and the data downloads there by itself.

Simulated Colab: a subprocess where `google.colab` is imported at start-up (a stub package and a sitecustomize on
PYTHONPATH), with an empty HOME and cache, no CLDIFF_DATA and an empty working folder (a notebook opened from its
badge has nothing beside it). torchvision's real download code fetches Fashion-MNIST from a loopback HTTP mirror of
the official files (`python -m http.server` over FashionMNIST/raw; `FashionMNIST.mirrors` points at it), checking
their MD5 sums as it does on Colab. Each notebook must open with a badge that links to itself and a Colab install cell
(the `pip install` cell that runs only on Colab) before it imports cldiff; that cell is replaced by nothing here (cldiff
is installed already), and the rest runs as `nbdev_test` runs it, `#| slow` cells skipped.

Needs the official .gz files in $CLDIFF_DATA/FashionMNIST/raw or ../shared/data beside the checkout (skipped without).
"""
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, clean_env, shared_data

LESSONS = ["index", "01_data", "02_schedules", "05_sample", "06_replay", "07_distillation", "13_viz", "14_tutorial_gr_vs_gd",
           "15_beyond_gd"]
GZ = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
BADGE = "https://colab.research.google.com/github/cldiff/cldiff/blob/main/nbs/{}.ipynb"

# Imported by every Python process of the simulated Colab at start-up, as Colab's own runtime imports google.colab.
SITECUSTOMIZE = r'''
import importlib.abc, importlib.util, os, sys
import google.colab  # noqa: F401  (what cldiff.utils.on_colab looks for)

class _Mirror(importlib.abc.MetaPathFinder):
    "Point torchvision's Fashion-MNIST downloads at the loopback mirror once torchvision.datasets.mnist is imported."
    def find_spec(self, name, path, target=None):
        if name != "torchvision.datasets.mnist": return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        run = spec.loader.exec_module
        def exec_module(module):
            run(module)
            module.FashionMNIST.mirrors = [os.environ["CLDIFF_TEST_MIRROR"]]
        spec.loader.exec_module = exec_module
        return spec

sys.meta_path.insert(0, _Mirror())
'''

RUN_NOTEBOOK = r'''
import sys
from pathlib import Path
from nbdev.test import test_nb
ok, seconds = test_nb(Path(sys.argv[1]), skip_flags=sys.argv[2:])
print(f"ran in {seconds:.0f} s")
sys.exit(0 if ok else 1)
'''


@pytest.fixture(scope="module")
def colab(tmp_path_factory):
    "(PYTHONPATH of the simulated Colab, the mirror's URL); the mirror serves the official .gz files on 127.0.0.1."
    data = shared_data()
    raw = data / "FashionMNIST" / "raw" if data else None
    if raw is None or not all((raw / f).is_file() for f in GZ):
        pytest.skip("the official Fashion-MNIST .gz files are not here (CLDIFF_DATA or ../shared/data)")
    root = tmp_path_factory.mktemp("colab")
    (root / "site" / "google" / "colab").mkdir(parents=True)
    (root / "site" / "google" / "colab" / "__init__.py").write_text('"A stand-in for Colab\'s google.colab."\n')
    (root / "site" / "sitecustomize.py").write_text(SITECUSTOMIZE)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
    log = open(root / "mirror.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port), "--directory", str(raw)],
                              stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close(); break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the loopback mirror did not start: {(root / 'mirror.log').read_text()}")
            time.sleep(0.1)
    try:
        yield root / "site", url, root / "mirror.log"
    finally:
        server.terminate(); server.wait(10); log.close()


def _colab_env(site: Path, mirror: str, home: Path) -> dict:
    return clean_env(home, PYTHONPATH=site, CLDIFF_TEST_MIRROR=mirror)


def test_simulated_colab_downloads(colab, tmp_path):
    "On Colab the data downloads when missing from every entry point: the loader, the task stream, the runner, the CLI."
    site, mirror, _ = colab
    # one process, a fresh cache for each call (the cache folder is read at each call)
    calls = {"load_fashion_mnist": "from cldiff.data import load_fashion_mnist as f; f(train=False)",
             "fashion_mnist_tasks": "from cldiff.data import fashion_mnist_tasks as f; f(image_size=16)",
             "runner.load_stream": "from cldiff.runner import load_stream, run_config as c; load_stream(c('test', 'gd'))"}
    code = ["import os; from cldiff.utils import on_colab; assert on_colab()"]
    for name, call in calls.items():
        code += [f"os.environ['XDG_CACHE_HOME'] = {str(tmp_path / name)!r}", call]
    p = subprocess.run([sys.executable, "-c", "\n".join(code)], cwd=tmp_path, env=_colab_env(site, mirror, tmp_path / "home"),
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, f"loading Fashion-MNIST on a simulated Colab with no data:\n{p.stderr[-3000:]}"
    for name in calls:
        raw = tmp_path / name / "cldiff" / "data" / "FashionMNIST" / "raw"
        assert (raw / "t10k-images-idx3-ubyte").is_file(), f"{name} did not download Fashion-MNIST into {raw}"
    home = tmp_path / "cli"
    out = tmp_path / "cli_run"
    p = subprocess.run([sys.executable, "-c", "import sys; from cldiff.cli import main; sys.exit(main(sys.argv[1:]))", "run",
                        "--preset", "test", "--tasks", "1", "--strategy", "finetune", "--out", str(out), "--no-progress"],
                       cwd=tmp_path, env=_colab_env(site, mirror, home), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, f"cldiff run (no --download) on a simulated Colab with no data:\n{p.stderr[-3000:]}"
    assert (home / ".cache" / "cldiff" / "data" / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").is_file()
    assert (out / "task_0").is_dir()


def _colab_notebook(name: str) -> tuple[dict, int]:
    "The notebook with its Colab install cell emptied (checked to be there, before cldiff is imported) and that cell's index."
    nb = json.loads((REPO / "nbs" / f"{name}.ipynb").read_text())
    cells = nb["cells"]
    src = ["".join(c["source"]) for c in cells]
    assert any(BADGE.format(name) in s for s, c in zip(src, cells) if c["cell_type"] == "markdown"), \
        f"{name}.ipynb has no Open-in-Colab badge linking to itself ({BADGE.format(name)})"
    install = [i for i, (s, c) in enumerate(zip(src, cells)) if c["cell_type"] == "code"
               and '"google.colab" in sys.modules' in s and "pip" in s and "install" in s]
    assert len(install) == 1, f"{name}.ipynb should have one Colab install cell (pip install, only on Colab); found {len(install)}"
    first_import = next((i for i, (s, c) in enumerate(zip(src, cells)) if c["cell_type"] == "code"
                         and ("import cldiff" in s or "from cldiff" in s)), len(cells))
    assert install[0] < first_import, f"{name}.ipynb imports cldiff (cell {first_import}) before its Colab install cell ({install[0]})"
    cells[install[0]]["source"] = []   # cldiff is installed already
    return nb, install[0]


@pytest.mark.parametrize("name", LESSONS)
def test_lesson_on_colab(colab, tmp_path, name):
    "The lesson runs from its badge on a simulated Colab: nothing beside it, no data, no cache; it downloads what it needs."
    site, mirror, _ = colab
    nb, _ = _colab_notebook(name)
    work = tmp_path / "content"   # Colab's working folder: only the notebook
    work.mkdir()
    path = work / f"{name}.ipynb"
    path.write_text(json.dumps(nb))
    (tmp_path / "run_notebook.py").write_text(RUN_NOTEBOOK)
    start = time.monotonic()
    p = subprocess.run([sys.executable, str(tmp_path / "run_notebook.py"), str(path), "slow"], cwd=work,
                       env=_colab_env(site, mirror, tmp_path / "home"), capture_output=True, text=True, timeout=900)
    print(f"{name} on a simulated Colab: {time.monotonic() - start:.0f} s")
    assert p.returncode == 0, f"{name}.ipynb fails on a simulated Colab:\n{p.stdout[-2000:]}\n{p.stderr[-6000:]}"

"""Run every notebook in nbs/ as a test (what `nbdev_test` does), one pytest test per notebook.

Cells flagged with `tst_flags` from settings.ini (`#| slow`) are skipped unless CLDIFF_TEST_FLAGS names
them, e.g. `CLDIFF_TEST_FLAGS=slow pytest tests`.

The lessons that tests/test_colab.py runs in a simulated Colab (the same `test_nb`, the same skipped flags, plus
the Colab environment and the data downloaded) are not run a second time here when that test can run, i.e. when
the official .gz files are at hand; without them they run here.
"""
import os
from pathlib import Path

import pytest
from nbdev.config import get_config
from nbdev.test import test_nb as run_notebook

from test_colab import GZ, LESSONS
from conftest import shared_data

REPO = Path(__file__).resolve().parents[1]
NBS = REPO / "nbs"
NOTEBOOKS = sorted(p for p in NBS.glob("*.ipynb") if not p.name.startswith("_"))


def _skip_flags():
    flags = set(str(get_config(path=REPO).get("tst_flags", "")).split())
    return sorted(flags - set(os.environ.get("CLDIFF_TEST_FLAGS", "").split()))


def test_notebooks_found():
    assert len(NOTEBOOKS) >= 5, f"expected the library notebooks in {NBS}"


def _colab_runs_it(notebook) -> bool:
    data = shared_data()
    return notebook.stem in LESSONS and data is not None and all((data / "FashionMNIST" / "raw" / f).is_file() for f in GZ)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook(notebook):
    if _colab_runs_it(notebook) and "slow" not in os.environ.get("CLDIFF_TEST_FLAGS", ""):
        pytest.skip("run by tests/test_colab.py in a simulated Colab")
    ok, seconds = run_notebook(notebook, skip_flags=_skip_flags(), basepath=REPO)
    assert ok, f"{notebook.name} failed after {seconds:.0f} s (the traceback is printed above)"
